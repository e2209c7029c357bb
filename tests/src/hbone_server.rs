//! A destination-side HBONE server for tests, standing in for the destination ztunnel:
//! mTLS, CONNECT `<ip>:<port>` with the IP equal to the one dialled (else 400), then a TCP
//! relay to that port on loopback; 503 when nothing listens there. Stream resets and other
//! stream errors seen on a tunnel are recorded, so tests can require clean ends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use waypoint_hbone::server::{serve, BoxFuture, ConnectHandler, ConnectRequest, Tunnel};
use waypoint_hbone::tls::{config::server_config, CertStore};
use waypoint_hbone::H2Stream;

/// What the server saw (peer identities and headers of accepted CONNECTs).
#[derive(Debug, Default)]
pub struct Seen {
    pub principals: Mutex<Vec<String>>,
    pub authorities: Mutex<Vec<String>>,
    /// `forwarded` and `traceparent` of each accepted CONNECT (empty string when absent).
    pub forwarded: Mutex<Vec<String>>,
    pub traceparents: Mutex<Vec<String>>,
    pub connects: AtomicUsize,
    /// One entry per tunnel that saw RST_STREAM or another stream error (never a clean end).
    pub stream_errors: Mutex<Vec<String>>,
    /// Tunnels that ended cleanly (END_STREAM both ways).
    pub clean_ends: AtomicUsize,
}

impl Seen {
    pub fn stream_errors(&self) -> Vec<String> {
        self.stream_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Relay one tunnel to the app, as a destination ztunnel: the app's end (FIN or even a reset)
/// becomes END_STREAM after its last byte; the waypoint's END_STREAM becomes FIN; data the
/// app can no longer take is read and dropped so the stream still ends cleanly. Returns the
/// stream errors seen (a reset from the waypoint shows up as a read or write error).
async fn relay(s: H2Stream, app: TcpStream) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut sr, mut sw) = tokio::io::split(s);
    let (mut ar, mut aw) = app.into_split();
    let to_app = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut app_open = true;
        loop {
            match sr.read(&mut buf).await {
                Ok(0) => {
                    if app_open {
                        let _ = aw.shutdown().await;
                    }
                    return None;
                }
                Ok(n) => {
                    if app_open && aw.write_all(&buf[..n]).await.is_err() {
                        app_open = false;
                    }
                }
                Err(e) => return Some(format!("reading the stream: {e}")),
            }
        }
    };
    let from_app = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match ar.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    return sw
                        .shutdown()
                        .await
                        .err()
                        .map(|e| format!("sending END_STREAM: {e}"))
                }
                Ok(n) => {
                    if let Err(e) = sw.write_all(&buf[..n]).await {
                        return Some(format!("writing the stream: {e}"));
                    }
                }
            }
        }
    };
    let (a, b) = tokio::join!(to_app, from_app);
    a.into_iter().chain(b).collect()
}

#[derive(Debug)]
struct Relay {
    seen: Arc<Seen>,
}

impl ConnectHandler for Relay {
    fn connect(self: Arc<Self>, req: ConnectRequest) -> BoxFuture<Result<Tunnel, StatusCode>> {
        Box::pin(async move {
            let Some(dest) = req.destination else {
                return Err(StatusCode::BAD_REQUEST);
            };
            // ztunnel requires the authority's IP to be the address that was dialled.
            if dest.ip() != req.local_addr.ip() {
                return Err(StatusCode::BAD_REQUEST);
            }
            let up = TcpStream::connect(dest)
                .await
                .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
            self.seen.connects.fetch_add(1, Ordering::SeqCst);
            if let Some(id) = &req.peer_identity {
                self.seen
                    .principals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(id.to_string());
            }
            self.seen
                .authorities
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(req.authority.clone());
            let h = |n: &str| {
                req.headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            self.seen
                .forwarded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(h("forwarded"));
            self.seen
                .traceparents
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(h("traceparent"));
            let seen = self.seen.clone();
            let authority = req.authority.clone();
            Ok(Box::new(move |s: H2Stream| {
                Box::pin(async move {
                    let errors = relay(s, up).await;
                    if errors.is_empty() {
                        seen.clean_ends.fetch_add(1, Ordering::SeqCst);
                    } else {
                        seen.stream_errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(format!("{authority}: {}", errors.join("; ")));
                    }
                }) as BoxFuture<()>
            }) as Tunnel)
        })
    }
}

/// A running destination HBONE server.
#[derive(Debug)]
pub struct HboneServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    task: JoinHandle<()>,
}

impl Drop for HboneServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HboneServer {
    pub async fn start(bind: SocketAddr, store: Arc<CertStore>) -> HboneServer {
        let listener = TcpListener::bind(bind).await.expect("bind hbone server");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Seen::default());
        let handler = Arc::new(Relay { seen: seen.clone() });
        let cfg = server_config(store).expect("server config");
        let task = tokio::spawn(serve(listener, cfg, handler));
        HboneServer { addr, seen, task }
    }
}
