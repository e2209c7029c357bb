//! A destination-side HBONE server for tests, standing in for the destination ztunnel:
//! mTLS, CONNECT `<ip>:<port>` with the IP equal to the one dialled (else 400), then a TCP
//! relay to that port on loopback; 503 when nothing listens there.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use waypoint::hbone::server::{serve, BoxFuture, ConnectHandler, ConnectRequest, Tunnel};
use waypoint::hbone::H2Stream;
use waypoint::tls::{config::server_config, CertStore};

/// What the server saw (peer identities and headers of accepted CONNECTs).
#[derive(Debug, Default)]
pub struct Seen {
    pub principals: Mutex<Vec<String>>,
    pub authorities: Mutex<Vec<String>>,
    /// `forwarded` and `traceparent` of each accepted CONNECT (empty string when absent).
    pub forwarded: Mutex<Vec<String>>,
    pub traceparents: Mutex<Vec<String>>,
    pub connects: AtomicUsize,
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
            Ok(Box::new(move |mut s: H2Stream| {
                Box::pin(async move {
                    let mut up = up;
                    let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
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
