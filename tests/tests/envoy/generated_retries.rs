//! Retries through the bootstrap `waypoint bootstrap` generates (module `route_table:
//! waypoint`): a rule with Istio's default retry policy takes the route that carries it (which
//! does not retry a 503), a VirtualService's own `retries` go through the `x-waypoint-retry`
//! route and router headers, and `attempts: 0` retries nothing. An upstream that answers 503
//! to its first N requests counts the attempts Envoy made.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use waypoint_tests::envoy_generated::{client, exchange, write_config, GeneratedWaypoint, Layout};
use waypoint_tests::manifests::service;
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::waypoint::WAYPOINT_GATEWAY;

const VIP: &str = "10.96.51.1:80";

/// An HTTP/1.1 upstream answering 503 to its first `fail` requests, then 200; counts requests
/// and echoes the headers that must not reach it.
struct Flaky {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    leaked: Arc<AtomicUsize>,
}

async fn flaky(ip: IpAddr, fail: usize) -> Flaky {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind flaky upstream");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let leaked = Arc::new(AtomicUsize::new(0));
    let (h, l) = (hits.clone(), leaked.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (h, l) = (h.clone(), l.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request head (GETs without a body) per iteration.
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    buf.drain(..end);
                    if head.contains("x-waypoint-") {
                        l.fetch_add(1, Ordering::SeqCst);
                    }
                    let n = h.fetch_add(1, Ordering::SeqCst) + 1;
                    let status = if n <= fail {
                        "503 Service Unavailable"
                    } else {
                        "200 OK"
                    };
                    let body = format!("attempt {n}\n");
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Flaky { addr, hits, leaked }
}

/// One request to service `flaky` whose upstream fails `fail` times, with `routes` (a
/// VirtualService `http` list, or none); returns (status, upstream attempts).
async fn attempts(base: u8, fail: usize, retries: Option<&str>) -> (u16, usize) {
    let pki = Pki::new("cluster.local");
    let ip = IpAddr::from([127, base, 0, 3]);
    let up = flaky(ip, fail).await;
    let config = TempDir::new("gen-retries");
    let vs = retries
        .map(|r| {
            format!(
                "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: flaky, namespace: default}}\nspec:\n  hosts: [flaky.default.svc.cluster.local]\n  http:\n  - route: [{{destination: {{host: flaky.default.svc.cluster.local}}}}]\n    retries: {r}\n"
            )
        })
        .unwrap_or_default();
    let yaml = format!(
        "{WAYPOINT_GATEWAY}{}{vs}",
        service(
            "flaky",
            "10.96.51.1",
            &ip.to_string(),
            up.addr.port(),
            false
        )
    );
    let (paths, snap) = write_config(config.path(), &yaml);
    // The pods' HBONE port is unused here (plaintext upstream).
    let wp = GeneratedWaypoint::start(&pki, &snap, &paths, Layout::Originator, 1)
        .await
        .unwrap_or_else(|e| panic!("start Envoy on the generated bootstrap: {e}"));
    let c = client(&pki, "default", "sleep");
    let r = exchange(&c, wp.hbone_addr, VIP, "GET", "/x", 0)
        .await
        .unwrap_or_else(|e| panic!("request: {e}\n{}", wp.log_tail(20)));
    assert_eq!(
        up.leaked.load(Ordering::SeqCst),
        0,
        "x-waypoint-* headers reached the upstream"
    );
    (r.status, up.hits.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_does_not_retry_a_503() {
    // Istio's default: connect-failure,refused-stream,unavailable,cancelled and
    // retriable-status-codes with no codes, so a 503 answer is final.
    assert_eq!(attempts(61, 1, None).await, (503, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_service_retries_are_applied() {
    assert_eq!(
        attempts(62, 2, Some("{attempts: 3, retryOn: 5xx}")).await,
        (200, 3)
    );
    // Fewer attempts than failures: the last 503 is returned.
    assert_eq!(
        attempts(63, 5, Some("{attempts: 2, retryOn: 5xx}")).await,
        (503, 3)
    );
    // A status code in retryOn (Istio turns it into retriable_status_codes).
    assert_eq!(
        attempts(64, 1, Some("{attempts: 1, retryOn: \"503\"}")).await,
        (200, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_attempts_retries_nothing() {
    assert_eq!(attempts(65, 1, Some("{attempts: 0}")).await, (503, 1));
}
