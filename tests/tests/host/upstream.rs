//! End-to-end with config: requests to a service VIP are decided by the policy core and sent
//! to its endpoints, over HBONE (presenting the waypoint's identity) for mesh pods and plain
//! HTTP otherwise; a dead endpoint is retried on another (Istio's default retry policy).

use std::time::Duration;

use waypoint_hbone::HboneClient;
use waypoint_tests::echo::http_echo;
use waypoint_tests::hbone_client::http1_get;
use waypoint_tests::hbone_server::HboneServer;
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::TestWaypoint;

const LIMIT: Duration = Duration::from_secs(60);

/// A Service with a VIP and one Pod per IP, in `ns` (ambient or not).
pub fn service_yaml(
    ns: &str,
    ambient: bool,
    name: &str,
    vip: &str,
    target_port: u16,
    pods: &[&str],
) -> String {
    let mut y = format!(
        r#"
---
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels:
    istio.io/dataplane-mode: {mode}
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}
  labels:
    istio.io/use-waypoint: waypoint
    istio.io/use-waypoint-namespace: default
spec:
  clusterIP: {vip}
  ports:
  - name: http
    port: 80
    targetPort: {target_port}
  selector:
    app: {name}
"#,
        mode = if ambient { "ambient" } else { "none" }
    );
    for (i, ip) in pods.iter().enumerate() {
        y.push_str(&format!(
            r#"
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}-{i}
  namespace: {ns}
  labels:
    app: {name}
spec:
  serviceAccountName: {name}
  containers:
  - name: app
    image: example
status:
  podIP: {ip}
"#
        ));
    }
    y
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_endpoint_is_reached_over_hbone_with_waypoint_identity() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "echo-mesh").await;
        // The destination "ztunnel": its identity is the pod's service account.
        let dest = HboneServer::start(
            "127.0.0.1:0".parse().expect("addr"),
            pki.store("default", "echo"),
        )
        .await;
        let yaml = service_yaml(
            "default",
            true,
            "echo",
            "10.96.0.50",
            echo.addr.port(),
            &["127.0.0.1"],
        );
        let wp = TestWaypoint::start(&pki, &yaml, dest.addr.port()).await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        for i in 0..3 {
            let r = http1_get(
                &client,
                wp.running.hbone_addr,
                "10.96.0.50:80",
                &format!("/m/{i}"),
            )
            .await
            .expect("request");
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.header("x-served-by"), Some("echo-mesh"));
            assert!(r.text().contains(&format!("path=/m/{i}")));
            assert!(r.text().contains("host=10.96.0.50:80"), "{}", r.text());
        }
        let principals = dest.seen.principals.lock().expect("lock").clone();
        assert!(!principals.is_empty());
        assert!(
            principals
                .iter()
                .all(|p| p == "spiffe://cluster.local/ns/default/sa/waypoint"),
            "the waypoint must present its own identity upstream: {principals:?}"
        );
        let authorities = dest.seen.authorities.lock().expect("lock").clone();
        assert!(
            authorities.iter().all(|a| *a == echo.addr.to_string()),
            "{authorities:?}"
        );
        // Upstream HTTP/1.1 connections (one CONNECT stream each) are reused when idle.
        let connects = dest.seen.connects.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (1..=3).contains(&connects),
            "{connects} CONNECTs for 3 requests"
        );
        assert_eq!(echo.hits(), 3);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_endpoints_and_dead_endpoint_is_retried() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let live = http_echo("127.0.0.2:0".parse().expect("addr"), "live").await;
        // 127.0.0.3 has nothing on the same port: connect failures, retried elsewhere.
        let yaml = service_yaml(
            "legacy",
            false,
            "web",
            "10.96.0.60",
            live.addr.port(),
            &["127.0.0.2", "127.0.0.3"],
        );
        let wp = TestWaypoint::start(&pki, &yaml, 15008).await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        for i in 0..10 {
            let r = http1_get(
                &client,
                wp.running.hbone_addr,
                "10.96.0.60:80",
                &format!("/r/{i}"),
            )
            .await
            .expect("request");
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            assert_eq!(r.header("x-served-by"), Some("live"));
        }
        assert_eq!(live.hits(), 10);
        // The service is known by hostname too.
        let r = http1_get(
            &client,
            wp.running.hbone_addr,
            "web.legacy.svc.cluster.local:80",
            "/byname",
        )
        .await
        .expect("request");
        assert_eq!(r.status, 200, "{}", r.text());
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_killed_mid_test_is_retried_on_another() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let first = http_echo("127.0.0.4:0".parse().expect("addr"), "first").await;
        let port = first.addr.port();
        let second = http_echo(format!("127.0.0.5:{port}").parse().expect("addr"), "second").await;
        let yaml = service_yaml(
            "killed",
            false,
            "shop",
            "10.96.0.61",
            port,
            &["127.0.0.4", "127.0.0.5"],
        );
        let wp = TestWaypoint::start(&pki, &yaml, 15008).await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        let mut served = std::collections::BTreeMap::new();
        for i in 0..20 {
            let r = http1_get(
                &client,
                wp.running.hbone_addr,
                "10.96.0.61:80",
                &format!("/before/{i}"),
            )
            .await
            .expect("request");
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            *served
                .entry(r.header("x-served-by").unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
        assert_eq!(
            served.len(),
            2,
            "both endpoints serve before the kill: {served:?}"
        );
        // Kill the first endpoint: its listener and every open (pooled) connection go away.
        drop(first);
        for i in 0..20 {
            let r = http1_get(
                &client,
                wp.running.hbone_addr,
                "10.96.0.61:80",
                &format!("/after/{i}"),
            )
            .await
            .expect("request");
            assert_eq!(r.status, 200, "request {i} after the kill: {}", r.text());
            assert_eq!(r.header("x-served-by"), Some("second"));
        }
        assert!(second.hits() >= 20);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_without_endpoints_answers_503() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let yaml = service_yaml("default", true, "empty", "10.96.0.70", 8080, &[]);
        let wp = TestWaypoint::start(&pki, &yaml, 15008).await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        let r = http1_get(&client, wp.running.hbone_addr, "10.96.0.70:80", "/")
            .await
            .expect("request");
        assert_eq!(r.status, 503);
        assert_eq!(r.text(), "no healthy upstream");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_service_port_is_relayed_over_hbone_keeping_forwarded() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = waypoint_tests::echo::tcp_echo("127.0.0.1:0".parse().expect("addr")).await;
        let dest = HboneServer::start(
            "127.0.0.1:0".parse().expect("addr"),
            pki.store("default", "db"),
        )
        .await;
        // Port named tcp-*: opaque TCP, relayed without HTTP detection.
        let yaml = service_yaml(
            "default",
            true,
            "db",
            "10.96.0.80",
            echo.addr.port(),
            &["127.0.0.1"],
        )
        .replace("- name: http", "- name: tcp-db");
        let wp = TestWaypoint::start(&pki, &yaml, dest.addr.port()).await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        let mut s = waypoint_tests::hbone_client::tunnel(
            &client,
            wp.running.hbone_addr,
            &[],
            "10.96.0.80:80",
        )
        .await
        .expect("tunnel");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Bytes that look like HTTP are still relayed verbatim on a TCP port.
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.expect("write");
        s.shutdown().await.expect("shutdown");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read");
        assert_eq!(&got, b"GET / HTTP/1.1\r\n\r\n");
        let fwd = dest.seen.forwarded.lock().expect("lock").clone();
        assert_eq!(fwd.len(), 1);
        assert!(fwd[0].contains("for=\"10.0.0.7:43210\""), "{fwd:?}");
        let tp = dest.seen.traceparents.lock().expect("lock").clone();
        assert!(
            tp[0].starts_with("00-0af7651916cd43dd8448eb211c80319c"),
            "{tp:?}"
        );
        assert_eq!(echo.hits(), 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_protocol_follows_the_service_port() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = http_echo("127.0.0.41:0".parse().expect("addr"), "proto").await;
        let http = service_yaml(
            "legacy",
            false,
            "plain",
            "10.96.0.91",
            echo.addr.port(),
            &["127.0.0.41"],
        );
        let h2 = service_yaml(
            "legacy",
            false,
            "fast",
            "10.96.0.92",
            echo.addr.port(),
            &["127.0.0.41"],
        )
        .replace("- name: http", "- name: http2-api");
        let wp = TestWaypoint::start(&pki, &format!("{http}{h2}"), 15008).await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        for (vip, want) in [
            ("10.96.0.91:80", "version=HTTP/1.1"),
            ("10.96.0.92:80", "version=HTTP/2.0"),
        ] {
            // The client speaks HTTP/2 prior knowledge in both cases.
            let s = waypoint_tests::hbone_client::tunnel(&client, wp.running.hbone_addr, &[], vip)
                .await
                .expect("tunnel");
            let mut send = waypoint_tests::hbone_client::http2_over(s)
                .await
                .expect("h2");
            let req = http::Request::builder()
                .uri(format!("http://{vip}/proto"))
                .body(waypoint_tests::echo::empty())
                .expect("req");
            let r =
                waypoint_tests::hbone_client::collect(send.send_request(req).await.expect("send"))
                    .await
                    .expect("collect");
            assert_eq!(r.status, 200, "{}", r.text());
            assert!(r.text().contains(want), "{vip}: {}", r.text());
        }
    })
    .await
    .expect("test timed out");
}

/// The upstream pool on its own: a pooled connection idle for the timeout is swept and closed.
mod upstream_pool {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;
    use waypoint_hbone::HboneClient;
    use waypoint_proxy::upstream::{Target, Upstreams, Wire};
    use waypoint_tests::pki::Pki;

    /// An HTTP/1.1 server on loopback that counts its open connections.
    async fn counting_server() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let open = Arc::new(AtomicUsize::new(0));
        let o = open.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let o = o.clone();
                o.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(
                            http::Response::new(Empty::<Bytes>::new()),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (addr, open)
    }

    /// An HTTP/1.1 server on loopback answering after `delay`; counts accepted connections.
    async fn slow_server(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let a = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, std::convert::Infallible>(
                            http::Response::new(Empty::<Bytes>::new()),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn more_requests_in_flight_than_the_idle_cap_keep_their_connections() {
        // 64 requests in flight to one endpoint, as one HBONE connection with 64 streams sends
        // at saturation: every connection goes back to the pool, so the next waves open none.
        let pki = Pki::new("cluster.local");
        let (addr, accepted) = slow_server(Duration::from_millis(50)).await;
        let ups = Upstreams::new(HboneClient::new(pki.store("default", "waypoint")));
        for _wave in 0..3 {
            let mut requests = tokio::task::JoinSet::new();
            for _ in 0..64 {
                let ups = ups.clone();
                requests.spawn(async move {
                    let req = http::Request::builder()
                        .uri("/")
                        .header(http::header::HOST, "backend")
                        .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed())
                        .expect("request");
                    let resp = ups
                        .send(&Target::plain(addr), Wire::Http1, req)
                        .await
                        .expect("response");
                    assert_eq!(resp.status(), 200);
                    resp.into_body().collect().await.expect("body");
                });
            }
            while let Some(r) = requests.join_next().await {
                r.expect("request task");
            }
            // The connections' tasks mark them ready once the exchange is over.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            64,
            "connections opened over three waves of 64 concurrent requests"
        );
    }

    #[tokio::test]
    async fn pooled_connections_idle_for_the_timeout_are_closed() {
        let pki = Pki::new("cluster.local");
        let (addr, open) = counting_server().await;
        let ups = Upstreams::with_idle_timeout(
            HboneClient::new(pki.store("default", "waypoint")),
            Some(Duration::from_millis(300)),
        );
        ups.spawn_idle_sweeper();
        let req = http::Request::builder()
            .uri("/")
            .header(http::header::HOST, "backend")
            .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed())
            .expect("request");
        let resp = ups
            .send(&Target::plain(addr), Wire::Http1, req)
            .await
            .expect("response");
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.expect("body");
        assert_eq!(ups.pooled(), 1, "the connection is pooled after use");
        assert_eq!(open.load(Ordering::SeqCst), 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while (ups.pooled() > 0 || open.load(Ordering::SeqCst) > 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(ups.pooled(), 0, "idle pooled connection swept");
        assert_eq!(open.load(Ordering::SeqCst), 0, "and closed at the server");
    }
}
