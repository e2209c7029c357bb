//! waypoint host library: the standalone HBONE waypoint (TLS, HBONE server and client, L7
//! proxy, config and admin) used by the `waypoint` binary and by the end-to-end tests.

pub mod admin;
pub mod bootstrap;
pub mod config;
pub mod hbone;
pub mod logging;
pub mod originate;
pub mod proxy;
pub mod run;
pub mod timeouts;
pub mod tls;
pub mod xds;
