//! HBONE server: TLS 1.3 mTLS on a listener, HTTP/2 with classic CONNECT streams; each
//! CONNECT is handed to a [`ConnectHandler`] that accepts (200 then bytes) or refuses it.
//! Handshake, preface and idle timeouts bound every connection; shutdown drains with GOAWAY.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::coalesce::Coalesced;
use super::limits;
use super::stream::H2Stream;
use crate::timeouts::Timeouts;
use crate::tls::san::spiffe_id;
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

/// How a server runs: its timeouts and the shutdown signal.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub timeouts: Timeouts,
    /// Turns `true` when shutdown starts: the listener closes and every connection gets a
    /// GOAWAY; in-flight streams finish (the caller bounds how long it waits).
    pub shutdown: watch::Receiver<bool>,
}

impl Default for ServeOptions {
    /// Default timeouts, never shut down (abort the task to stop).
    fn default() -> Self {
        ServeOptions {
            timeouts: Timeouts::default(),
            shutdown: watch::channel(false).1,
        }
    }
}

/// Resolves once `rx` turns `true`; never if its sender is gone without doing so.
pub async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|down| *down).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `f` bounded by `d` (`0` = no bound, as Envoy's `0s`).
async fn within<F: Future>(d: Duration, f: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    match Timeouts::enabled(d) {
        Some(d) => tokio::time::timeout(d, f).await,
        None => Ok(f.await),
    }
}

/// Accept HBONE connections on `listener` with default options until the task is aborted.
pub async fn serve<H: ConnectHandler>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    handler: Arc<H>,
) {
    serve_with(listener, tls, handler, ServeOptions::default()).await
}

/// Accept HBONE connections on `listener` until shutdown starts; then close the listener
/// (new connections are refused), send GOAWAY on every connection and return once they have
/// all closed. Aborting the task closes every connection at once.
pub async fn serve_with<H: ConnectHandler>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    handler: Arc<H>,
    opts: ServeOptions,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut shutdown = opts.shutdown.clone();
    // Connections live in this set: dropping it (task aborted) closes them all.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown_requested(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "hbone: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let opts = opts.clone();
        conns.spawn(async move {
            if let Err(e) = serve_connection(tcp, peer, acceptor, handler, opts).await {
                debug!(%peer, error = %e, "hbone: connection ended with error");
            }
        });
    }
    drop(listener);
    info!(
        connections = conns.len(),
        "hbone: listener closed; draining connections"
    );
    while conns.join_next().await.is_some() {}
}

/// Open streams of one connection, and since when it has had none.
#[derive(Debug)]
struct StreamCount {
    open: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl StreamCount {
    /// How long the connection has been without streams (`None`: a stream is open).
    fn idle_for(&self) -> Option<Duration> {
        if self.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = *self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        Some(since.elapsed())
    }
}

/// Held by each stream's task.
struct OpenStream(Arc<StreamCount>);

impl OpenStream {
    fn new(count: &Arc<StreamCount>) -> Self {
        count.open.fetch_add(1, Ordering::AcqRel);
        OpenStream(count.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            *since = Instant::now();
        }
    }
}

/// After an idle GOAWAY, how long the peer has to close before we drop the connection
/// (a peer that never answers h2's shutdown PING would otherwise keep it open).
const GOAWAY_GRACE: Duration = Duration::from_secs(1);

async fn serve_connection<H: ConnectHandler>(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    handler: Arc<H>,
    opts: ServeOptions,
) -> anyhow::Result<()> {
    let t = opts.timeouts;
    let mut shutdown = opts.shutdown;
    let local = tcp.local_addr()?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio::select! {
        _ = shutdown_requested(&mut shutdown) => return Ok(()),
        r = within(t.tls_handshake, acceptor.accept(tcp)) => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                warn!(%peer, error = %e, "hbone: TLS handshake rejected");
                return Ok(());
            }
            Err(_) => {
                warn!(%peer, "hbone: TLS handshake timed out");
                return Ok(());
            }
        },
    };
    // HBONE is HTTP/2 only: a client that did not negotiate `h2` (no ALPN at all) is closed,
    // as a TLS peer offering only other protocols already is by rustls.
    if tls.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
        warn!(%peer, "hbone: client did not negotiate ALPN h2; closing");
        return Ok(());
    }
    let peer_identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| spiffe_id(c).ok());
    debug!(%peer, identity = ?peer_identity.as_ref().map(|i| i.to_string()), "hbone: TLS established");
    // The client preface and the first request headers must arrive within `preface`.
    let start = async {
        let mut conn = h2::server::Builder::new()
            .max_concurrent_streams(limits::SERVER_MAX_STREAMS)
            .max_header_list_size(limits::MAX_HEADER_LIST)
            .initial_window_size(limits::STREAM_WINDOW)
            .initial_connection_window_size(limits::CONNECTION_WINDOW)
            .max_frame_size(limits::MAX_FRAME_SIZE)
            .handshake::<_, Bytes>(Coalesced::new(tls))
            .await?;
        let first = conn.accept().await;
        Ok::<_, h2::Error>((conn, first))
    };
    let (mut conn, mut next) = tokio::select! {
        _ = shutdown_requested(&mut shutdown) => return Ok(()),
        r = within(t.preface, start) => match r {
            Ok(r) => r?,
            Err(_) => {
                info!(%peer, "hbone: no HTTP/2 preface and request in time; closing");
                return Ok(());
            }
        },
    };
    let count = Arc::new(StreamCount {
        open: AtomicUsize::new(0),
        idle_since: Mutex::new(Instant::now()),
    });
    let idle = Timeouts::enabled(t.connection_idle);
    let far = Duration::from_secs(365 * 24 * 3600);
    let idle_timer = tokio::time::sleep(idle.unwrap_or(far));
    tokio::pin!(idle_timer);
    // Set once we sent GOAWAY: for an idle close, the instant we give up waiting for the peer.
    let mut goaway: Option<Option<tokio::time::Instant>> = None;
    loop {
        match next {
            None => break,
            Some(Err(e)) => {
                debug!(%peer, error = %e, "hbone: connection error");
                break;
            }
            Some(Ok((req, respond))) => {
                let handler = handler.clone();
                let peer_identity = peer_identity.clone();
                let open = OpenStream::new(&count);
                tokio::spawn(async move {
                    handle_stream(req, respond, peer, local, peer_identity, handler).await;
                    drop(open);
                });
            }
        }
        next = loop {
            // Biased: the connection is polled first on every wake-up (each frame), with no
            // random branch order to draw; the shutdown and idle branches are rare.
            tokio::select! {
                biased;
                n = conn.accept() => break n,
                _ = shutdown_requested(&mut shutdown), if goaway.is_none() => {
                    debug!(%peer, "hbone: shutting down; GOAWAY");
                    conn.graceful_shutdown();
                    goaway = Some(None);
                }
                _ = &mut idle_timer, if goaway != Some(None) => {
                    let now = tokio::time::Instant::now();
                    match (goaway, count.idle_for()) {
                        // The grace after an idle GOAWAY ran out with still no stream.
                        (Some(Some(_)), Some(_)) => {
                            debug!(%peer, "hbone: idle connection did not close; dropping it");
                            return Ok(());
                        }
                        (Some(Some(_)), None) => idle_timer.as_mut().reset(now + GOAWAY_GRACE),
                        (_, Some(for_)) if idle.is_some_and(|d| for_ >= d) => {
                            debug!(%peer, idle = ?for_, "hbone: connection idle; GOAWAY");
                            conn.graceful_shutdown();
                            goaway = Some(Some(now + GOAWAY_GRACE));
                            idle_timer.as_mut().reset(now + GOAWAY_GRACE);
                        }
                        (_, Some(for_)) => {
                            let d = idle.unwrap_or(far);
                            idle_timer.as_mut().reset(now + d.saturating_sub(for_));
                        }
                        (_, None) => idle_timer.as_mut().reset(now + idle.unwrap_or(far)),
                    }
                }
            }
        };
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
