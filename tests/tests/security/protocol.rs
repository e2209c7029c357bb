//! Security rows: protocol (see main.rs), against the standalone host. Config in the style of
//! examples/bookinfo: its AuthorizationPolicies, including the waypoint-wide DENY of `/admin`.
//! Every test's backend records what it receives; the assertions say nothing forbidden did.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use waypoint_hbone::timeouts::Timeouts;
use waypoint_hbone::{H2Stream, HboneClient};
use waypoint_tests::echo::empty;
use waypoint_tests::hbone_client::{http2_over, tunnel};
use waypoint_tests::pki::Pki;
use waypoint_tests::security::{
    closed_without_reply, mesh_config, read_response, start_waypoint, write_request, Recorder,
};
use waypoint_tests::waypoint::TestWaypoint;

const LIMIT: Duration = Duration::from_secs(30);
const REPLY: Duration = Duration::from_secs(5);

/// The bookinfo policies: ALLOW per service, and the waypoint-wide DENY of `/admin`.
const POLICIES: &str = include_str!("../../../examples/bookinfo/policies/authorization.yaml");

/// `ratings` on an `http` port, `opaque` on a port whose protocol is unknown (`web`).
const RATINGS: &str = "10.96.9.1:80";
const OPAQUE: &str = "10.96.9.2:80";

/// A non-mesh Service with its port named `port_name` (its protocol) and one pod.
fn service(name: &str, vip: &str, port_name: &str, ip: &str, port: u16) -> String {
    waypoint_tests::manifests::named_port_service(name, vip, port_name, ip, port, false)
}

struct Setup {
    _pki: Pki,
    wp: TestWaypoint,
    client: std::sync::Arc<HboneClient>,
    ratings: Recorder,
    opaque: Recorder,
}

impl Setup {
    async fn tunnel(&self, authority: &str) -> H2Stream {
        tunnel(&self.client, self.wp.running.hbone_addr, &[], authority)
            .await
            .expect("tunnel")
    }
}

/// The waypoint with bookinfo's policies, `extra` config, and short header timeouts; the
/// client is `sa/curl`, which bookinfo's `ratings-viewer` admits.
async fn setup(extra: &str, timeouts: Timeouts) -> Setup {
    let pki = Pki::new("cluster.local");
    let ratings = Recorder::start("127.0.0.41:0".parse().expect("addr")).await;
    let opaque = Recorder::start("127.0.0.42:0".parse().expect("addr")).await;
    let yaml = [
        service(
            "ratings",
            "10.96.9.1",
            "http",
            "127.0.0.41",
            ratings.addr.port(),
        ),
        service(
            "opaque",
            "10.96.9.2",
            "web",
            "127.0.0.42",
            opaque.addr.port(),
        ),
        format!("\n---\n{POLICIES}"),
        extra.to_string(),
    ]
    .concat();
    let wp = start_waypoint(&pki, &yaml, timeouts).await;
    let client = HboneClient::new(pki.store("default", "curl"));
    Setup {
        _pki: pki,
        wp,
        client,
        ratings,
        opaque,
    }
}

fn short_timeouts() -> Timeouts {
    Timeouts {
        request_headers: Duration::from_secs(3),
        ..Timeouts::default()
    }
}

/// Attack: open a tunnel to an HTTP port, stay silent past the sniffing timeout (1.5 s), then
/// send `GET /admin` (also with a lowercase or unknown method), hoping the bytes are relayed
/// as opaque TCP. A port declared HTTP is always HTTP: the DENY of `/admin` answers 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_on_http_port_still_gets_http_deny() {
    tokio::time::timeout(LIMIT, async {
        let s = setup("", short_timeouts()).await;
        for method in ["GET", "get", "FOO"] {
            let mut t = s.tunnel(RATINGS).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            write_request(&mut t, method, "/admin", "ratings", "")
                .await
                .expect("write");
            let r = read_response(&mut t, REPLY).await.expect("a reply");
            assert_eq!(r.status, 403, "{method}: {}", r.head);
        }
        // The same tunnel serves allowed requests: the policy, not the protocol, said no.
        let mut t = s.tunnel(RATINGS).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        write_request(&mut t, "GET", "/ratings/1", "ratings", "")
            .await
            .expect("write");
        let r = read_response(&mut t, REPLY).await.expect("a reply");
        assert_eq!(r.status, 200, "{}", r.head);
        assert_eq!(s.ratings.targets(), vec!["/ratings/1".to_string()]);
        assert!(!s.ratings.received().contains("/admin"));
        // Garbage on an HTTP port is never relayed: 400 or closed, nothing reaches.
        let mut t = s.tunnel(RATINGS).await;
        t.write_all(b"\x16\x03\x01\x00\x05hello\r\n\r\n")
            .await
            .expect("write");
        if let Some(r) = read_response(&mut t, REPLY).await {
            assert_eq!(r.status, 400, "{}", r.head);
        }
        assert_eq!(
            s.ratings.connections(),
            1,
            "only the allowed request connected"
        );
        // A silent client is dropped after the request-header timeout (3 s here).
        let mut t = s.tunnel(RATINGS).await;
        assert!(closed_without_reply(&mut t, Duration::from_secs(6)).await);
    })
    .await
    .expect("test timed out");
}

/// Attack: the same on a port of unknown protocol, where sniffing falls back to TCP after
/// 1 s (or at once for a method the sniffer does not know). The relay is authorized with
/// Istio's TCP semantics: the DENY of `/admin` loses its path and denies the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_protocol_port_falls_back_to_tcp_with_broader_deny() {
    tokio::time::timeout(LIMIT, async {
        let s = setup("", Timeouts::default()).await;
        // Sniffed as HTTP: an allowed path is served, `/admin` is denied by HTTP policy.
        let mut t = s.tunnel(OPAQUE).await;
        write_request(&mut t, "GET", "/ok", "opaque", "")
            .await
            .expect("write");
        let r = read_response(&mut t, REPLY).await.expect("a reply");
        assert_eq!(r.status, 200, "{}", r.head);
        write_request(&mut t, "GET", "/admin", "opaque", "")
            .await
            .expect("write");
        let r = read_response(&mut t, REPLY).await.expect("a reply");
        assert_eq!(r.status, 403, "{}", r.head);
        // Silent past the sniffing timeout, or a method the sniffer does not know: TCP, and
        // the waypoint-wide DENY (path dropped) refuses the connection without a byte.
        for (silent, method) in [(true, "GET"), (false, "get"), (false, "FOO")] {
            let mut t = s.tunnel(OPAQUE).await;
            if silent {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            let _ = write_request(&mut t, method, "/admin", "opaque", "").await;
            assert!(
                closed_without_reply(&mut t, REPLY).await,
                "{method}: the TCP fallback must be closed"
            );
        }
        assert_eq!(s.opaque.targets(), vec!["/ok".to_string()]);
        assert!(!s.opaque.received().contains("/admin"));
        // Denied before dialling: the only upstream connection is the HTTP one.
        assert_eq!(s.opaque.connections(), 1);
    })
    .await
    .expect("test timed out");
}

/// Attack: `Upgrade: h2c` to get a 101 and a raw splice, then HTTP/2 `GET /admin` on it.
/// Envoy strips h2c: the request is served as plain HTTP/1.1 and HTTP/2 cannot follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upgrade_is_stripped_never_spliced() {
    tokio::time::timeout(LIMIT, async {
        let s = setup("", Timeouts::default()).await;
        let mut t = s.tunnel(RATINGS).await;
        write_request(
            &mut t,
            "GET",
            "/details",
            "ratings",
            "connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
        )
        .await
        .expect("write");
        let r = read_response(&mut t, REPLY).await.expect("a reply");
        assert_eq!(r.status, 200, "{}", r.head);
        let seen = s.ratings.received().to_ascii_lowercase();
        assert!(!seen.contains("h2c") && !seen.contains("http2-settings"), "{seen}");
        // HTTP/2 on the same connection: the preface is no HTTP/1.1 request.
        let h2 = h2::client::handshake(t).await;
        if let Ok((mut send, conn)) = h2 {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let req = http::Request::builder()
                .uri("http://ratings/admin")
                .body(())
                .expect("req");
            if let Ok((resp, _)) = send.send_request(req, true) {
                assert!(
                    tokio::time::timeout(REPLY, resp).await.map_or(true, |r| r.is_err()),
                    "an HTTP/2 request must not be answered"
                );
            }
        }
        assert_eq!(s.ratings.targets(), vec!["/details".to_string()]);
        assert!(!s.ratings.received().contains("/admin"));
        assert!(!s.ratings.received().contains("PRI *"));
        // Other upgrades than websocket, and CONNECT inside the tunnel: 403, nothing sent.
        for (method, target, extra) in [
            ("GET", "/x", "connection: upgrade\r\nupgrade: foo/1\r\n"),
            ("CONNECT", "10.0.0.1:80", ""),
        ] {
            let mut t = s.tunnel(RATINGS).await;
            write_request(&mut t, method, target, "ratings", extra)
                .await
                .expect("write");
            let r = read_response(&mut t, REPLY).await.expect("a reply");
            assert_eq!(r.status, 403, "{method} {target}: {}", r.head);
        }
        // HTTP/2 CONNECT inside the tunnel: refused the same way.
        let mut h2 = http2_over(s.tunnel(RATINGS).await).await.expect("h2");
        let req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri("10.0.0.1:80")
            .body(empty())
            .expect("req");
        let status = h2.send_request(req).await.map(|r| r.status().as_u16());
        assert!(
            matches!(status, Ok(403)),
            "HTTP/2 CONNECT: {status:?}"
        );
        assert_eq!(s.ratings.targets().len(), 1);
    })
    .await
    .expect("test timed out");
}

/// A request path and what the backend receives (`None`: denied, 403).
type Case = (&'static str, Option<&'static str>);

/// Attack: dot segments, encoded dots, doubled and encoded slashes to slip past the DENY of
/// `/admin`. Under each MeshConfig `pathNormalization` the path is normalized once: the policy
/// judges it and the backend receives exactly it (or the request is denied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_normalized_once_per_mesh_mode() {
    tokio::time::timeout(Duration::from_secs(60), async {
        // (mode, [(path, Some(path the backend gets) | None = 403)])
        let table: &[(&str, &[Case])] = &[
            (
                "NONE",
                &[
                    // Not normalized: the raw path is judged, `/admin/*` matches it.
                    ("/admin/..", None),
                    ("/admin/%2e%2e", None),
                    ("/admin/x/../..", None),
                    ("//admin", Some("//admin")),
                    ("/admin%2F..", Some("/admin%2F..")),
                ],
            ),
            (
                "BASE",
                &[
                    ("/admin/..", Some("/")),
                    ("/admin/%2e%2e", Some("/")),
                    ("/admin/x/../..", Some("/")),
                    ("/admin/x/..", None),
                    ("//admin", Some("//admin")),
                    ("/admin%2F..", Some("/admin%2F..")),
                ],
            ),
            (
                "MERGE_SLASHES",
                &[
                    ("/admin/..", Some("/")),
                    ("/admin/%2e%2e", Some("/")),
                    ("/admin/x/../..", Some("/")),
                    ("//admin", None),
                    ("/admin%2F..", Some("/admin%2F..")),
                ],
            ),
            (
                "DECODE_AND_MERGE_SLASHES",
                &[
                    ("/admin/..", Some("/")),
                    ("/admin/%2e%2e", Some("/")),
                    ("/admin/x/../..", Some("/")),
                    ("//admin", None),
                    ("/admin%2F..", Some("/")),
                    ("/admin%2Fx", None),
                ],
            ),
        ];
        for (mode, cases) in table {
            let s = setup(&mesh_config(mode), Timeouts::default()).await;
            let mut t = s.tunnel(RATINGS).await;
            let mut want_seen = Vec::new();
            for (path, want) in cases.iter() {
                write_request(&mut t, "GET", path, "ratings", "")
                    .await
                    .expect("write");
                let r = read_response(&mut t, REPLY).await.expect("a reply");
                match want {
                    Some(p) => {
                        assert_eq!(r.status, 200, "{mode} {path}: {}", r.head);
                        assert_eq!(r.body, *p, "{mode} {path}");
                        want_seen.push(p.to_string());
                    }
                    None => assert_eq!(r.status, 403, "{mode} {path}: {}", r.head),
                }
            }
            assert_eq!(s.ratings.targets(), want_seen, "{mode}");
        }
    })
    .await
    .expect("test timed out");
}

/// Attack: tunnel to the waypoint's own admin or HBONE port through loopback or the
/// unspecified address, or to link-local metadata; and CONNECT authorities without a port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_to_the_waypoint_itself_are_refused() {
    tokio::time::timeout(LIMIT, async {
        let s = setup("", Timeouts::default()).await;
        let r = &s.wp.running;
        let admin = r.admin_addr.expect("admin listener");
        let stats = r.stats_addr.expect("stats listener");
        for (authority, want) in [
            (format!("127.0.0.1:{}", admin.port()), 403),
            (format!("127.0.0.2:{}", admin.port()), 403),
            (format!("0.0.0.0:{}", admin.port()), 403),
            (format!("[::ffff:127.0.0.1]:{}", stats.port()), 403),
            (r.hbone_addr.to_string(), 403),
            ("169.254.169.254:80".to_string(), 403),
            ("127.0.0.1:0".to_string(), 400),
            ("ratings:0".to_string(), 400),
            ("10.96.9.1:0".to_string(), 400),
        ] {
            let err = tunnel(&s.client, r.hbone_addr, &[], &authority)
                .await
                .expect_err(&authority);
            assert_eq!(
                err.status().map(|s| s.as_u16()),
                Some(want),
                "{authority}: {err}"
            );
        }
    })
    .await
    .expect("test timed out");
}

/// Attack: send through a pass-through tunnel (an address that is no service) what the
/// waypoint-wide DENY forbids. The waypoint's own policies apply to pass-through traffic:
/// HTTP semantics for requests, TCP semantics (DENY broader) for an opaque relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_traffic_is_authorized() {
    tokio::time::timeout(LIMIT, async {
        let s = setup("", Timeouts::default()).await;
        let direct = Recorder::start("127.0.0.43:0".parse().expect("addr")).await;
        let authority = direct.addr.to_string();
        let mut t = s.tunnel(&authority).await;
        write_request(&mut t, "GET", "/admin/x/..", "direct", "")
            .await
            .expect("write");
        let r = read_response(&mut t, REPLY).await.expect("a reply");
        assert_eq!(r.status, 403, "{}", r.head);
        write_request(&mut t, "GET", "/a/./b", "direct", "")
            .await
            .expect("write");
        let r = read_response(&mut t, REPLY).await.expect("a reply");
        assert_eq!(r.status, 200, "{}", r.head);
        assert_eq!(r.body, "/a/b");
        // Silent, then bytes: opaque TCP, denied by the broader DENY before a byte is relayed.
        let mut t = s.tunnel(&authority).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let _ = write_request(&mut t, "GET", "/admin", "direct", "").await;
        assert!(closed_without_reply(&mut t, REPLY).await);
        assert_eq!(direct.targets(), vec!["/a/b".to_string()]);
        assert!(!direct.received().contains("/admin"));
    })
    .await
    .expect("test timed out");
}

/// Attack: hold HTTP/2 connections open inside tunnels without sending requests (the client
/// answers keepalive pings). A connection without streams is closed after the idle timeout
/// (1 s here; Envoy's default is 1 h), a silent HTTP/1 one after the request-header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_inside_tunnels_are_closed() {
    tokio::time::timeout(LIMIT, async {
        let timeouts = Timeouts {
            connection_idle: Duration::from_secs(1),
            request_headers: Duration::from_secs(1),
            ..Timeouts::default()
        };
        let s = setup("", timeouts).await;
        let mut h2 = http2_over(s.tunnel(RATINGS).await).await.expect("h2");
        let req = http::Request::builder()
            .uri("http://ratings/ratings/1")
            .body(empty())
            .expect("req");
        let r = h2.send_request(req).await.expect("response");
        assert_eq!(r.status(), 200);
        let closed = waypoint_tests::waypoint::eventually(Duration::from_secs(5), || {
            let c = h2.is_closed();
            async move { c }
        })
        .await;
        assert!(closed, "idle HTTP/2 connection must be closed");
        // HTTP/1: idle after a response, the keep-alive connection is closed.
        let mut t = s.tunnel(RATINGS).await;
        write_request(&mut t, "GET", "/ratings/2", "ratings", "")
            .await
            .expect("write");
        assert_eq!(
            read_response(&mut t, REPLY).await.map(|r| r.status),
            Some(200)
        );
        assert!(closed_without_reply(&mut t, Duration::from_secs(5)).await);
    })
    .await
    .expect("test timed out");
}

/// Attack: hold a request open against an upstream that never answers (no route timeout is
/// Istio's default). With the whole request sent, Envoy's stream idle timeout (1 s here)
/// answers 408 `stream timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_upstream_hits_the_stream_idle_timeout() {
    tokio::time::timeout(LIMIT, async {
        let slow =
            waypoint_tests::echo::http_echo("127.0.0.44:0".parse().expect("addr"), "slow").await;
        let extra = service("slow", "10.96.9.4", "http", "127.0.0.44", slow.addr.port());
        let timeouts = Timeouts {
            stream_idle: Duration::from_secs(1),
            ..Timeouts::default()
        };
        let s = setup(&extra, timeouts).await;
        let mut t = s.tunnel("10.96.9.4:80").await;
        let started = std::time::Instant::now();
        write_request(&mut t, "GET", "/delay/10000", "slow", "")
            .await
            .expect("write");
        let r = read_response(&mut t, REPLY).await.expect("a reply");
        assert_eq!(r.status, 408, "{}", r.head);
        assert_eq!(r.body, "stream timeout");
        assert!(started.elapsed() < Duration::from_secs(5));
        // A prompt upstream is unaffected.
        write_request(&mut t, "GET", "/delay/10", "slow", "")
            .await
            .expect("write");
        let r = read_response(&mut t, REPLY).await.expect("a reply");
        assert_eq!(r.status, 200, "{}", r.head);
    })
    .await
    .expect("test timed out");
}

/// Attack: trickle a request head one byte at a time inside a tunnel; the head timeout runs
/// from its first byte (Envoy `request_headers_timeout`), while an idle keep-alive connection
/// between two requests is only bounded by the connection idle timeout, as in Envoy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_head_timeout_runs_from_the_first_byte_not_while_idle() {
    tokio::time::timeout(LIMIT, async {
        let timeouts = Timeouts {
            request_headers: Duration::from_secs(1),
            ..Timeouts::default()
        };
        let s = setup("", timeouts).await;
        // Keep-alive: idle longer than the head timeout, then a second request is served.
        let mut t = s.tunnel(RATINGS).await;
        write_request(&mut t, "GET", "/ratings/1", "ratings", "")
            .await
            .expect("write");
        assert_eq!(
            read_response(&mut t, REPLY).await.map(|r| r.status),
            Some(200)
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
        write_request(&mut t, "GET", "/ratings/2", "ratings", "")
            .await
            .expect("write after idle");
        assert_eq!(
            read_response(&mut t, REPLY).await.map(|r| r.status),
            Some(200),
            "an idle keep-alive connection must survive the head timeout"
        );
        // Slowloris: after an idle pause, a head trickled at one byte per 300 ms is cut off.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let head = b"GET /ratings/3 HTTP/1.1\r\nhost: ratings\r\nx-slow: aaaaaaaaaaaaaaaa\r\n\r\n";
        let started = std::time::Instant::now();
        let mut cut = false;
        for b in head.iter() {
            if tokio::io::AsyncWriteExt::write_all(&mut t, &[*b])
                .await
                .is_err()
            {
                cut = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            if started.elapsed() > Duration::from_secs(6) {
                break;
            }
        }
        // Cut off: the tunnel ends (hyper may answer 408 first).
        let closed = cut || {
            let mut buf = [0u8; 512];
            let end = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match tokio::io::AsyncReadExt::read(&mut t, &mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            });
            end.await.is_ok()
        };
        assert!(
            closed,
            "a trickled head must be cut off by the head timeout"
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "cut off after {:?}",
            started.elapsed()
        );
    })
    .await
    .expect("test timed out");
}

/// Attack: send a request body one byte every 300 ms to hold a stream open. With
/// `--request-timeout` (Envoy `request_timeout`, off by default as in Envoy) the request must
/// be received within it: 408 `request timeout`. A prompt request with a body is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_request_body_hits_the_request_timeout() {
    tokio::time::timeout(LIMIT, async {
        let timeouts = Timeouts {
            request: Duration::from_secs(2),
            ..Timeouts::default()
        };
        let s = setup("", timeouts).await;
        let mut t = s.tunnel(RATINGS).await;
        write_request(
            &mut t,
            "POST",
            "/ratings/1",
            "ratings",
            "content-length: 4\r\n",
        )
        .await
        .expect("write");
        t.write_all(b"abcd").await.expect("body");
        assert_eq!(
            read_response(&mut t, REPLY).await.map(|r| r.status),
            Some(200)
        );
        let mut t = s.tunnel(RATINGS).await;
        write_request(
            &mut t,
            "POST",
            "/ratings/2",
            "ratings",
            "content-length: 100\r\n",
        )
        .await
        .expect("write");
        let started = std::time::Instant::now();
        let trickle = async {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if t.write_all(b"x").await.is_err() {
                    break;
                }
            }
        };
        let mut reply = None;
        tokio::select! {
            _ = trickle => {}
            _ = tokio::time::sleep(Duration::from_secs(6)) => {}
        }
        if let Some(r) = read_response(&mut t, REPLY).await {
            reply = Some((r.status, r.body));
        }
        let (status, body) = reply.expect("a reply");
        assert_eq!(status, 408);
        assert_eq!(body, "request timeout");
        assert!(started.elapsed() < Duration::from_secs(12));
    })
    .await
    .expect("test timed out");
}
