//! What an ext_authz check sees of a request and its connection (the fields Envoy's ext_authz
//! filter puts in its CheckRequest or HTTP authorization request).

use std::net::{IpAddr, SocketAddr};

use ::http::HeaderMap;

/// What the check sees of the request and its connection.
#[derive(Debug, Clone, Copy)]
pub struct CheckInput<'a> {
    pub method: &'a str,
    /// Original `:authority` / Host.
    pub authority: &'a str,
    /// Original path with query.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// `HTTP/1.1` or `HTTP/2`.
    pub protocol: &'a str,
    pub source_ip: Option<IpAddr>,
    pub source_principal: Option<&'a str>,
    /// The tunnel's destination (`ip:port` or `host:port`).
    pub destination: &'a str,
}

impl CheckInput<'_> {
    pub fn destination_addr(&self) -> Option<SocketAddr> {
        self.destination.parse().ok()
    }
}
