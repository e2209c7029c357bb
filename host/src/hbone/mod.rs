//! HBONE: HTTP/2 CONNECT tunnels over mutual TLS, server and pooled client, with the
//! ztunnel-compatible limits.

pub mod client;
pub mod limits;
pub mod server;
pub mod stream;

pub use client::{HboneClient, HboneError};
pub use server::{ConnectHandler, ConnectRequest, Tunnel};
pub use stream::H2Stream;
