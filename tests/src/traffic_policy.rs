//! DestinationRule traffic-policy scenarios run alike through the host and through Envoy on
//! the generated bootstrap: consistent-hash stickiness, ejection after consecutive 5xx, a
//! pending-request overflow answered 503 `UO`, one request per upstream connection, and an
//! HTTPRoute's `timeouts.backendRequest` retried by its `retry`. Each builds its upstreams and
//! config, then checks what a client sees over HBONE.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use waypoint_hbone::HboneClient;

use crate::echo::{http_echo, http_fixed_status, EchoServer};
use crate::envoy_generated::{parse_response, Exchange};
use crate::hbone_client::tunnel;
use crate::manifests::service_with_pods;

/// Envoy's reply body when a circuit breaker is full.
pub const OVERFLOW_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";

/// A waypoint under test: its HBONE address and a client to reach it.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub client: Arc<HboneClient>,
    pub addr: SocketAddr,
}

/// One HTTP/1.1 GET with `headers` to `authority` over a fresh tunnel; the whole response.
pub async fn get(
    p: &Proxy,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Exchange, String> {
    let mut s = tunnel(&p.client, p.addr, &[], authority)
        .await
        .map_err(|e| format!("CONNECT {authority}: {e}"))?;
    let mut head = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let h = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let len = h
                .split("\r\n")
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| format!("no content-length in {h:?}"))?;
            if raw.len() >= end + 4 + len {
                raw.truncate(end + 4 + len);
                return parse_response(&raw);
            }
        }
        match s.read(&mut buf).await {
            Ok(0) => return Err(format!("EOF after {} bytes", raw.len())),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// The waypoint Gateway manifest is added by each mode's harness; this is the rest.
fn destination_rule(name: &str, policy: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  host: {name}.default.svc.cluster.local\n  trafficPolicy:\n{policy}"
    )
}

fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::from([127, net, 0, host])
}

/// `n` echo endpoints `127.<net>.0.1..=n` on one port, named `e1`, `e2`, ...
async fn echoes(net: u8, n: u8) -> Vec<EchoServer> {
    let first = http_echo(SocketAddr::new(ip(net, 1), 0), "e1").await;
    let port = first.addr.port();
    let mut out = vec![first];
    for i in 2..=n {
        out.push(http_echo(SocketAddr::new(ip(net, i), port), &format!("e{i}")).await);
    }
    out
}

/// Consistent hash on `x-user` over three endpoints: every request of a user lands on one
/// endpoint, and the users spread over more than one.
#[derive(Debug)]
pub struct Sticky {
    pub yaml: String,
    pub authority: String,
    _backends: Vec<EchoServer>,
}

impl Sticky {
    pub async fn setup(net: u8) -> Sticky {
        let backends = echoes(net, 3).await;
        let pods: Vec<String> = (1..=3).map(|i| ip(net, i).to_string()).collect();
        let pods: Vec<&str> = pods.iter().map(String::as_str).collect();
        let vip = format!("10.96.{net}.1");
        let yaml = [
            service_with_pods(
                "sticky",
                &vip,
                "http",
                backends[0].addr.port(),
                &pods,
                false,
            ),
            destination_rule(
                "sticky",
                "    loadBalancer:\n      consistentHash: {httpHeaderName: x-user}\n",
            ),
        ]
        .concat();
        Sticky {
            yaml,
            authority: format!("{vip}:80"),
            _backends: backends,
        }
    }

    pub async fn check(&self, p: &Proxy) {
        let mut seen = std::collections::BTreeSet::new();
        for user in 0..8 {
            let name = format!("user-{user}");
            let mut first: Option<String> = None;
            for i in 0..6 {
                let r = get(p, &self.authority, &format!("/s/{i}"), &[("x-user", &name)])
                    .await
                    .unwrap_or_else(|e| panic!("{name} request {i}: {e}"));
                assert_eq!(r.status, 200, "{name} request {i}");
                let body = String::from_utf8_lossy(&r.body).to_ascii_lowercase();
                assert!(!body.contains("x-waypoint-"), "leaked upstream: {body}");
                assert!(
                    body.contains("x-user"),
                    "the echo shows the request: {body}"
                );
                let by = r.header("x-served-by").unwrap_or("-").to_string();
                match &first {
                    None => first = Some(by.clone()),
                    Some(f) => assert_eq!(&by, f, "{name} moved on request {i}"),
                }
                seen.insert(by);
            }
        }
        assert!(seen.len() > 1, "every user hashed to {seen:?}");
    }
}

/// Round robin over a good and a failing (500) endpoint with `consecutive5xxErrors: 3` and
/// `maxEjectionPercent: 50`: the failing one is ejected after its third 500, then every
/// request is served by the good one.
#[derive(Debug)]
pub struct Ejection {
    pub yaml: String,
    pub authority: String,
    good: EchoServer,
    bad: EchoServer,
}

impl Ejection {
    pub async fn setup(net: u8) -> Ejection {
        let good = http_echo(SocketAddr::new(ip(net, 1), 0), "good").await;
        let port = good.addr.port();
        let bad = http_fixed_status(SocketAddr::new(ip(net, 2), port), 500).await;
        let vip = format!("10.96.{net}.1");
        let yaml = [
            service_with_pods(
                "eject",
                &vip,
                "http",
                port,
                &[&ip(net, 1).to_string(), &ip(net, 2).to_string()],
                false,
            ),
            destination_rule(
                "eject",
                "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 50}\n",
            ),
        ]
        .concat();
        Ejection {
            yaml,
            authority: format!("{vip}:80"),
            good,
            bad,
        }
    }

    pub async fn check(&self, p: &Proxy) {
        // Round robin sends about every other request to the failing endpoint until it is out.
        let mut failures = 0;
        for i in 0..40 {
            let r = get(p, &self.authority, &format!("/warm/{i}"), &[])
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            if r.status == 500 {
                failures += 1;
            }
            if failures == 3 {
                break;
            }
        }
        assert_eq!(
            failures, 3,
            "the failing endpoint was never picked three times"
        );
        // Envoy ejects on its main thread just after the third error.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let bad_hits = self.bad.hits();
        assert_eq!(
            bad_hits, 3,
            "the failing endpoint's requests before ejection"
        );
        let good_before = self.good.hits();
        for i in 0..20 {
            let r = get(p, &self.authority, &format!("/after/{i}"), &[])
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(r.status, 200, "request {i} after ejection");
            assert_eq!(r.header("x-served-by"), Some("good"));
        }
        assert_eq!(self.bad.hits(), bad_hits, "an ejected endpoint got traffic");
        assert_eq!(self.good.hits(), good_before + 20);
    }
}

/// One endpoint, always 500, `consecutive5xxErrors: 2`, `maxEjectionPercent: 100`: after two
/// 500s it is ejected and, with Istio's panic threshold of 0, the cluster has no healthy
/// endpoint left: 503 `no healthy upstream` until the ejection ends.
#[derive(Debug)]
pub struct AllEjected {
    pub yaml: String,
    pub authority: String,
    bad: EchoServer,
}

impl AllEjected {
    pub async fn setup(net: u8) -> AllEjected {
        let bad = http_fixed_status(SocketAddr::new(ip(net, 1), 0), 500).await;
        let vip = format!("10.96.{net}.1");
        let yaml = [
            service_with_pods(
                "alleject",
                &vip,
                "http",
                bad.addr.port(),
                &[&ip(net, 1).to_string()],
                false,
            ),
            destination_rule(
                "alleject",
                "    outlierDetection: {consecutive5xxErrors: 2, baseEjectionTime: 60s, maxEjectionPercent: 100}\n",
            ),
        ]
        .concat();
        AllEjected {
            yaml,
            authority: format!("{vip}:80"),
            bad,
        }
    }

    pub async fn check(&self, p: &Proxy) {
        for i in 0..2 {
            let r = get(p, &self.authority, &format!("/bad/{i}"), &[])
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(r.status, 500, "request {i}: {r:?}");
        }
        // Envoy ejects on its main thread just after the second error.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..3 {
            let r = get(p, &self.authority, &format!("/out/{i}"), &[])
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(r.status, 503, "request {i}: {r:?}");
            assert_eq!(String::from_utf8_lossy(&r.body), "no healthy upstream");
        }
        assert_eq!(self.bad.hits(), 2, "the ejected endpoint got traffic");
    }
}

/// An HTTP/1.1 upstream that holds every request for `hold` before answering 200; counts the
/// requests that reached it and the connections they came on.
#[derive(Debug)]
pub struct SlowUpstream {
    pub addr: SocketAddr,
    pub arrived: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for SlowUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn slow_upstream(bind: SocketAddr, hold: Duration) -> SlowUpstream {
    slow_upstream_status(bind, hold, 200).await
}

/// [`slow_upstream`] answering `status`.
pub async fn slow_upstream_status(bind: SocketAddr, hold: Duration, status: u16) -> SlowUpstream {
    holding_upstream(bind, move |_| hold, status).await
}

/// An HTTP/1.1 upstream holding request number `n` (1-based, across connections) for
/// `hold(n)` before answering `status` with the body `attempt <n>`.
async fn holding_upstream(
    bind: SocketAddr,
    hold: impl Fn(usize) -> Duration + Clone + Send + Sync + 'static,
    status: u16,
) -> SlowUpstream {
    let listener = TcpListener::bind(bind).await.expect("bind slow upstream");
    let addr = listener.local_addr().expect("addr");
    let arrived = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let (a, c) = (arrived.clone(), connections.clone());
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let (a, hold) = (a.clone(), hold.clone());
            conns.spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    buf.drain(..end);
                    let n = a.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(hold(n)).await;
                    let body = format!("attempt {n}\n");
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    SlowUpstream {
        addr,
        arrived,
        connections,
        task,
    }
}

/// `maxRetries: 1` with a VirtualService retrying 5xx twice, in front of an upstream that
/// answers 500 after a while: of two requests failing at once, one gets its retries, the
/// other's retry overflows (not made), so the upstream sees 3 + 1 attempts, not 6.
#[derive(Debug)]
pub struct RetryOverflow {
    pub yaml: String,
    pub authority: String,
    upstream: SlowUpstream,
}

impl RetryOverflow {
    pub async fn setup(net: u8) -> RetryOverflow {
        let upstream = slow_upstream_status(
            SocketAddr::new(ip(net, 1), 0),
            Duration::from_millis(400),
            500,
        )
        .await;
        let vip = format!("10.96.{net}.1");
        let yaml = [
            service_with_pods(
                "retrying",
                &vip,
                "http",
                upstream.addr.port(),
                &[&ip(net, 1).to_string()],
                false,
            ),
            destination_rule(
                "retrying",
                "    connectionPool:\n      http: {maxRetries: 1}\n",
            ),
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: retrying, namespace: default}\nspec:\n  hosts: [retrying.default.svc.cluster.local]\n  http:\n  - route: [{destination: {host: retrying.default.svc.cluster.local}}]\n    retries: {attempts: 2, retryOn: 5xx}\n".to_string(),
        ]
        .concat();
        RetryOverflow {
            yaml,
            authority: format!("{vip}:80"),
            upstream,
        }
    }

    pub async fn check(&self, p: &Proxy) {
        let send = |path: &'static str| {
            let (p, a) = (p.clone(), self.authority.clone());
            tokio::spawn(async move { get(&p, &a, path, &[]).await })
        };
        let (a, b) = (send("/a"), send("/b"));
        expect_status([("a", a), ("b", b)], 500).await;
        assert_eq!(self.upstream.arrived.load(Ordering::SeqCst), 4);
    }
}

/// `maxRequestsPerConnection: 1`: every request goes upstream on a connection of its own.
#[derive(Debug)]
pub struct PerConnection {
    pub yaml: String,
    pub authority: String,
    upstream: SlowUpstream,
}

impl PerConnection {
    pub async fn setup(net: u8) -> PerConnection {
        let upstream = slow_upstream(SocketAddr::new(ip(net, 1), 0), Duration::ZERO).await;
        let vip = format!("10.96.{net}.1");
        let yaml = [
            service_with_pods(
                "oneshot",
                &vip,
                "http",
                upstream.addr.port(),
                &[&ip(net, 1).to_string()],
                false,
            ),
            destination_rule(
                "oneshot",
                "    connectionPool:\n      http: {maxRequestsPerConnection: 1}\n",
            ),
        ]
        .concat();
        PerConnection {
            yaml,
            authority: format!("{vip}:80"),
            upstream,
        }
    }

    pub async fn check(&self, p: &Proxy) {
        for i in 0..4 {
            let r = get(p, &self.authority, &format!("/one/{i}"), &[])
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(r.status, 200, "request {i}: {r:?}");
        }
        assert_eq!(self.upstream.arrived.load(Ordering::SeqCst), 4);
        assert_eq!(self.upstream.connections.load(Ordering::SeqCst), 4);
    }
}

/// `maxConnections: 1`, `http1MaxPendingRequests: 1` in front of a slow upstream (the
/// circuit-breaking task's rule): one request in flight, one waiting for the connection, and
/// a third is refused at once with 503 and Envoy's overflow body and header.
#[derive(Debug)]
pub struct Overflow {
    pub yaml: String,
    pub authority: String,
    upstream: SlowUpstream,
}

const HOLD: Duration = Duration::from_millis(2000);

impl Overflow {
    pub async fn setup(net: u8) -> Overflow {
        let upstream = slow_upstream(SocketAddr::new(ip(net, 1), 0), HOLD).await;
        let vip = format!("10.96.{net}.1");
        let yaml = [
            service_with_pods(
                "limited",
                &vip,
                "http",
                upstream.addr.port(),
                &[&ip(net, 1).to_string()],
                false,
            ),
            destination_rule(
                "limited",
                "    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1}\n",
            ),
        ]
        .concat();
        Overflow {
            yaml,
            authority: format!("{vip}:80"),
            upstream,
        }
    }

    async fn arrived_at_least(&self, n: usize) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if self.upstream.arrived.load(Ordering::SeqCst) >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    pub async fn check(&self, p: &Proxy) {
        let send = |path: &'static str| {
            let (p, a) = (p.clone(), self.authority.clone());
            tokio::spawn(async move { get(&p, &a, path, &[]).await })
        };
        let first = send("/first");
        assert!(
            self.arrived_at_least(1).await,
            "the first request never arrived"
        );
        let second = send("/second");
        // The second waits for the only connection (pending), never reaching the upstream.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(self.upstream.arrived.load(Ordering::SeqCst), 1);
        let started = Instant::now();
        let third = get(p, &self.authority, "/third", &[])
            .await
            .unwrap_or_else(|e| panic!("third: {e}"));
        assert_eq!(third.status, 503, "{third:?}");
        assert_eq!(String::from_utf8_lossy(&third.body), OVERFLOW_BODY);
        assert_eq!(third.header("x-envoy-overloaded"), Some("true"));
        assert!(
            started.elapsed() < HOLD / 2,
            "the overflow was not answered at once"
        );
        expect_status([("first", first), ("second", second)], 200).await;
        assert_eq!(self.upstream.arrived.load(Ordering::SeqCst), 2);
    }
}

/// An HTTPRoute with `retry` and `timeouts.backendRequest` (the per-try timeout, GEP-1742) in
/// front of an upstream whose first answer comes after the per-try timeout: the timed-out
/// attempt is retried (GEP-1731: retry on "disconnect, reset, timeout"), the client gets the
/// second attempt's 200.
#[derive(Debug)]
pub struct BackendTimeoutRetry {
    pub yaml: String,
    pub authority: String,
    upstream: SlowUpstream,
}

impl BackendTimeoutRetry {
    pub async fn setup(net: u8) -> BackendTimeoutRetry {
        // Only the first request is held past the per-try timeout.
        let hold = |n: usize| Duration::from_secs(if n == 1 { 3 } else { 0 });
        let upstream = holding_upstream(SocketAddr::new(ip(net, 1), 0), hold, 200).await;
        let addr = upstream.addr;
        let vip = format!("10.96.{net}.1");
        let yaml = [
            service_with_pods("timing", &vip, "http", addr.port(), &[&ip(net, 1).to_string()], false),
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: timing, namespace: default}\nspec:\n  parentRefs: [{group: '', kind: Service, name: timing, port: 80}]\n  rules:\n  - backendRefs: [{name: timing, port: 80}]\n    timeouts: {backendRequest: 300ms}\n    retry: {attempts: 2}\n".to_string(),
        ]
        .concat();
        BackendTimeoutRetry {
            yaml,
            authority: format!("{vip}:80"),
            upstream,
        }
    }

    pub async fn check(&self, p: &Proxy) {
        let r = get(p, &self.authority, "/", &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, b"attempt 2\n", "{r:?}");
        assert_eq!(self.upstream.arrived.load(Ordering::SeqCst), 2);
    }
}

type Pending = JoinHandle<Result<Exchange, String>>;

/// Await requests sent in the background; each must have answered `status`.
async fn expect_status<const N: usize>(pending: [(&str, Pending); N], status: u16) {
    for (name, h) in pending {
        let r = h
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.status, status, "{name}: {r:?}");
    }
}
