//! Upstream connections: where a request goes (plain `ip:port`, or a mesh endpoint reached by
//! HBONE), connection set-up, and small per-target pools of HTTP/1.1 and HTTP/2 senders.

pub mod io;
pub mod least_request;
pub mod outlier;

// FxHash: keys are upstream addresses from config, not client input, and SipHash was
// ≈ 1 % of the instructions per request.
use rustc_hash::FxHashMap as HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::upstream::io::UpstreamIo;
use waypoint_hbone::tls::Identity;
use waypoint_hbone::HboneClient;

/// Body type the proxy sends and returns.
pub type ProxyBody = BoxBody<Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One upstream endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// `ip:targetPort` of the workload (the HBONE `:authority` when tunnelled).
    pub addr: SocketAddr,
    /// Set for mesh endpoints: tunnel through `hbone` presenting our identity.
    pub hbone: Option<HboneHop>,
}

/// How to reach a mesh endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HboneHop {
    /// `<pod IP>:15008`.
    pub gateway: SocketAddr,
    /// Identities the endpoint may present (its service account).
    pub expected: Vec<Identity>,
}

impl Target {
    pub fn plain(addr: SocketAddr) -> Self {
        Target { addr, hbone: None }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.hbone {
            Some(h) => write!(f, "hbone://{}/{}", h.gateway, self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// Why an upstream exchange failed (classified for retries; `http::reply` maps it to the
/// client's response and Envoy's response flag).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Could not connect (`UF` / retry_on `connect-failure`).
    #[error("connect to {target}: {message}")]
    Connect { target: String, message: String },
    /// The connection broke before a response (`UC`/`reset`).
    #[error("upstream {target} reset: {message}")]
    Reset { target: String, message: String },
    /// Per-try or request timeout (`UT`).
    #[error("upstream {0} timed out")]
    Timeout(String),
}

/// Wire protocol towards the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    Http1,
    Http2,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_IDLE_PER_TARGET: usize = 32;

/// A pooled HTTP/1.1 sender and when it went back to the pool.
type IdleH1 = (http1::SendRequest<ProxyBody>, Instant);

/// Connection pools for every upstream the proxy talks to.
#[derive(Debug)]
pub struct Upstreams {
    hbone: Arc<HboneClient>,
    /// Idle HTTP/1.1 senders with the time each was returned to the pool.
    h1: Mutex<HashMap<Target, Vec<IdleH1>>>,
    /// One HTTP/2 sender per target with the time it was last used.
    h2: Mutex<HashMap<Target, (http2::SendRequest<ProxyBody>, Instant)>>,
    /// Pooled connections unused for this long are closed (Envoy's cluster
    /// `common_http_protocol_options.idle_timeout`); `None`: kept until the peer closes them.
    idle: Option<Duration>,
}

impl Upstreams {
    pub fn new(hbone: Arc<HboneClient>) -> Arc<Self> {
        Self::with_idle_timeout(hbone, None)
    }

    /// Pools whose connections are closed after `idle` unused; call
    /// [`Upstreams::spawn_idle_sweeper`] so abandoned targets are closed too.
    pub fn with_idle_timeout(hbone: Arc<HboneClient>, idle: Option<Duration>) -> Arc<Self> {
        Arc::new(Upstreams {
            hbone,
            h1: Mutex::new(HashMap::default()),
            h2: Mutex::new(HashMap::default()),
            idle,
        })
    }

    /// Close pooled connections unused for the idle timeout, every half of it (at most every
    /// minute), for as long as the pools exist.
    pub fn spawn_idle_sweeper(self: &Arc<Self>) {
        let Some(idle) = self.idle else { return };
        let every = (idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(60));
        let pools = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match pools.upgrade() {
                    Some(p) => p.sweep(),
                    None => return,
                }
            }
        });
    }

    /// Drop (and so close) every pooled connection idle for the timeout.
    pub fn sweep(&self) {
        let Some(idle) = self.idle else { return };
        let now = Instant::now();
        let fresh = |since: Instant| now.saturating_duration_since(since) < idle;
        let mut h1 = self.h1.lock().unwrap_or_else(|p| p.into_inner());
        h1.retain(|_, list| {
            list.retain(|(s, since)| !s.is_closed() && fresh(*since));
            !list.is_empty()
        });
        drop(h1);
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        h2.retain(|_, (s, since)| !s.is_closed() && fresh(*since));
    }

    /// Pooled connections (HTTP/1.1 idle senders + HTTP/2 connections), for tests.
    pub fn pooled(&self) -> usize {
        let h1: usize = self
            .h1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(Vec::len)
            .sum();
        h1 + self.h2.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Open a byte stream to `target` (TCP, or an HBONE CONNECT to `target.addr`).
    pub async fn connect(&self, target: &Target) -> Result<UpstreamIo, UpstreamError> {
        self.connect_with(target, http::HeaderMap::new()).await
    }

    /// As [`Upstreams::connect`], sending `headers` on an HBONE CONNECT (`forwarded`,
    /// `baggage`, `traceparent` of the tunnel being relayed).
    pub async fn connect_with(
        &self,
        target: &Target,
        headers: http::HeaderMap,
    ) -> Result<UpstreamIo, UpstreamError> {
        let err = |message: String| UpstreamError::Connect {
            target: target.to_string(),
            message,
        };
        match &target.hbone {
            None => {
                let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.addr))
                    .await
                    .map_err(|_| err("timed out".into()))?
                    .map_err(|e| err(e.to_string()))?;
                let _ = tcp.set_nodelay(true);
                Ok(UpstreamIo::Tcp(tcp))
            }
            Some(hop) => {
                let s = self
                    .hbone
                    .connect(
                        hop.gateway,
                        &hop.expected,
                        &target.addr.to_string(),
                        headers,
                    )
                    .await
                    .map_err(|e| err(e.to_string()))?;
                Ok(UpstreamIo::Hbone(s))
            }
        }
    }

    /// Send one request to `target` over a pooled (or new) connection.
    pub async fn send(
        &self,
        target: &Target,
        wire: Wire,
        mut req: http::Request<ProxyBody>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let reset = |e: hyper::Error| UpstreamError::Reset {
            target: target.to_string(),
            message: e.to_string(),
        };
        match wire {
            Wire::Http1 => {
                // A pooled keep-alive connection may be closed by the server just as we pick
                // it; when hyper hands the unsent request back, use a fresh connection.
                if let Some(mut sender) = self.idle_h1(target) {
                    match sender.try_send_request(req).await {
                        Ok(resp) => {
                            self.put_h1(target, sender);
                            return Ok(resp);
                        }
                        Err(mut e) => match e.take_message() {
                            Some(unsent) => {
                                debug!(target = %target, error = %e.error(), "pooled connection unusable; reconnecting");
                                req = unsent;
                            }
                            None => return Err(reset(e.into_error())),
                        },
                    }
                }
                let mut sender = self.new_h1(target).await?;
                let resp = sender.send_request(req).await.map_err(reset)?;
                self.put_h1(target, sender);
                Ok(resp)
            }
            Wire::Http2 => {
                let mut sender = match self.live_h2(target) {
                    Some(s) => s,
                    None => self.new_h2(target).await?,
                };
                sender.send_request(req).await.map_err(reset)
            }
        }
    }

    fn idle_h1(&self, target: &Target) -> Option<http1::SendRequest<ProxyBody>> {
        let mut pool = self.h1.lock().unwrap_or_else(|p| p.into_inner());
        let list = pool.get_mut(target)?;
        list.retain(|(s, _)| !s.is_closed());
        let i = list.iter().position(|(s, _)| s.is_ready())?;
        Some(list.swap_remove(i).0)
    }

    fn put_h1(&self, target: &Target, sender: http1::SendRequest<ProxyBody>) {
        let mut pool = self.h1.lock().unwrap_or_else(|p| p.into_inner());
        let list = pool.entry(target.clone()).or_default();
        list.retain(|(s, _)| !s.is_closed());
        if list.len() < MAX_IDLE_PER_TARGET {
            list.push((sender, Instant::now()));
        }
    }

    fn live_h2(&self, target: &Target) -> Option<http2::SendRequest<ProxyBody>> {
        let mut pool = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        let (s, used) = pool.get_mut(target).filter(|(s, _)| !s.is_closed())?;
        *used = Instant::now();
        Some(s.clone())
    }

    async fn new_h1(
        &self,
        target: &Target,
    ) -> Result<http1::SendRequest<ProxyBody>, UpstreamError> {
        let io = self.connect(target).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| UpstreamError::Connect {
                target: target.to_string(),
                message: e.to_string(),
            })?;
        let t = target.to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(target = %t, error = %e, "upstream http1 connection ended");
            }
        });
        Ok(sender)
    }

    async fn new_h2(
        &self,
        target: &Target,
    ) -> Result<http2::SendRequest<ProxyBody>, UpstreamError> {
        let io = self.connect(target).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(4 * 1024 * 1024)
            .initial_connection_window_size(16 * 1024 * 1024)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| UpstreamError::Connect {
                target: target.to_string(),
                message: e.to_string(),
            })?;
        let t = target.to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(target = %t, error = %e, "upstream http2 connection ended");
            }
        });
        let mut pool = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        pool.insert(target.clone(), (sender.clone(), Instant::now()));
        Ok(sender)
    }
}
