//! HBONE client: mTLS to `<ip>:15008` presenting our identity and checking the server's SAN,
//! then classic CONNECT streams, pooled per (destination, our identity, expected SANs) and
//! multiplexed up to 100 streams per connection, as ztunnel does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::{debug, warn};

use super::coalesce::Coalesced;
use super::limits;
use super::stream::{H2Stream, StreamGuard};
use crate::tls::{config::client_config, CertStore, Identity};

/// Why a CONNECT did not produce a tunnel.
#[derive(Debug, thiserror::Error)]
pub enum HboneError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connect to {0} timed out")]
    Timeout(SocketAddr),
    #[error("TLS with {addr}: {source}")]
    Tls {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP/2 with {addr}: {source}")]
    H2 { addr: SocketAddr, source: h2::Error },
    #[error("CONNECT {authority} via {addr} answered {status}")]
    Status {
        addr: SocketAddr,
        authority: String,
        status: StatusCode,
    },
    #[error("bad CONNECT request: {0}")]
    Request(String),
    #[error("TLS config: {0}")]
    Config(String),
}

impl HboneError {
    /// The HTTP status of a refused CONNECT.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HboneError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    addr: SocketAddr,
    ours: Identity,
    expected: Vec<Identity>,
}

#[derive(Debug, Clone)]
struct PooledConn {
    send: h2::client::SendRequest<Bytes>,
    streams: Arc<AtomicUsize>,
    alive: Arc<AtomicBool>,
}

/// PING the server every [`limits::PING_INTERVAL`]; a missing PONG within
/// [`limits::PING_TIMEOUT`] retires the connection, as does [`limits::POOL_IDLE`] without
/// streams (the pool then drops its handle and h2 closes the connection).
async fn keepalive(
    addr: SocketAddr,
    mut ping: h2::PingPong,
    alive: Arc<AtomicBool>,
    streams: Arc<AtomicUsize>,
) {
    let mut idle = std::time::Duration::ZERO;
    loop {
        tokio::time::sleep(limits::PING_INTERVAL).await;
        if !alive.load(Ordering::Acquire) {
            return;
        }
        if streams.load(Ordering::Acquire) == 0 {
            idle += limits::PING_INTERVAL;
            if idle >= limits::POOL_IDLE {
                debug!(%addr, "hbone client: retiring idle connection");
                alive.store(false, Ordering::Release);
                return;
            }
        } else {
            idle = std::time::Duration::ZERO;
        }
        match tokio::time::timeout(limits::PING_TIMEOUT, ping.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                debug!(%addr, error = %e, "hbone client: ping failed");
                alive.store(false, Ordering::Release);
                return;
            }
            Err(_) => {
                warn!(%addr, "hbone client: no PING reply; retiring connection");
                alive.store(false, Ordering::Release);
                return;
            }
        }
    }
}

/// A pooling HBONE client for one certificate store (identity).
#[derive(Debug)]
pub struct HboneClient {
    store: Arc<CertStore>,
    pool: Mutex<HashMap<PoolKey, Vec<PooledConn>>>,
    /// One dial at a time per key: concurrent first streams wait for that connection instead
    /// of each opening their own (ztunnel keeps one connection per key up to its stream limit).
    dialing: Mutex<HashMap<PoolKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Connections opened so far (tests check multiplexing with it).
    opened: AtomicUsize,
}

impl HboneClient {
    pub fn new(store: Arc<CertStore>) -> Arc<Self> {
        Arc::new(HboneClient {
            store,
            pool: Mutex::new(HashMap::new()),
            dialing: Mutex::new(HashMap::new()),
            opened: AtomicUsize::new(0),
        })
    }

    /// The certificate store this client presents (also used for Istio mTLS to sidecars).
    pub fn store(&self) -> &Arc<CertStore> {
        &self.store
    }

    /// Number of TLS connections this client has opened.
    pub fn connections_opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    /// Open a CONNECT stream to `authority` through the HBONE server at `addr`, requiring the
    /// server to present one of `expected` (any identity of our trust domain if empty).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        expected: &[Identity],
        authority: &str,
        headers: HeaderMap,
    ) -> Result<H2Stream, HboneError> {
        let mut expected = expected.to_vec();
        expected.sort();
        let key = PoolKey {
            addr,
            ours: self.store.identity(),
            expected,
        };
        // A pooled connection may have died since; try once more on a fresh one.
        for attempt in 0..2 {
            let conn = self.checkout(&key).await?;
            match self.open_stream(&conn, addr, authority, &headers).await {
                Ok(s) => return Ok(s),
                Err(HboneError::H2 { source, .. }) if attempt == 0 && !source.is_remote() => {
                    conn.alive.store(false, Ordering::Release);
                    debug!(%addr, error = %source, "hbone client: pooled connection failed, retrying");
                }
                Err(e) => return Err(e),
            }
        }
        Err(HboneError::Request("no usable connection".into()))
    }

    /// A pooled connection of `key` with a free stream slot (the slot taken).
    fn pooled(&self, key: &PoolKey) -> Option<PooledConn> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        // Sweep dead and retired connections of every key (pools are small).
        pool.retain(|_, conns| {
            conns.retain(|c| c.alive.load(Ordering::Acquire));
            !conns.is_empty()
        });
        let c = pool
            .get_mut(key)?
            .iter()
            .find(|c| c.streams.load(Ordering::Acquire) < limits::CLIENT_MAX_STREAMS)?;
        c.streams.fetch_add(1, Ordering::AcqRel);
        Some(c.clone())
    }

    async fn checkout(&self, key: &PoolKey) -> Result<PooledConn, HboneError> {
        if let Some(c) = self.pooled(key) {
            return Ok(c);
        }
        let gate = self
            .dialing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let dialing = gate.lock().await;
        // Another caller may have dialled while we waited.
        if let Some(c) = self.pooled(key) {
            return Ok(c);
        }
        let dialed = self.dial(key).await;
        // Pool the new connection before the gate opens: a caller arriving between the two
        // would otherwise find neither a pooled connection nor a gate and dial a second one.
        if let Ok(conn) = &dialed {
            conn.streams.fetch_add(1, Ordering::AcqRel);
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            pool.entry(key.clone()).or_default().push(conn.clone());
        }
        drop(dialing);
        {
            // Forget the gate once nobody else holds it (keys come and go with pods).
            let mut gates = self.dialing.lock().unwrap_or_else(|p| p.into_inner());
            if Arc::strong_count(&gate) <= 2 {
                gates.remove(key);
            }
        }
        dialed
    }

    async fn dial(&self, key: &PoolKey) -> Result<PooledConn, HboneError> {
        let addr = key.addr;
        let cfg = client_config(self.store.clone(), key.expected.clone())
            .map_err(|e| HboneError::Config(e.to_string()))?;
        let tcp =
            match tokio::time::timeout(limits::CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(t)) => t,
                Ok(Err(source)) => return Err(HboneError::Connect { addr, source }),
                Err(_) => return Err(HboneError::Timeout(addr)),
            };
        let _ = tcp.set_nodelay(true);
        let tls = match tokio::time::timeout(
            limits::HANDSHAKE_TIMEOUT,
            TlsConnector::from(cfg).connect(ServerName::IpAddress(addr.ip().into()), tcp),
        )
        .await
        {
            Ok(Ok(t)) => t,
            Ok(Err(source)) => return Err(HboneError::Tls { addr, source }),
            Err(_) => return Err(HboneError::Timeout(addr)),
        };
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(limits::STREAM_WINDOW)
            .initial_connection_window_size(limits::CONNECTION_WINDOW)
            .max_frame_size(limits::MAX_FRAME_SIZE)
            .max_header_list_size(limits::MAX_HEADER_LIST)
            .enable_push(false)
            .handshake::<_, Bytes>(Coalesced::new(tls))
            .await
            .map_err(|source| HboneError::H2 { addr, source })?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        let mut conn = conn;
        let ping = conn.ping_pong();
        let alive = Arc::new(AtomicBool::new(true));
        let alive2 = alive.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%addr, error = %e, "hbone client: connection ended");
            }
            alive2.store(false, Ordering::Release);
        });
        let streams = Arc::new(AtomicUsize::new(0));
        if let Some(ping) = ping {
            tokio::spawn(keepalive(addr, ping, alive.clone(), streams.clone()));
        }
        Ok(PooledConn {
            send,
            streams,
            alive,
        })
    }

    async fn open_stream(
        &self,
        conn: &PooledConn,
        addr: SocketAddr,
        authority: &str,
        headers: &HeaderMap,
    ) -> Result<H2Stream, HboneError> {
        // The guard gives the stream slot back whatever happens below.
        let guard = StreamGuard(conn.streams.clone());
        let mut req = http::Request::builder()
            .method(Method::CONNECT)
            .uri(authority)
            .version(http::Version::HTTP_2)
            .body(())
            .map_err(|e| HboneError::Request(format!("{authority}: {e}")))?;
        for (k, v) in headers {
            req.headers_mut().append(k, v.clone());
        }
        let mut send = conn
            .send
            .clone()
            .ready()
            .await
            .map_err(|source| HboneError::H2 { addr, source })?;
        let (resp, stream) = send
            .send_request(req, false)
            .map_err(|source| HboneError::H2 { addr, source })?;
        let resp = resp
            .await
            .map_err(|source| HboneError::H2 { addr, source })?;
        if resp.status() != StatusCode::OK {
            warn!(%addr, %authority, status = %resp.status(), "hbone client: CONNECT refused");
            return Err(HboneError::Status {
                addr,
                authority: authority.to_string(),
                status: resp.status(),
            });
        }
        Ok(H2Stream::new(stream, resp.into_body()).with_guard(guard))
    }
}
