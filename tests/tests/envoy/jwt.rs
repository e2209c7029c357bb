//! RequestAuthentication through real Envoy 1.40 on the generated bootstrap: Envoy's
//! jwt_authn verifies (keys from a loopback JWKS server through `remote_jwks`), the module
//! applies Istio's semantics; the same cases as the host test (tests/tests/host/jwt.rs).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use waypoint_hbone::HboneClient;
use waypoint_tests::echo::{empty, http_echo};
use waypoint_tests::envoy_generated::{client, write_config, GeneratedWaypoint, Layout};
use waypoint_tests::hbone_client::{collect, http1_over, tunnel, Collected};
use waypoint_tests::jwt::{jwks, JwksServer, SigningKey};
use waypoint_tests::jwt_cases::{self, alice, policy, Keys};
use waypoint_tests::manifests::service;
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::waypoint::WAYPOINT_GATEWAY;

const LIMIT: Duration = Duration::from_secs(180);
const VIP: &str = "10.96.60.1:80";

async fn get(
    client: &HboneClient,
    wp: &GeneratedWaypoint,
    path: &str,
    token: Option<&str>,
) -> Collected {
    let s = tunnel(client, wp.hbone_addr, &[], VIP)
        .await
        .expect("tunnel");
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
        let yaml = [
            WAYPOINT_GATEWAY.to_string(),
            service("front", "10.96.60.1", &ip(1).to_string(), 1, false),
            service(
                "one",
                "10.96.60.2",
                &ip(2).to_string(),
                one.addr.port(),
                false,
            ),
            service(
                "two",
                "10.96.60.3",
                &ip(3).to_string(),
                two.addr.port(),
                false,
            ),
            policy(&server.uri()),
        ]
        .concat();
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
