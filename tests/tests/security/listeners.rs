//! Security rows: listeners (see main.rs) against the standalone host, in-process on loopback:
//! admin lockdown, slowloris on every listener, metric label growth, certificates and ALPN,
//! graceful drain.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use waypoint_hbone::timeouts::Timeouts;
use waypoint_hbone::HboneClient;
use waypoint_proxy::run::RunOptions;
use waypoint_tests::echo::{http_echo, tcp_echo};
use waypoint_tests::hbone_client::{collect, get, http1_over, tunnel};
use waypoint_tests::manifests::plain_service;
use waypoint_tests::pki::Pki;
use waypoint_tests::probes::{
    client_tls, closed_within, connect_status, h2_connection, raw_http, start_with, tls_connect,
};
use waypoint_tests::waypoint::{admin_get, eventually};

const LIMIT: Duration = Duration::from_secs(60);

/// Short listener timeouts, so the slowloris rows finish in seconds.
fn short(opts: &mut RunOptions) {
    opts.timeouts = Timeouts {
        tls_handshake: Duration::from_secs(1),
        preface: Duration::from_secs(1),
        request_headers: Duration::from_secs(1),
        connection_idle: Duration::from_secs(1),
        ..Timeouts::default()
    };
}

/// What a config dump contains and nothing else does.
fn is_dump(body: &str) -> bool {
    body.contains("\"policy\"") || body.contains("\"certificates\"")
}

// Attack: reach the config dump (or Envoy-style mutating endpoints) through the metrics or
// readiness port, which listen on the pod network: plain, dot-segment, percent-encoded,
// other methods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_dump_only_on_the_loopback_admin_listener() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let (wp, _dir) = start_with(&pki, "", |_| {}).await;
        let stats = wp.stats_addr.expect("stats");
        let ready = wp.ready_addr.expect("ready");
        let admin = wp.admin_addr.expect("admin");
        let req = |method: &str, path: &str| {
            format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
        };
        let attacks = [
            ("GET", "/config_dump"),
            ("GET", "/stats/prometheus/../../config_dump"),
            ("GET", "/stats/prometheus/%2e%2e/%2e%2e/config_dump"),
            ("GET", "/stats/prometheus/%2E%2E%2F%2E%2E%2Fconfig_dump"),
            ("GET", "/healthz/ready/../../config_dump"),
            ("GET", "//config_dump"),
            ("GET", "/./config_dump"),
            ("GET", "/config_dump?x=1"),
            ("GET", "http://x/config_dump"),
            ("POST", "/config_dump"),
            ("HEAD", "/config_dump"),
            ("POST", "/quitquitquit"),
            ("POST", "/stats/prometheus/../../quitquitquit"),
            ("POST", "/healthcheck/fail"),
            ("GET", "/metrics"),
        ];
        for port in [stats, ready] {
            for (method, path) in attacks {
                let (status, text) = raw_http(port, &req(method, path)).await;
                assert!(
                    status == 404 || status == 405 || status == 400,
                    "{method} {path} on {port}: {status}\n{text}"
                );
                assert!(!is_dump(&text), "{method} {path} on {port} leaked the dump");
            }
        }
        // Each outer port serves exactly its one endpoint, and only with GET.
        assert_eq!(raw_http(stats, &req("GET", "/stats/prometheus")).await.0, 200);
        assert_eq!(raw_http(stats, &req("GET", "/healthz/ready")).await.0, 404);
        assert_eq!(raw_http(stats, &req("POST", "/stats/prometheus")).await.0, 405);
        assert_eq!(raw_http(ready, &req("GET", "/healthz/ready")).await.0, 200);
        assert_eq!(raw_http(ready, &req("GET", "/stats/prometheus")).await.0, 404);
        // The admin listener (loopback) has the dump; dot-segments do not reach it there either.
        let (status, text) = raw_http(admin, &req("GET", "/config_dump")).await;
        assert_eq!(status, 200, "{text}");
        assert!(is_dump(&text));
        let (status, text) = raw_http(admin, &req("GET", "/stats/prometheus/../../config_dump")).await;
        assert_eq!(status, 404);
        assert!(!is_dump(&text));
        // The default admin address is loopback.
        let defaults = RunOptions::new(vec![], pki.issue("default", "waypoint"));
        assert!(defaults.admin_addr.expect("admin").ip().is_loopback());
    })
    .await
    .expect("test timed out");
}

// Attack: slowloris on the admin ports: request headers at 1 byte every 2 s, and a kept-alive
// connection left idle after one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_idle_admin_connections_are_closed() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let (wp, _dir) = start_with(&pki, "", short).await;
        let ports = [
            wp.ready_addr.expect("ready"),
            wp.stats_addr.expect("stats"),
            wp.admin_addr.expect("admin"),
        ];
        let trickle = ports.map(|addr| async move {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let (mut r, mut w) = tcp.into_split();
            let writer = tokio::spawn(async move {
                for b in b"GET /healthz/ready HTTP/1.1\r\nhost: x\r\n\r\n" {
                    if w.write_all(&[*b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            });
            // The head would take 80 s at this pace; the 1 s header timeout closes it.
            let closed = closed_within(&mut r, Duration::from_secs(5)).await;
            writer.abort();
            assert!(closed, "trickled headers kept {addr} open");
        });
        futures_join(trickle).await;
        // A body at 1 byte / 2 s: the answer does not wait for it and the connection closes.
        for addr in ports {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let (mut r, mut w) = tcp.into_split();
            w.write_all(b"POST /healthz/ready HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n")
                .await
                .expect("write");
            let writer = tokio::spawn(async move {
                for _ in 0..100 {
                    if w.write_all(b"x").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            });
            let closed = closed_within(&mut r, Duration::from_secs(5)).await;
            writer.abort();
            assert!(closed, "trickled body kept {addr} open");
        }
        for addr in ports {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            tcp.write_all(b"GET /healthz/ready HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .expect("write");
            // The response arrives, then the idle keep-alive connection is closed.
            assert!(
                closed_within(&mut tcp, Duration::from_secs(5)).await,
                "idle keep-alive connection to {addr} stayed open"
            );
        }
    })
    .await
    .expect("test timed out");
}

/// Await every future of an array (the tests crate has no `futures` dependency).
async fn futures_join<F: std::future::Future<Output = ()> + Send + 'static>(fs: [F; 3]) {
    let handles = fs.map(tokio::spawn);
    for h in handles {
        h.await.expect("probe panicked");
    }
}

// Attack: hold HBONE connections open without using them: TCP without a TLS handshake, TLS
// without the HTTP/2 preface, the preface without a request, an h2 connection left idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_hbone_connections_are_closed() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = tcp_echo("127.0.0.1:0".parse().expect("addr")).await;
        let yaml = plain_service("echo", "10.96.7.1", "127.0.0.1", echo.addr.port());
        let (wp, _dir) = start_with(&pki, &yaml, short).await;
        let addr = wp.hbone_addr;
        let sleep = pki.ca.issue(&pki.id("default", "sleep")).expect("issue");
        let tls = client_tls(
            pki.store("default", "sleep"),
            &sleep.cert_pem,
            &sleep.key_pem,
            true,
        );

        // No TLS handshake at all.
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        assert!(
            closed_within(&mut tcp, Duration::from_secs(5)).await,
            "silent TCP kept open"
        );

        // TLS, then silence (no HTTP/2 preface).
        let mut io = tls_connect(tls.clone(), addr).await.expect("tls");
        assert!(
            closed_within(&mut io, Duration::from_secs(5)).await,
            "TLS without preface kept open"
        );

        // The preface (and SETTINGS), but never a request.
        let (_send, conn) = h2_connection(tls.clone(), addr).await.expect("h2");
        let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
        assert!(ended.is_ok(), "h2 connection without a request kept open");

        // One CONNECT that finishes, then an idle connection: GOAWAY and close.
        let (send, conn) = h2_connection(tls.clone(), addr).await.expect("h2");
        let mut send = send.ready().await.expect("ready");
        let req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri("10.96.7.1:80")
            .body(())
            .expect("req");
        let (resp, mut stream) = send.send_request(req, false).expect("send");
        let resp = resp.await.expect("response");
        assert_eq!(resp.status(), 200);
        stream
            .send_data(bytes::Bytes::from_static(b"ping"), true)
            .expect("data");
        let mut body = resp.into_body();
        while let Some(chunk) = body.data().await {
            if chunk.is_err() {
                break;
            }
        }
        drop((stream, body));
        let ended = tokio::time::timeout(Duration::from_secs(6), conn).await;
        assert!(ended.is_ok(), "idle h2 connection kept open");
        drop(send);
    })
    .await
    .expect("test timed out");
}

/// Sum of the `istio_requests_total` counters in a Prometheus text.
fn requests_total(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

// Attack: grow the waypoint's memory and scrape size with label values the peer chooses:
// 90 CONNECTs to distinct 30 KB authorities, one request each (1.7 MB -> 65 MB before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_authorities_do_not_grow_metrics() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let (wp, _dir) = start_with(&pki, "", |_| {}).await;
        let stats = wp.stats_addr.expect("stats");
        let client = HboneClient::new(pki.store("default", "sleep"));
        let hbone = wp.hbone_addr;
        let request = |authority: String| {
            let client = &client;
            async move {
                let s = tunnel(client, hbone, &[], &authority).await.ok()?;
                let mut send = http1_over(s).await.ok()?;
                let r = send.send_request(get("x", "/")).await.ok()?;
                Some(collect(r).await.ok()?.status)
            }
        };
        // One unknown destination first: its series exists before the measurement.
        let warm = request("unknown-warmup:80".to_string()).await;
        assert!(warm.is_some(), "warm-up request got no response");
        let (_, before) = admin_get(stats, "/stats/prometheus").await.expect("stats");
        let long = "a".repeat(30 * 1024);
        for i in 0..90 {
            let status = request(format!("{long}{i}:80")).await;
            assert!(status.is_some(), "request {i} got no response");
        }
        let (_, after) = admin_get(stats, "/stats/prometheus").await.expect("stats");
        // Every request was counted...
        assert_eq!(
            requests_total(&after),
            requests_total(&before) + 90,
            "{after}"
        );
        // ...into the same `unknown` destination series: nothing grew but the numbers.
        assert!(
            !after.contains(&"a".repeat(300)),
            "authority used as a label"
        );
        assert!(
            after.len() < before.len() + 1024,
            "stats grew from {} to {} bytes",
            before.len(),
            after.len()
        );
        assert!(after.contains("destination_service=\"unknown\""), "{after}");
    })
    .await
    .expect("test timed out");
}

// Attack: a certificate with two SPIFFE URI SANs (which one does policy see?).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_with_two_spiffe_ids_is_rejected() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = tcp_echo("127.0.0.1:0".parse().expect("addr")).await;
        let yaml = plain_service("echo", "10.96.7.2", "127.0.0.1", echo.addr.port());
        let (wp, _dir) = start_with(&pki, &yaml, |_| {}).await;
        let trust = pki.store("default", "sleep");
        let one = pki
            .ca
            .issue_with_uri_sans(&["spiffe://cluster.local/ns/default/sa/sleep"])
            .expect("issue");
        let two = pki
            .ca
            .issue_with_uri_sans(&[
                "spiffe://cluster.local/ns/default/sa/sleep",
                "spiffe://cluster.local/ns/istio-system/sa/admin",
            ])
            .expect("issue");
        // Control: the same client with one SAN gets its tunnel.
        let ok = connect_status(
            client_tls(trust.clone(), &one.cert_pem, &one.key_pem, true),
            wp.hbone_addr,
            "10.96.7.2:80",
        )
        .await;
        assert_eq!(ok.ok(), Some(200));
        let bad = connect_status(
            client_tls(trust, &two.cert_pem, &two.key_pem, true),
            wp.hbone_addr,
            "10.96.7.2:80",
        )
        .await;
        assert!(bad.is_err(), "two-SAN certificate accepted: {bad:?}");
    })
    .await
    .expect("test timed out");
}

// Attack: speak HBONE without negotiating ALPN h2 (HBONE is HTTP/2 only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_alpn_h2_is_rejected() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = tcp_echo("127.0.0.1:0".parse().expect("addr")).await;
        let yaml = plain_service("echo", "10.96.7.3", "127.0.0.1", echo.addr.port());
        let (wp, _dir) = start_with(&pki, &yaml, |_| {}).await;
        let sleep = pki.ca.issue(&pki.id("default", "sleep")).expect("issue");
        let trust = pki.store("default", "sleep");
        let with = client_tls(trust.clone(), &sleep.cert_pem, &sleep.key_pem, true);
        let without = client_tls(trust, &sleep.cert_pem, &sleep.key_pem, false);
        assert_eq!(
            connect_status(with, wp.hbone_addr, "10.96.7.3:80")
                .await
                .ok(),
            Some(200)
        );
        let r = connect_status(without, wp.hbone_addr, "10.96.7.3:80").await;
        assert!(r.is_err(), "no-ALPN client got a tunnel: {r:?}");
    })
    .await
    .expect("test timed out");
}

// Lifecycle: on shutdown an in-flight request finishes (backend answers after 1 s), readiness
// turns 503 at once, new HBONE connections are refused, and the drain ends when the last
// connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "slow").await;
        let yaml = plain_service("slow", "10.96.7.4", "127.0.0.1", echo.addr.port());
        let (wp, _dir) = start_with(&pki, &yaml, |_| {}).await;
        let (hbone, ready) = (wp.hbone_addr, wp.ready_addr.expect("ready"));
        let client = HboneClient::new(pki.store("default", "sleep"));
        let s = tunnel(&client, hbone, &[], "10.96.7.4:80")
            .await
            .expect("tunnel");
        let mut send = http1_over(s).await.expect("http1");
        // The client keeps its keep-alive connection: the waypoint must close it after the
        // in-flight response (`connection: close`, as Envoy's drain does).
        let in_flight = tokio::spawn(async move {
            let r = send.send_request(get("slow", "/delay/1000")).await?;
            let c = collect(r).await?;
            Ok::<_, anyhow::Error>((c.status, c.header("connection").map(str::to_string), send))
        });
        // The request has reached the backend before shutdown starts.
        let hits = Arc::new(echo);
        let h = hits.clone();
        assert!(
            eventually(Duration::from_secs(5), || {
                let h = h.clone();
                async move { h.hits() >= 1 }
            })
            .await
        );
        let drain = tokio::spawn(wp.shutdown(Duration::from_secs(10)));
        assert!(
            eventually(Duration::from_secs(5), || async move {
                admin_get(ready, "/healthz/ready")
                    .await
                    .map(|r| r.0)
                    .unwrap_or(0)
                    == 503
            })
            .await,
            "readiness must turn 503 while draining"
        );
        assert!(
            eventually(Duration::from_secs(5), || async move {
                TcpStream::connect(hbone).await.is_err()
            })
            .await,
            "new HBONE connections must be refused while draining"
        );
        let (status, connection, send) = in_flight.await.expect("join").expect("in-flight request");
        assert_eq!(
            status, 200,
            "in-flight request must complete during the drain"
        );
        assert_eq!(
            connection.as_deref(),
            Some("close"),
            "HTTP/1 closed after the drain's last response"
        );
        drop(client);
        let drained = drain.await.expect("join");
        assert!(drained, "drain must end when the last connection closes");
        drop(send);
    })
    .await
    .expect("test timed out");
}
