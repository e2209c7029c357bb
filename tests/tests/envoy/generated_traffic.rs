//! Real traffic through the bootstrap `waypoint bootstrap` generates, on real Envoy 1.40 with
//! our module: our HBONE client → Envoy → a mesh pod behind an HBONE server (a destination
//! ztunnel stand-in that records every stream reset) and a plaintext pod. Each case runs with
//! the local originator (`--originator`, the reliable layout) and with stock Envoy tunnelling
//! (ignored where Envoy 1.40 is known to fail; run them with `--ignored` to measure).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use waypoint_tests::echo::{http_echo, http_echo_closing, is_pattern, EchoServer};
use waypoint_tests::envoy_generated::{client, exchange, write_config, GeneratedWaypoint, Layout};
use waypoint_tests::hbone_server::HboneServer;
use waypoint_tests::manifests::service;
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::waypoint::WAYPOINT_GATEWAY;

const LIMIT: Duration = Duration::from_secs(300);
const BIG: u64 = 50 * 1000 * 1000;
const MESH_VIP: &str = "10.96.50.1:80";
const PLAIN_VIP: &str = "10.96.50.2:80";

struct Env {
    wp: GeneratedWaypoint,
    pod: HboneServer,
    app: EchoServer,
    plain: EchoServer,
    pki: Pki,
    _config: TempDir,
}

/// A free port on `ip`.
fn port_on(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Mesh service `echo` (pod 127.`base`.0.2, HBONE server in front) and plaintext service
/// `plain` (pod 127.`base`.0.3), both bound to the waypoint; Envoy on the generated bootstrap.
async fn start(layout: Layout, closing_app: bool, base: u8) -> Env {
    start_as(layout, closing_app, base, "echo").await
}

/// [`start`] with the pod's HBONE server presenting service account `pod_sa` (the config
/// says the pod runs as `echo`).
async fn start_as(layout: Layout, closing_app: bool, base: u8, pod_sa: &str) -> Env {
    let pki = Pki::new("cluster.local");
    let mesh_ip = IpAddr::from([127, base, 0, 2]);
    let plain_ip = IpAddr::from([127, base, 0, 3]);
    let app = if closing_app {
        http_echo_closing(SocketAddr::new(mesh_ip, 0), "echo").await
    } else {
        http_echo(SocketAddr::new(mesh_ip, 0), "echo").await
    };
    let plain = http_echo(SocketAddr::new(plain_ip, 0), "plain").await;
    let hbone_port = port_on(mesh_ip);
    let pod = HboneServer::start(
        SocketAddr::new(mesh_ip, hbone_port),
        pki.store("default", pod_sa),
    )
    .await;
    let config = TempDir::new("gen-traffic");
    let yaml = format!(
        "{WAYPOINT_GATEWAY}{}{}",
        service(
            "echo",
            "10.96.50.1",
            &mesh_ip.to_string(),
            app.addr.port(),
            true
        ),
        service(
            "plain",
            "10.96.50.2",
            &plain_ip.to_string(),
            plain.addr.port(),
            false
        ),
    );
    let (paths, snap) = write_config(config.path(), &yaml);
    let wp = GeneratedWaypoint::start(&pki, &snap, &paths, layout, hbone_port)
        .await
        .unwrap_or_else(|e| panic!("start Envoy on the generated bootstrap: {e}"));
    Env {
        wp,
        pod,
        app,
        plain,
        pki,
        _config: config,
    }
}

impl Env {
    /// No stream the pod accepted may have seen a reset or another stream error. With
    /// `all_ended` (an app that closes after each response) every tunnel must also have ended,
    /// `want_tunnels` of them, cleanly; otherwise Envoy may keep pooled ones open.
    async fn assert_clean_ends(&self, want_tunnels: usize, all_ended: bool) {
        let seen = &self.pod.seen;
        for _ in 0..if all_ended { 100 } else { 10 } {
            let ended = seen.clean_ends.load(Ordering::SeqCst) + seen.stream_errors().len();
            if ended >= seen.connects.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let errors = seen.stream_errors();
        assert!(
            errors.is_empty(),
            "the pod's HBONE server saw {} stream error(s): {errors:#?}\noriginator: {:?}\nEnvoy log:\n{}",
            errors.len(),
            self.wp.originator.as_ref().map(|o| &o.stats),
            self.wp.log_tail(20)
        );
        let connects = seen.connects.load(Ordering::SeqCst);
        if all_ended {
            assert_eq!(connects, want_tunnels);
            assert_eq!(seen.clean_ends.load(Ordering::SeqCst), want_tunnels);
        } else {
            assert!((1..=want_tunnels).contains(&connects), "{connects} tunnels");
        }
        if let Some(o) = &self.wp.originator {
            assert_eq!(o.stats.unclean.load(Ordering::Relaxed), 0, "{:?}", o.stats);
        }
    }
}

async fn hbone_and_plaintext(layout: Layout, base: u8) {
    let env = start(layout, false, base).await;
    let c = client(&env.pki, "default", "sleep");
    let r = exchange(&c, env.wp.hbone_addr, MESH_VIP, "GET", "/hello", 0)
        .await
        .unwrap_or_else(|e| panic!("mesh request: {e}\n{}", env.wp.log_tail(20)));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-served-by"), Some("echo"));
    assert_eq!(r.header("x-echo-pathq"), Some("/hello"));
    let p = exchange(&c, env.wp.hbone_addr, PLAIN_VIP, "GET", "/plain", 0)
        .await
        .unwrap_or_else(|e| panic!("plaintext request: {e}"));
    assert_eq!(p.status, 200);
    assert_eq!(p.header("x-served-by"), Some("plain"));
    assert_eq!((env.app.hits(), env.plain.hits()), (1, 1));
    // The pod saw one CONNECT from the waypoint's identity, for its own IP and target port.
    let seen = &env.pod.seen;
    let authorities = seen.authorities.lock().expect("lock").clone();
    assert_eq!(authorities, vec![env.app.addr.to_string()]);
    let principals = seen.principals.lock().expect("lock").clone();
    assert_eq!(
        principals,
        vec!["spiffe://cluster.local/ns/default/sa/waypoint".to_string()]
    );
    env.assert_clean_ends(1, false).await;
}

async fn fifty_megabytes(layout: Layout, base: u8) {
    let env = start(layout, false, base).await;
    let c = client(&env.pki, "default", "sleep");
    let up = exchange(&c, env.wp.hbone_addr, MESH_VIP, "POST", "/echo", BIG)
        .await
        .unwrap_or_else(|e| panic!("upload: {e}\n{}", env.wp.log_tail(20)));
    assert_eq!(up.status, 200);
    assert_eq!(up.body.len() as u64, BIG, "echoed upload truncated");
    assert!(is_pattern(&up.body), "echoed upload corrupted");
    let down = exchange(
        &c,
        env.wp.hbone_addr,
        MESH_VIP,
        "GET",
        &format!("/bytes/{BIG}"),
        0,
    )
    .await
    .unwrap_or_else(|e| panic!("download: {e}\n{}", env.wp.log_tail(20)));
    assert_eq!(down.status, 200);
    assert_eq!(down.body.len() as u64, BIG, "download truncated");
    assert!(is_pattern(&down.body), "download corrupted");
    env.assert_clean_ends(2, false).await;
}

async fn ten_with_connection_close(layout: Layout, base: u8) {
    let env = start(layout, true, base).await;
    let c = client(&env.pki, "default", "sleep");
    let mut failures = Vec::new();
    for i in 0..10 {
        match exchange(
            &c,
            env.wp.hbone_addr,
            MESH_VIP,
            "GET",
            &format!("/r/{i}"),
            0,
        )
        .await
        {
            Ok(r) if r.status == 200 && r.header("x-echo-pathq") == Some(&format!("/r/{i}")) => {}
            Ok(r) => failures.push(format!("request {i}: status {}", r.status)),
            Err(e) => failures.push(format!("request {i}: {e}")),
        }
    }
    assert!(failures.is_empty(), "client side: {failures:#?}");
    assert_eq!(env.app.hits(), 10);
    env.assert_clean_ends(10, true).await;
}

/// Every CONNECT is decided on its own destination, also when many share one HBONE connection
/// (as ztunnel pools them): alternate two services, ending each tunnel as a client that just
/// drops it. Before the filter state was hashable, Envoy reused the internal connection of a
/// finished CONNECT, with its copied filter state, for the next one.
async fn each_connect_decided_alone(layout: Layout, base: u8) {
    let env = start(layout, false, base).await;
    let c = client(&env.pki, "default", "sleep");
    let mut wrong = Vec::new();
    for i in 0..30 {
        let (vip, want) = if i % 3 == 0 {
            (MESH_VIP, "echo")
        } else {
            (PLAIN_VIP, "plain")
        };
        let r = waypoint_tests::hbone_client::http1_get(&c, env.wp.hbone_addr, vip, "/who")
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        if r.header("x-served-by") != Some(want) {
            wrong.push(format!(
                "request {i} to {vip}: served by {:?} (status {})",
                r.header("x-served-by"),
                r.status
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// 20 requests in parallel to an app that closes after each response: all complete, no
/// stream reset; with the originator they share one HBONE connection to the pod.
async fn parallel_with_connection_close(layout: Layout, base: u8) {
    let env = start(layout, true, base).await;
    let c = client(&env.pki, "default", "sleep");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (c, addr) = (c.clone(), env.wp.hbone_addr);
        tasks.push(tokio::spawn(async move {
            exchange(&c, addr, MESH_VIP, "GET", &format!("/p/{i}"), 0)
                .await
                .map(|r| r.status)
        }));
    }
    let mut failures = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Ok(200) => {}
            other => failures.push(format!("request {i}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "client side: {failures:#?}");
    assert_eq!(env.app.hits(), 20);
    env.assert_clean_ends(20, true).await;
    if let Some(o) = &env.wp.originator {
        assert_eq!(
            o.client.connections_opened(),
            1,
            "one HBONE connection to the pod"
        );
    }
}

/// A pod whose HBONE server does not present the identity the config gives the pod is not
/// sent any request: the TLS handshake fails, Envoy answers 503, and no tunnel is opened.
async fn wrong_pod_identity_is_refused(layout: Layout, base: u8) {
    let env = start_as(layout, false, base, "impostor").await;
    let c = client(&env.pki, "default", "sleep");
    let r = exchange(&c, env.wp.hbone_addr, MESH_VIP, "GET", "/secret", 0)
        .await
        .unwrap_or_else(|e| panic!("request: {e}"));
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(env.pod.seen.connects.load(Ordering::SeqCst), 0);
    assert_eq!(env.app.hits(), 0);
    if let Some(o) = &env.wp.originator {
        assert!(
            o.stats.refused.load(Ordering::Relaxed) >= 1,
            "{:?}",
            o.stats
        );
    }
}

macro_rules! case {
    ($name:ident, $f:ident, $layout:expr, $base:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            tokio::time::timeout(LIMIT, $f($layout, $base))
                .await
                .expect("test timed out");
        }
    };
    ($name:ident, $f:ident, $layout:expr, $base:expr, $why:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = $why]
        async fn $name() {
            tokio::time::timeout(LIMIT, $f($layout, $base))
                .await
                .expect("test timed out");
        }
    };
}

case!(
    originator_hbone_and_plaintext,
    hbone_and_plaintext,
    Layout::Originator,
    151
);
case!(
    originator_fifty_megabytes_both_ways,
    fifty_megabytes,
    Layout::Originator,
    152
);
case!(
    originator_ten_requests_with_connection_close,
    ten_with_connection_close,
    Layout::Originator,
    153
);
case!(
    envoy_hbone_and_plaintext,
    hbone_and_plaintext,
    Layout::Envoy,
    154
);
case!(
    envoy_fifty_megabytes_both_ways,
    fifty_megabytes,
    Layout::Envoy,
    155
);
case!(
    envoy_ten_requests_with_connection_close,
    ten_with_connection_close,
    Layout::Envoy,
    156,
    "stock Envoy 1.40 resets 1-7 of 10 upstream streams (envoy-hbone-notes.md, cause 2)"
);
case!(
    originator_each_connect_decided_alone,
    each_connect_decided_alone,
    Layout::Originator,
    157
);
case!(
    envoy_each_connect_decided_alone,
    each_connect_decided_alone,
    Layout::Envoy,
    158
);
case!(
    originator_wrong_pod_identity_is_refused,
    wrong_pod_identity_is_refused,
    Layout::Originator,
    159
);
case!(
    envoy_wrong_pod_identity_is_refused,
    wrong_pod_identity_is_refused,
    Layout::Envoy,
    160
);
case!(
    originator_twenty_parallel_with_connection_close,
    parallel_with_connection_close,
    Layout::Originator,
    161
);
case!(
    envoy_twenty_parallel_with_connection_close,
    parallel_with_connection_close,
    Layout::Envoy,
    162,
    "stock Envoy 1.40 resets upstream streams with Connection: close apps (cause 2)"
);
