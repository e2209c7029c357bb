//! RequestAuthentication end to end through the standalone host: tokens signed with keys made
//! in the test (RS256, ES256, EdDSA), served by a loopback JWKS server (jwksUri) that rotates
//! keys; 401 for bad tokens, claim-based ALLOW / DENY, routing on a claim, claim to header.

use std::time::Duration;

use serde_json::json;
use waypoint_hbone::HboneClient;
use waypoint_tests::echo::{empty, http_echo};
use waypoint_tests::hbone_client::{collect, http1_over, tunnel, Collected};
use waypoint_tests::jwt::{claims, jwks, JwksServer, SigningKey};
use waypoint_tests::jwt_cases::{self, policy, Keys};
use waypoint_tests::manifests::plain_service as service;
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::TestWaypoint;

const LIMIT: Duration = Duration::from_secs(90);

async fn get(
    client: &HboneClient,
    wp: &TestWaypoint,
    path: &str,
    token: Option<&str>,
) -> Collected {
    let s = tunnel(client, wp.running.hbone_addr, &[], "10.96.7.1:80")
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
async fn request_authentication_end_to_end() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let one = http_echo("127.0.0.31:0".parse().expect("addr"), "one").await;
        let two = http_echo("127.0.0.32:0".parse().expect("addr"), "two").await;
        let keys = Keys::new();
        let server = JwksServer::start(jwks(&[&keys.rs, &keys.es, &keys.ed])).await;
        let yaml = [
            service("front", "10.96.7.1", "127.0.0.30", 1),
            service("one", "10.96.7.2", "127.0.0.31", one.addr.port()),
            service("two", "10.96.7.3", "127.0.0.32", two.addr.port()),
            policy(&server.uri()),
        ]
        .concat();
        let wp = TestWaypoint::start_with(&pki, &yaml, |o| {
            o.jwks_refresh = Duration::from_millis(300);
        })
        .await;
        assert!(
            wp.running.config.current().is_some(),
            "config rejected: {:?}",
            wp.running.config.last_errors()
        );
        let client = HboneClient::new(pki.store("default", "sleep"));
        let (c, w) = (&client, &wp);
        jwt_cases::run("host", &keys, |path, token| async move {
            get(c, w, path, token.as_deref()).await
        })
        .await;
        // Rotation: the server drops key A for key B; within the refresh interval the
        // waypoint accepts B and refuses A (the same steps as Envoy's, tests/src/jwt_cases.rs).
        let took = jwt_cases::rotation(
            "host",
            &server,
            &keys,
            Duration::from_secs(10),
            |path, token| async move { get(c, w, path, token.as_deref()).await },
        )
        .await;
        println!("host: key B accepted {took:?} after the rotation (refresh 300ms)");
    })
    .await
    .expect("test timed out");
}

/// A rule with neither `jwks` nor `jwksUri`: the host finds the keys by OpenID discovery at
/// `<issuer>/.well-known/openid-configuration`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_discovery_finds_the_keys() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let one = http_echo("127.0.0.33:0".parse().expect("addr"), "one").await;
        let key = SigningKey::es256("d-1");
        let server = JwksServer::start(jwks(&[&key])).await;
        let issuer = format!("http://{}", server.addr);
        let yaml = [
            service("front", "10.96.7.1", "127.0.0.33", one.addr.port()),
            format!(
                r#"
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: front-jwt, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: front}}]
  jwtRules:
  - issuer: {issuer}
"#
            ),
        ]
        .concat();
        let wp = TestWaypoint::start_with(&pki, &yaml, |_| {}).await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        let good = key.sign(&claims(&issuer, "alice", "any", json!({})));
        let r = get(&client, &wp, "/", Some(&good)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let bad = SigningKey::es256("d-1").sign(&claims(&issuer, "alice", "any", json!({})));
        assert_eq!(get(&client, &wp, "/", Some(&bad)).await.status, 401);
        assert_eq!(
            server.hits(),
            2,
            "configuration, then the key set; cached after"
        );
    })
    .await
    .expect("test timed out");
}
