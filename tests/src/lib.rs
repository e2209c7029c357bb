//! waypoint-tests: harness for end-to-end tests and the shared scenario suite.
//! Host harness: PKI, upstream echo servers, HBONE client/server helpers, in-process waypoint.

pub mod echo;
pub mod hbone_client;
pub mod hbone_server;
pub mod netns;
pub mod pki;
pub mod waypoint;
