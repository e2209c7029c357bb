//! RequestAuthentication through real Envoy 1.40 on the generated bootstrap: Envoy's
//! jwt_authn verifies (keys from a loopback JWKS server through `remote_jwks`), the module
//! applies Istio's semantics; the same cases as the host test (tests/tests/host/jwt.rs).
//! Through `waypoint xds` the server fetches the set and inlines it (istiod's form): key
//! rotation reaches Envoy within the refresh interval, the same steps as the host's.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use waypoint_envoy_config::bootstrap::Inputs;
use waypoint_envoy_config::xds::{jwks as xds_jwks, server, Cache, JwksInliner, Source};

use waypoint_hbone::HboneClient;
use waypoint_tests::echo::{empty, http_echo};
use waypoint_tests::envoy_generated::{client, write_config, GeneratedWaypoint, Layout};
use waypoint_tests::envoy_harness::{free_port, repo_root, scratch_dir, Envoy};
use waypoint_tests::hbone_client::{collect, http1_over, tunnel, Collected};
use waypoint_tests::jwt::{jwks, JwksServer, SigningKey};
use waypoint_tests::jwt_cases::{self, alice, policy, Keys};
use waypoint_tests::manifests::service;
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::waypoint::{eventually, WAYPOINT_GATEWAY};

const LIMIT: Duration = Duration::from_secs(180);
const VIP: &str = "10.96.60.1:80";

async fn get(
    client: &HboneClient,
    wp: &GeneratedWaypoint,
    path: &str,
    token: Option<&str>,
) -> Collected {
    get_at(client, wp.hbone_addr, path, token).await
}

/// One request to `front` through the waypoint's HBONE listener at `hbone`.
async fn get_at(
    client: &HboneClient,
    hbone: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Collected {
    let s = tunnel(client, hbone, &[], VIP).await.expect("tunnel");
    let mut send = http1_over(s).await.expect("h1");
    let mut b = http::Request::builder().uri(path).header("host", "front");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let req = b.body(empty()).expect("request");
    collect(send.send_request(req).await.expect("send"))
        .await
        .expect("collect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_authentication_through_envoy() {
    // Build the module (once per test binary) before the clock starts.
    let _ = tokio::task::spawn_blocking(waypoint_tests::envoy_harness::module_dir).await;
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let ip = |n: u8| IpAddr::from([127, 61, 0, n]);
        let one = http_echo(SocketAddr::new(ip(2), 0), "one").await;
        let two = http_echo(SocketAddr::new(ip(3), 0), "two").await;
        let keys = Keys::new();
        let server = JwksServer::start(jwks(&[&keys.rs, &keys.es, &keys.ed])).await;
        let config = TempDir::new("envoy-jwt");
        let yaml = config_yaml(61, one.addr.port(), two.addr.port(), &server.uri());
        let (paths, snap) = write_config(config.path(), &yaml);
        let wp = GeneratedWaypoint::start(&pki, &snap, &paths, Layout::Originator, 15008)
            .await
            .unwrap_or_else(|e| panic!("start Envoy on the generated bootstrap: {e}"));
        let c = client(&pki, "default", "sleep");
        let (cl, w) = (&c, &wp);
        jwt_cases::run("envoy", &keys, |path, token| async move {
            get(cl, w, path, token.as_deref()).await
        })
        .await;
        let alice = alice();
        let stranger = SigningKey::es256("ec-1");
        // A client cannot forge jwt_authn's payload header.
        let forged = alice.to_string();
        let s = tunnel(&c, wp.hbone_addr, &[], VIP).await.expect("tunnel");
        let mut send = http1_over(s).await.expect("h1");
        let bad = stranger.sign(&alice);
        let payload = bad.split('.').nth(1).unwrap_or_default().to_string();
        let req = http::Request::builder()
            .uri("/secure")
            .header("host", "front")
            .header("authorization", format!("Bearer {bad}"))
            .header("x-waypoint-jwt-0", payload)
            .body(empty())
            .expect("request");
        let r = collect(send.send_request(req).await.expect("send"))
            .await
            .expect("collect");
        assert_eq!(r.status, 401, "forged payload header accepted ({forged})");

        assert!(server.hits() >= 1, "Envoy fetched the JWKS");
    })
    .await
    .expect("test timed out");
}

/// `waypoint xds` with a RequestAuthentication `jwksUri`: the server fetches the set (not
/// Envoy), inlines it, and after the JWKS server rotates to key B the next push makes Envoy
/// accept B-tokens and refuse A-tokens within the 1 s refresh interval.
#[test]
fn jwks_rotation_through_xds() {
    let _ = waypoint_tests::envoy_harness::module_dir();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = Pki::new("cluster.local");
    let ip = |n: u8| IpAddr::from([127, 62, 0, n]);
    let one = rt.block_on(http_echo(SocketAddr::new(ip(2), 0), "one"));
    let two = rt.block_on(http_echo(SocketAddr::new(ip(3), 0), "two"));
    let keys = Keys::new();
    let jwks_server = rt.block_on(JwksServer::start(jwks(&[&keys.rs])));
    let dir = scratch_dir("xds-jwks");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    let issued = pki.issue("default", "waypoint");
    for (from, to) in [
        (&issued.cert, "waypoint.pem"),
        (&issued.key, "waypoint-key.pem"),
        (&issued.roots, "ca.pem"),
    ] {
        std::fs::copy(from, certs.join(to)).expect("copy certificate");
    }
    let config = dir.join("config.yaml");
    let yaml = config_yaml(62, one.addr.port(), two.addr.port(), &jwks_server.uri());
    std::fs::write(&config, yaml).expect("config");
    let inputs = Inputs {
        config: vec![config],
        root: PathBuf::from("/"),
        namespace: "default".into(),
        waypoint: None,
        certs: waypoint_hbone::tls::CertPaths::find(&certs).expect("certificate files"),
        module_name: "waypoint".into(),
        trust_domain: "cluster.local".into(),
        originator: None,
        access_log: true,
        timeouts: Default::default(),
    };
    let local = |p: u16| -> SocketAddr { format!("127.0.0.1:{p}").parse().expect("addr") };
    let hbone = local(free_port());
    let source = Source {
        inputs: inputs.clone(),
        rebind: BTreeMap::from([
            ("connect_terminate".to_string(), hbone),
            ("readiness".to_string(), local(free_port())),
            ("stats".to_string(), local(free_port())),
        ]),
        extra_listeners: Vec::new(),
    };
    // As `waypoint xds --jwks-refresh 1s`: the first build names the set, fetched before
    // the first push.
    let inliner = JwksInliner::new(Duration::from_secs(1));
    source
        .build_with(None, Some(&inliner))
        .expect("initial snapshot");
    rt.block_on(inliner.refresh());
    assert_eq!(jwks_server.hits(), 1, "the xds server fetched the set");
    let watched = source.watched();
    let cache = Cache::from_source_with_jwks(source, Arc::clone(&inliner));
    let xds = rt
        .block_on(server::start(
            cache,
            local(0),
            watched,
            Duration::from_millis(100),
        ))
        .expect("xds server");
    let refresher = {
        let _in_rt = rt.enter();
        xds_jwks::spawn_refresher(
            Arc::clone(&inliner),
            Arc::clone(&xds.cache),
            Duration::from_millis(100),
        )
    };
    let admin = free_port();
    let yaml = waypoint_envoy_config::xds::render_bootstrap(&inputs, xds.addr, false)
        .expect("bootstrap")
        .replace("port_value: 15000", &format!("port_value: {admin}"));
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, yaml).expect("write bootstrap");
    let envoy = Envoy::start(&path, admin, &repo_root()).unwrap_or_else(|e| panic!("{e}"));
    let c = client(&pki, "default", "sleep");
    let cl = &c;
    let get = |path: &'static str, token: Option<String>| async move {
        get_at(cl, hbone, path, token.as_deref()).await
    };
    rt.block_on(async {
        assert!(
            eventually(Duration::from_secs(20), || async {
                get("/public", None).await.status == 200
            })
            .await,
            "Envoy never served the pushed config\n{}",
            envoy.log_text()
        );
        // The pushed listener carries the set inline: Envoy has no JWKS cluster to fetch with.
        let pushed = xds.cache.pushes();
        assert!(
            pushed
                .iter()
                .all(|p| !p.names.iter().any(|n| n.starts_with("jwks|"))),
            "a jwks| cluster was pushed"
        );
        let took = jwt_cases::rotation(
            "envoy xds",
            &jwks_server,
            &keys,
            Duration::from_secs(15),
            get,
        )
        .await;
        println!("envoy xds: key B accepted {took:?} after the rotation (refresh 1s)");
    });
    refresher.abort();
    drop(envoy);
    drop(xds);
}

/// The waypoint, services `front` / `one` / `two` (backends on `127.<net>.0.2` / `.3`) and
/// the JWT policies against the key server at `jwks_uri`.
fn config_yaml(net: u8, one_port: u16, two_port: u16, jwks_uri: &str) -> String {
    let ip = |n: u8| IpAddr::from([127, net, 0, n]);
    [
        WAYPOINT_GATEWAY.to_string(),
        service("front", "10.96.60.1", &ip(1).to_string(), 1, false),
        service("one", "10.96.60.2", &ip(2).to_string(), one_port, false),
        service("two", "10.96.60.3", &ip(3).to_string(), two_port, false),
        policy(jwks_uri),
    ]
    .concat()
}
