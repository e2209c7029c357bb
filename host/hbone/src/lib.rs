//! waypoint-hbone: HBONE (HTTP/2 CONNECT over mutual TLS) server and pooled client with
//! ztunnel-compatible limits, mesh TLS identities and certificates, and the Envoy originator.

pub mod client;
pub mod coalesce;
pub mod istio_mtls;
pub mod limits;
pub mod originate;
pub mod server;
pub mod stream;
pub mod timeouts;
pub mod tls;

pub use client::{HboneClient, HboneError};
pub use server::{ConnectHandler, ConnectRequest, Tunnel};
pub use stream::H2Stream;
