//! Istio mutual TLS straight to a sidecar's port (`<pod IP>:<targetPort>`), for pods that run
//! an Istio sidecar without HBONE: TCP, then the TLS handshake of `tls::config`.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::client::HboneError;
use crate::limits;
use crate::tls::config::istio_mtls_client_config;
use crate::tls::{CertStore, Identity};

/// Connect to `addr` and complete Istio mTLS presenting the store's identity, requiring one of
/// `expected` of the server; `h2` adds `h2` to the ALPN (an HTTP/2 upstream).
pub async fn connect(
    store: Arc<CertStore>,
    addr: SocketAddr,
    expected: &[Identity],
    h2: bool,
) -> Result<TlsStream<TcpStream>, HboneError> {
    let cfg = istio_mtls_client_config(store, expected.to_vec(), h2)
        .map_err(|e| HboneError::Config(e.to_string()))?;
    let tcp = match tokio::time::timeout(limits::CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(t)) => t,
        Ok(Err(source)) => return Err(HboneError::Connect { addr, source }),
        Err(_) => return Err(HboneError::Timeout(addr)),
    };
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(
        limits::HANDSHAKE_TIMEOUT,
        TlsConnector::from(cfg).connect(ServerName::IpAddress(addr.ip().into()), tcp),
    )
    .await
    {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(source)) => Err(HboneError::Tls { addr, source }),
        Err(_) => Err(HboneError::Timeout(addr)),
    }
}
