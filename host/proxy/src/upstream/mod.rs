//! Upstream connections: where a request goes (plain `ip:port`, a mesh endpoint reached by
//! HBONE, or a sidecar reached by Istio mTLS), connection set-up, and small per-target pools of
//! HTTP/1.1 and HTTP/2 senders.

pub mod circuit;
pub mod grpc_unary;
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

use crate::upstream::circuit::{
    Circuits, ClusterPool, ClusterState, Limits, Resource, Slot, DEFAULT_CONNECT_TIMEOUT,
};
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
    /// Set for sidecar endpoints without HBONE: Istio mTLS straight to `addr`.
    pub sidecar: Option<SidecarTls>,
}

/// How to reach a sidecar's port: Istio mutual TLS with our identity, the pod's checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SidecarTls {
    /// Identities the endpoint may present (its service account).
    pub expected: Vec<Identity>,
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
    /// The identity the endpoint is required to present (HBONE or sidecar mTLS), if any.
    pub fn peer_identity(&self) -> Option<&Identity> {
        match (&self.hbone, &self.sidecar) {
            (Some(h), _) => h.expected.first(),
            (None, Some(s)) => s.expected.first(),
            (None, None) => None,
        }
    }

    pub fn plain(addr: SocketAddr) -> Self {
        Target {
            addr,
            hbone: None,
            sidecar: None,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.hbone, &self.sidecar) {
            (Some(h), _) => write!(f, "hbone://{}/{}", h.gateway, self.addr),
            (None, Some(_)) => write!(f, "istio-mtls://{}", self.addr),
            (None, None) => write!(f, "{}", self.addr),
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
    /// A circuit breaker of the cluster is full (`UO`): too many requests, pending requests
    /// or connections.
    #[error("cluster {cluster} overflow: {what}")]
    Overflow { cluster: String, what: &'static str },
}

/// Wire protocol towards the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    Http1,
    Http2,
}

/// Idle (ready) HTTP/1.1 connections kept per target; busy ones are not counted. Envoy has no
/// such cap (idle connections close on the idle timeout only); this one only stops a burst from
/// leaving thousands open. It must sit well above the requests in flight to one endpoint, or
/// connections close after one use at saturation.
const MAX_IDLE_PER_TARGET: usize = 256;
/// How often a request waiting for a connection of a full cluster looks again (besides being
/// woken when a connection closes or returns to the pool).
const PENDING_POLL: Duration = Duration::from_millis(5);

/// A pooled connection's key: the cluster it belongs to (`None`: no DestinationRule pool
/// settings, shared by everything) and the endpoint. Envoy pools per cluster and host.
type PoolKey = (Option<Arc<str>>, Target);

/// A pooled HTTP/1.1 sender: when it went back to the pool, the requests it has carried, and
/// its cluster's idle timeout (over the pools' own).
#[derive(Debug)]
struct IdleH1 {
    sender: http1::SendRequest<ProxyBody>,
    since: Instant,
    uses: u32,
    idle: Option<Duration>,
}

/// The HTTP/2 connection of one key, when it was last used, the streams it has carried.
#[derive(Debug)]
struct LiveH2 {
    sender: http2::SendRequest<ProxyBody>,
    since: Instant,
    uses: u32,
    idle: Option<Duration>,
}

/// Connection pools for every upstream the proxy talks to.
#[derive(Debug)]
pub struct Upstreams {
    hbone: Arc<HboneClient>,
    /// Idle HTTP/1.1 senders.
    h1: Mutex<HashMap<PoolKey, Vec<IdleH1>>>,
    /// One HTTP/2 connection per key.
    h2: Mutex<HashMap<PoolKey, LiveH2>>,
    /// Pooled connections unused for this long are closed (Envoy's cluster
    /// `common_http_protocol_options.idle_timeout`); `None`: kept until the peer closes them.
    idle: Option<Duration>,
    /// Circuit breakers of the clusters with DestinationRule pool settings.
    circuits: Circuits,
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
            circuits: Circuits::default(),
        })
    }

    /// The clusters' circuit breaker counts.
    pub fn circuits(&self) -> &Circuits {
        &self.circuits
    }

    /// Close pooled connections unused for the idle timeout, every half of it (at most every
    /// minute; every second without one, for the clusters' own idle timeouts), for as long as
    /// the pools exist.
    pub fn spawn_idle_sweeper(self: &Arc<Self>) {
        let every = match self.idle {
            Some(idle) => (idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(60)),
            None => Duration::from_secs(1),
        };
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

    /// Drop (and so close) every pooled connection idle for its timeout (its cluster's, else
    /// the pools').
    pub fn sweep(&self) {
        let now = Instant::now();
        let global = self.idle;
        let fresh = move |since: Instant, own: Option<Duration>| match own.or(global) {
            Some(idle) => now.saturating_duration_since(since) < idle,
            None => true,
        };
        let mut h1 = self.h1.lock().unwrap_or_else(|p| p.into_inner());
        h1.retain(|_, list| {
            list.retain(|c| !c.sender.is_closed() && fresh(c.since, c.idle));
            !list.is_empty()
        });
        drop(h1);
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        h2.retain(|_, c| !c.sender.is_closed() && fresh(c.since, c.idle));
    }

    /// Pooled connections (HTTP/1.1 idle senders + HTTP/2 connections), for tests.
    pub fn pooled(&self) -> usize {
        let h1: usize = self
            .h1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(Vec::len)
            .sum::<usize>();
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
        self.connect_within(target, headers, DEFAULT_CONNECT_TIMEOUT)
            .await
    }

    /// As [`Upstreams::connect_with`], giving up after `timeout` (the cluster's
    /// `connectTimeout`).
    pub async fn connect_within(
        &self,
        target: &Target,
        headers: http::HeaderMap,
        timeout: Duration,
    ) -> Result<UpstreamIo, UpstreamError> {
        self.connect_as(target, headers, timeout, false).await
    }

    /// As [`Upstreams::connect_within`]; `h2`: the connection will carry HTTP/2 (a sidecar
    /// upstream then offers `h2` in its ALPN, as Istio's HTTP/2 clusters do).
    async fn connect_as(
        &self,
        target: &Target,
        headers: http::HeaderMap,
        timeout: Duration,
        h2: bool,
    ) -> Result<UpstreamIo, UpstreamError> {
        let err = |message: String| UpstreamError::Connect {
            target: target.to_string(),
            message,
        };
        if let (None, Some(tls)) = (&target.hbone, &target.sidecar) {
            let store = self.hbone.store().clone();
            let s = tokio::time::timeout(
                timeout,
                waypoint_hbone::istio_mtls::connect(store, target.addr, &tls.expected, h2),
            )
            .await
            .map_err(|_| err("timed out".into()))?
            .map_err(|e| err(e.to_string()))?;
            return Ok(UpstreamIo::Tls(Box::new(s)));
        }
        match &target.hbone {
            None => {
                let tcp = tokio::time::timeout(timeout, TcpStream::connect(target.addr))
                    .await
                    .map_err(|_| err("timed out".into()))?
                    .map_err(|e| err(e.to_string()))?;
                let _ = tcp.set_nodelay(true);
                Ok(UpstreamIo::Tcp(tcp))
            }
            Some(hop) => {
                let s = tokio::time::timeout(
                    timeout,
                    self.hbone.connect(
                        hop.gateway,
                        &hop.expected,
                        &target.addr.to_string(),
                        headers,
                    ),
                )
                .await
                .map_err(|_| err("timed out".into()))?
                .map_err(|e| err(e.to_string()))?;
                Ok(UpstreamIo::Hbone(s))
            }
        }
    }

    /// Send one request to `target` over a pooled (or new) connection of no cluster.
    pub async fn send(
        &self,
        target: &Target,
        wire: Wire,
        req: http::Request<ProxyBody>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        self.send_in(None, target, wire, req).await
    }

    /// Send one request to `target` of cluster `pool` (`None`: no DestinationRule pool
    /// settings) with the cluster's circuit breakers as Envoy applies them: a request beyond
    /// `max_requests`, or one needing a connection while `max_pending_requests` already wait,
    /// fails at once with [`UpstreamError::Overflow`]; one beyond `max_connections` waits as
    /// pending for a connection. Also the cluster's connect timeout, idle timeout and
    /// requests per connection.
    pub async fn send_in(
        &self,
        pool: Option<&ClusterPool>,
        target: &Target,
        wire: Wire,
        mut req: http::Request<ProxyBody>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let p = self.params(pool, target);
        let reset = |e: hyper::Error| UpstreamError::Reset {
            target: target.to_string(),
            message: e.to_string(),
        };
        // Envoy's `max_requests` counts every request in flight in the cluster (here until
        // the response head).
        let _request = match &p.limits {
            Some((st, l)) => Some(
                st.try_take(Resource::Request, l.max_requests)
                    .ok_or_else(|| p.overflow("requests"))?,
            ),
            None => None,
        };
        let mut pending: Option<Slot> = None;
        match wire {
            Wire::Http1 => loop {
                let (mut sender, uses, new_conn) = match self.idle_h1(&p) {
                    Some(c) => (c.sender, c.uses, false),
                    None => match p.connection_slot(&mut pending).await? {
                        Some(slot) => (self.new_h1(target, &p, slot).await?, 0, true),
                        None => continue,
                    },
                };
                drop(pending.take());
                // A pooled keep-alive connection may be closed by the server just as we pick
                // it; when hyper hands the unsent request back, use another connection.
                match sender.try_send_request(req).await {
                    Ok(resp) => {
                        self.put_h1(&p, sender, uses + 1);
                        return Ok(resp);
                    }
                    Err(mut e) => match e.take_message() {
                        Some(unsent) if !new_conn => {
                            debug!(target = %target, error = %e.error(), "pooled connection unusable; reconnecting");
                            req = unsent;
                        }
                        _ => return Err(reset(e.into_error())),
                    },
                }
            },
            Wire::Http2 => {
                let mut sender = loop {
                    if let Some(s) = self.live_h2(&p) {
                        break s;
                    }
                    if let Some(slot) = p.connection_slot(&mut pending).await? {
                        break self.new_h2(target, &p, slot).await?;
                    }
                };
                drop(pending);
                sender.send_request(req).await.map_err(reset)
            }
        }
    }

    /// Where a request of `pool` to `target` gets its connection, and the cluster's limits.
    fn params(&self, pool: Option<&ClusterPool>, target: &Target) -> PoolParams {
        match pool {
            None => PoolParams {
                key: (None, target.clone()),
                limits: None,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                idle: None,
                max_uses: None,
            },
            Some(pool) => PoolParams {
                key: (Some(pool.cluster.clone()), target.clone()),
                limits: Some((
                    self.circuits.state(&pool.cluster),
                    Limits::of(&pool.settings),
                )),
                connect_timeout: pool
                    .settings
                    .connect_timeout
                    .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                idle: pool.settings.idle_timeout,
                max_uses: pool.settings.max_requests_per_connection.filter(|n| *n > 0),
            },
        }
    }

    /// A ready pooled HTTP/1.1 connection of the key (closed and timed-out ones dropped).
    fn idle_h1(&self, p: &PoolParams) -> Option<IdleH1> {
        let mut pool = self.h1.lock().unwrap_or_else(|e| e.into_inner());
        let list = pool.get_mut(&p.key)?;
        let now = Instant::now();
        let global = self.idle;
        list.retain(|c| !c.sender.is_closed() && fresh(now, c.since, c.idle.or(global)));
        let i = list.iter().position(|c| c.sender.is_ready())?;
        Some(list.swap_remove(i))
    }

    /// Back to the pool, unless it has carried the cluster's requests per connection (then it
    /// is dropped, which closes it once the response is read).
    fn put_h1(&self, p: &PoolParams, sender: http1::SendRequest<ProxyBody>, uses: u32) {
        if p.max_uses.is_some_and(|max| uses >= max) {
            return;
        }
        let mut pool = self.h1.lock().unwrap_or_else(|e| e.into_inner());
        let list = pool.entry(p.key.clone()).or_default();
        list.retain(|c| !c.sender.is_closed());
        // A sender comes back with its response body still unread (busy until then), and so do
        // the others in flight: only the idle ones count against the cap. Counting the busy
        // ones (and a cap of 32) closed a connection after one request whenever more than 32
        // requests were in flight to one endpoint: with one HBONE connection of 64 streams,
        // ~45 % of the requests went out on a fresh upstream connection.
        if list.iter().filter(|c| c.sender.is_ready()).count() < MAX_IDLE_PER_TARGET {
            list.push(IdleH1 {
                sender,
                since: Instant::now(),
                uses,
                idle: p.idle,
            });
        }
        drop(pool);
        if let Some((st, _)) = &p.limits {
            st.freed.notify_waiters();
        }
    }

    /// The key's HTTP/2 connection, counted as used once more (and taken out of the pool
    /// when that is its last stream under the cluster's requests per connection).
    fn live_h2(&self, p: &PoolParams) -> Option<http2::SendRequest<ProxyBody>> {
        let mut pool = self.h2.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let c = pool.get_mut(&p.key)?;
        if c.sender.is_closed() || !fresh(now, c.since, c.idle.or(self.idle)) {
            pool.remove(&p.key);
            return None;
        }
        c.since = now;
        c.uses += 1;
        let sender = c.sender.clone();
        if p.max_uses.is_some_and(|max| c.uses >= max) {
            pool.remove(&p.key);
        }
        Some(sender)
    }

    async fn new_h1(
        &self,
        target: &Target,
        p: &PoolParams,
        slot: Option<Slot>,
    ) -> Result<http1::SendRequest<ProxyBody>, UpstreamError> {
        let io = self
            .connect_as(target, http::HeaderMap::new(), p.connect_timeout, false)
            .await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| UpstreamError::Connect {
                target: target.to_string(),
                message: e.to_string(),
            })?;
        let t = target.to_string();
        tokio::spawn(async move {
            // The cluster's connection count holds until the connection ends.
            let _slot = slot;
            if let Err(e) = conn.await {
                debug!(target = %t, error = %e, "upstream http1 connection ended");
            }
        });
        Ok(sender)
    }

    async fn new_h2(
        &self,
        target: &Target,
        p: &PoolParams,
        slot: Option<Slot>,
    ) -> Result<http2::SendRequest<ProxyBody>, UpstreamError> {
        let io = self
            .connect_as(target, http::HeaderMap::new(), p.connect_timeout, true)
            .await?;
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
            let _slot = slot;
            if let Err(e) = conn.await {
                debug!(target = %t, error = %e, "upstream http2 connection ended");
            }
        });
        let mut pool = self.h2.lock().unwrap_or_else(|e| e.into_inner());
        if p.max_uses.is_none_or(|max| max > 1) {
            pool.insert(
                p.key.clone(),
                LiveH2 {
                    sender: sender.clone(),
                    since: Instant::now(),
                    uses: 1,
                    idle: p.idle,
                },
            );
        }
        Ok(sender)
    }
}

/// Used within its idle timeout (`None`: no timeout)?
fn fresh(now: Instant, since: Instant, idle: Option<Duration>) -> bool {
    idle.is_none_or(|idle| now.saturating_duration_since(since) < idle)
}

/// How one request gets a connection: its pool key and its cluster's settings.
#[derive(Debug)]
struct PoolParams {
    key: PoolKey,
    /// The cluster's counts and thresholds (`None`: no DestinationRule pool settings).
    limits: Option<(Arc<ClusterState>, Limits)>,
    connect_timeout: Duration,
    /// The cluster's idle timeout for pooled connections (`None`: the pools').
    idle: Option<Duration>,
    /// Requests per connection (`maxRequestsPerConnection`), `None`: unlimited.
    max_uses: Option<u32>,
}

impl PoolParams {
    fn overflow(&self, what: &'static str) -> UpstreamError {
        UpstreamError::Overflow {
            cluster: self.key.0.as_deref().unwrap_or("-").to_string(),
            what,
        }
    }

    /// For a request with no ready connection: count it as pending (Envoy: from here until it
    /// is on a connection, connecting included), overflowing when `max_pending_requests`
    /// already wait; then a connection slot (`Some(None)`: no limits). `Ok(None)`: the cluster
    /// is at `max_connections`; this waited a little for a connection to close or come back
    /// to the pool, so look for a ready one again.
    async fn connection_slot(
        &self,
        pending: &mut Option<Slot>,
    ) -> Result<Option<Option<Slot>>, UpstreamError> {
        let Some((st, l)) = &self.limits else {
            return Ok(Some(None));
        };
        if pending.is_none() {
            *pending = Some(
                st.try_take(Resource::Pending, l.max_pending_requests)
                    .ok_or_else(|| self.overflow("pending requests"))?,
            );
        }
        if let Some(slot) = st.try_take(Resource::Connection, l.max_connections) {
            return Ok(Some(Some(slot)));
        }
        let _ = tokio::time::timeout(PENDING_POLL, st.freed.notified()).await;
        Ok(None)
    }
}
