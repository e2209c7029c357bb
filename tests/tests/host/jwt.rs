//! RequestAuthentication end to end through the standalone host: tokens signed with keys made
//! in the test (RS256, ES256, EdDSA), served by a loopback JWKS server (jwksUri) that rotates
//! keys; 401 for bad tokens, claim-based ALLOW / DENY, routing on a claim, claim to header.

use std::time::Duration;

use serde_json::json;
use waypoint_hbone::HboneClient;
use waypoint_tests::echo::{empty, http_echo};
use waypoint_tests::hbone_client::{collect, http1_over, tunnel, Collected};
use waypoint_tests::jwt::{claims, jwks, now, JwksServer, SigningKey};
use waypoint_tests::manifests::plain_service as service;
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::{eventually, TestWaypoint};

const LIMIT: Duration = Duration::from_secs(90);
const ISS: &str = "https://issuer.test";

fn policy(jwks_uri: &str) -> String {
    format!(
        r#"
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: front-jwt, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: front}}]
  jwtRules:
  - issuer: {ISS}
    audiences: [shop]
    jwksUri: {jwks_uri}
    outputClaimToHeaders: [{{header: x-jwt-sub, claim: sub}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: front-allow, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: front}}]
  rules:
  - from: [{{source: {{requestPrincipals: ["{ISS}/*"]}}}}]
    to: [{{operation: {{paths: ["/secure*"]}}}}]
  - to: [{{operation: {{paths: ["/public*"]}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: front-deny, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: front}}]
  action: DENY
  rules:
  - when: [{{key: "request.auth.claims[groups]", values: [banned]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: front, namespace: default}}
spec:
  hosts: [front.default.svc.cluster.local]
  http:
  - match: [{{headers: {{"@request.auth.claims.tier": {{exact: gold}}}}}}]
    route: [{{destination: {{host: two.default.svc.cluster.local}}}}]
  - route: [{{destination: {{host: one.default.svc.cluster.local}}}}]
"#
    )
}

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
        let (rs, es, ed) = (
            SigningKey::rs256("rsa-1"),
            SigningKey::es256("ec-1"),
            SigningKey::ed25519("ed-1"),
        );
        let server = JwksServer::start(jwks(&[&rs, &es, &ed])).await;
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
        let alice = claims(ISS, "alice", "shop", json!({"groups": ["dev"]}));

        // Valid tokens of each algorithm: allowed, the claim forwarded as a header, the token
        // removed (forwardOriginalToken is false).
        for key in [&rs, &es, &ed] {
            let r = get(&client, &wp, "/secure", Some(&key.sign(&alice))).await;
            assert_eq!(r.status, 200, "{key:?}: {}", r.text());
            assert_eq!(r.header("x-served-by"), Some("one"));
            let body = r.text();
            assert!(body.contains("x-jwt-sub=alice"), "{body}");
            assert!(!body.contains("authorization="), "token forwarded: {body}");
        }

        // Bad tokens: 401 with Envoy's messages.
        let mut expired = alice.clone();
        expired["exp"] = json!(now() - 120);
        let mut wrong_aud = alice.clone();
        wrong_aud["aud"] = json!("other");
        let mut wrong_iss = alice.clone();
        wrong_iss["iss"] = json!("https://evil.test");
        let stranger = SigningKey::es256("ec-1"); // same kid, another key
        for (name, token, body) in [
            ("expired", rs.sign(&expired), "Jwt is expired"),
            (
                "wrong audience",
                es.sign(&wrong_aud),
                "Audiences in Jwt are not allowed",
            ),
            (
                "wrong issuer",
                es.sign(&wrong_iss),
                "Jwt issuer is not configured",
            ),
            (
                "bad signature",
                stranger.sign(&alice),
                "Jwt verification fails",
            ),
        ] {
            let r = get(&client, &wp, "/public", Some(&token)).await;
            assert_eq!(r.status, 401, "{name}: {}", r.text());
            assert_eq!(r.text(), body, "{name}");
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|v| v.contains("invalid_token")),
                "{name}"
            );
        }

        // Missing token: authentication passes; authorization decides.
        assert_eq!(get(&client, &wp, "/public", None).await.status, 200);
        let r = get(&client, &wp, "/secure", None).await;
        assert_eq!(r.status, 403, "no request principal: {}", r.text());

        // Claim-based DENY, routing on a claim.
        let banned = claims(ISS, "mallory", "shop", json!({"groups": ["banned"]}));
        assert_eq!(
            get(&client, &wp, "/secure", Some(&es.sign(&banned)))
                .await
                .status,
            403
        );
        let gold = claims(ISS, "bob", "shop", json!({"tier": "gold"}));
        let r = get(&client, &wp, "/secure", Some(&ed.sign(&gold))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-served-by"), Some("two"), "routed on tier=gold");

        // Rotation: the server drops rsa-1 and serves a new key; within the refresh interval
        // the waypoint accepts the new key and refuses the old one.
        let fetched = server.hits();
        assert!(fetched >= 1);
        let es2 = SigningKey::es256("ec-2");
        server.set(jwks(&[&es2]));
        let new_token = es2.sign(&alice);
        let old_token = rs.sign(&alice);
        assert!(
            eventually(Duration::from_secs(10), || {
                let (c, w, t) = (&client, &wp, &new_token);
                async move { get(c, w, "/secure", Some(t)).await.status == 200 }
            })
            .await,
            "the rotated key is never accepted"
        );
        assert!(server.hits() > fetched, "the key set was fetched again");
        let r = get(&client, &wp, "/secure", Some(&old_token)).await;
        assert_eq!(
            r.status,
            401,
            "the removed key still verifies: {}",
            r.text()
        );
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
