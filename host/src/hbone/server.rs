//! HBONE server: TLS 1.3 mTLS on a listener, HTTP/2 with classic CONNECT streams; each
//! CONNECT is handed to a [`ConnectHandler`] that accepts (200 then bytes) or refuses it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::limits;
use super::stream::H2Stream;
use crate::tls::verify::spiffe_sans;
use crate::tls::Identity;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the client asked for in one CONNECT.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// TCP peer of the HBONE connection.
    pub peer_addr: SocketAddr,
    /// Our address the connection arrived on.
    pub local_addr: SocketAddr,
    /// The peer's SPIFFE identity (URI SAN of its verified certificate).
    pub peer_identity: Option<Identity>,
    /// `:authority`: the original destination, `ip:port` (or `host:port`).
    pub authority: String,
    /// The authority parsed as a socket address, when it is one.
    pub destination: Option<SocketAddr>,
    /// Request headers (`forwarded`, `baggage`, `traceparent`...).
    pub headers: http::HeaderMap,
}

/// Serves an accepted tunnel's bytes.
pub type Tunnel = Box<dyn FnOnce(H2Stream) -> BoxFuture<()> + Send>;

/// Decides on each CONNECT.
pub trait ConnectHandler: Send + Sync + 'static {
    /// `Ok(tunnel)`: answer 200 and run `tunnel` on the stream. `Err(status)`: refuse with
    /// it (400 bad request, 401 denied by L4 policy, 503 no upstream).
    fn connect(self: Arc<Self>, req: ConnectRequest) -> BoxFuture<Result<Tunnel, StatusCode>>;
}

/// Check an authority is `host:port` with a non-empty host and a port; parse it if an IP.
pub fn parse_authority(authority: &str) -> Result<Option<SocketAddr>, &'static str> {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Ok(Some(addr));
    }
    match waypoint_core::request::split_host_port(authority) {
        (host, Some(_))
            if !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
        {
            Ok(None)
        }
        _ => Err("authority must be host:port"),
    }
}

/// Accept HBONE connections on `listener` until the task is aborted.
pub async fn serve<H: ConnectHandler>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    handler: Arc<H>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "hbone: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(tcp, peer, acceptor, handler).await {
                debug!(%peer, error = %e, "hbone: connection ended with error");
            }
        });
    }
}

async fn serve_connection<H: ConnectHandler>(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    handler: Arc<H>,
) -> anyhow::Result<()> {
    let local = tcp.local_addr()?;
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(limits::HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            warn!(%peer, error = %e, "hbone: TLS handshake rejected");
            return Ok(());
        }
        Err(_) => {
            warn!(%peer, "hbone: TLS handshake timed out");
            return Ok(());
        }
    };
    let peer_identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| spiffe_sans(c).into_iter().next());
    debug!(%peer, identity = ?peer_identity.as_ref().map(|i| i.to_string()), "hbone: TLS established");
    let mut conn = h2::server::Builder::new()
        .max_concurrent_streams(limits::SERVER_MAX_STREAMS)
        .max_header_list_size(limits::MAX_HEADER_LIST)
        .initial_window_size(limits::STREAM_WINDOW)
        .initial_connection_window_size(limits::CONNECTION_WINDOW)
        .max_frame_size(limits::MAX_FRAME_SIZE)
        .handshake::<_, Bytes>(tls)
        .await?;
    while let Some(next) = conn.accept().await {
        let (req, respond) = match next {
            Ok(x) => x,
            Err(e) => {
                debug!(%peer, error = %e, "hbone: connection error");
                break;
            }
        };
        let handler = handler.clone();
        let peer_identity = peer_identity.clone();
        tokio::spawn(async move {
            handle_stream(req, respond, peer, local, peer_identity, handler).await;
        });
    }
    Ok(())
}

async fn handle_stream<H: ConnectHandler>(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    peer: SocketAddr,
    local: SocketAddr,
    peer_identity: Option<Identity>,
    handler: Arc<H>,
) {
    let reply = |respond: &mut h2::server::SendResponse<Bytes>, status: StatusCode| {
        let resp = http::Response::builder()
            .status(status)
            .body(())
            .unwrap_or_default();
        if let Err(e) = respond.send_response(resp, true) {
            debug!(%peer, error = %e, "hbone: cannot send refusal");
        }
    };
    if req.method() != Method::CONNECT {
        info!(%peer, method = %req.method(), "hbone: refused non-CONNECT request (400)");
        reply(&mut respond, StatusCode::BAD_REQUEST);
        return;
    }
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let destination = match parse_authority(&authority) {
        Ok(d) => d,
        Err(why) => {
            info!(%peer, %authority, why, "hbone: refused bad authority (400)");
            reply(&mut respond, StatusCode::BAD_REQUEST);
            return;
        }
    };
    let (parts, body) = req.into_parts();
    let creq = ConnectRequest {
        peer_addr: peer,
        local_addr: local,
        peer_identity,
        authority,
        destination,
        headers: parts.headers,
    };
    match handler.connect(creq).await {
        Ok(tunnel) => {
            let resp = http::Response::builder()
                .status(StatusCode::OK)
                .body(())
                .unwrap_or_default();
            match respond.send_response(resp, false) {
                Ok(send) => tunnel(H2Stream::new(send, body)).await,
                Err(e) => debug!(%peer, error = %e, "hbone: cannot send 200"),
            }
        }
        Err(status) => reply(&mut respond, status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        for (a, ok, ip) in [
            ("10.0.0.1:80", true, true),
            ("[::1]:8080", true, true),
            ("reviews.default.svc.cluster.local:9080", true, false),
            ("reviews", false, false),
            (":80", false, false),
            ("10.0.0.1", false, false),
            ("a b:80", false, false),
            ("", false, false),
        ] {
            let r = parse_authority(a);
            assert_eq!(r.is_ok(), ok, "{a}");
            assert_eq!(r.ok().flatten().is_some(), ip, "{a}");
        }
    }
}
