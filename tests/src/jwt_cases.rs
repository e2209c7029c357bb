//! The RequestAuthentication cases both runtimes must answer the same way: one config (a
//! RequestAuthentication, ALLOW/DENY on request principals and claims, a VirtualService routing
//! on a claim) and one table of requests, run by tests/tests/{host,envoy}/jwt.rs; and the key
//! rotation steps both runtimes must pass.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::hbone_client::Collected;
use crate::jwt::{claims, jwks, now, JwksServer, SigningKey};
use crate::waypoint::eventually;

/// The issuer of the tokens the cases sign.
pub const ISS: &str = "https://issuer.test";

/// The config for service `front` (routes to `one`, or `two` for `tier: gold`), with the
/// issuer's keys at `jwks_uri`.
pub fn policy(jwks_uri: &str) -> String {
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

/// The issuer's keys: RS256, ES256, EdDSA.
pub struct Keys {
    pub rs: SigningKey,
    pub es: SigningKey,
    pub ed: SigningKey,
}

impl Keys {
    pub fn new() -> Keys {
        Keys {
            rs: SigningKey::rs256("rsa-1"),
            es: SigningKey::es256("ec-1"),
            ed: SigningKey::ed25519("ed-1"),
        }
    }
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new()
    }
}

/// Alice's claims: a valid token for `front`.
pub fn alice() -> Value {
    claims(ISS, "alice", "shop", json!({"groups": ["dev"]}))
}

/// Run the table through `get(path, token)` (one request to `front` over HBONE); `what` names
/// the runtime in failures. Valid tokens of every algorithm pass with the claim forwarded as a
/// header and the token removed; bad tokens get 401 with Envoy's message; no token is left to
/// authorization; a claim DENYs; a claim routes.
pub async fn run<F, Fut>(what: &str, keys: &Keys, get: F)
where
    F: Fn(&'static str, Option<String>) -> Fut,
    Fut: Future<Output = Collected>,
{
    let alice = alice();
    for key in [&keys.rs, &keys.es, &keys.ed] {
        let r = get("/secure", Some(key.sign(&alice))).await;
        assert_eq!(r.status, 200, "{what}: {key:?}: {}", r.text());
        assert_eq!(r.header("x-served-by"), Some("one"), "{what}");
        let body = r.text();
        assert!(body.contains("x-jwt-sub=alice"), "{what}: {body}");
        assert!(
            !body.contains("authorization="),
            "{what}: token forwarded: {body}"
        );
        assert!(
            !body.contains("x-waypoint-jwt-"),
            "{what}: payload header forwarded: {body}"
        );
    }

    let mut expired = alice.clone();
    expired["exp"] = json!(now() - 120);
    let mut wrong_aud = alice.clone();
    wrong_aud["aud"] = json!("other");
    let mut wrong_iss = alice.clone();
    wrong_iss["iss"] = json!("https://evil.test");
    let stranger = SigningKey::es256("ec-1"); // same kid, another key
    for (name, token, body) in [
        ("expired", keys.rs.sign(&expired), "Jwt is expired"),
        (
            "wrong audience",
            keys.es.sign(&wrong_aud),
            "Audiences in Jwt are not allowed",
        ),
        (
            "wrong issuer",
            keys.es.sign(&wrong_iss),
            "Jwt issuer is not configured",
        ),
        (
            "bad signature",
            stranger.sign(&alice),
            "Jwt verification fails",
        ),
    ] {
        let r = get("/public", Some(token)).await;
        assert_eq!(r.status, 401, "{what}: {name}: {}", r.text());
        assert_eq!(r.text(), body, "{what}: {name}");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.contains("invalid_token")),
            "{what}: {name}"
        );
    }

    // Missing token: authentication passes; authorization decides.
    assert_eq!(get("/public", None).await.status, 200, "{what}");
    let r = get("/secure", None).await;
    assert_eq!(r.status, 403, "{what}: no request principal: {}", r.text());

    let banned = claims(ISS, "mallory", "shop", json!({"groups": ["banned"]}));
    assert_eq!(
        get("/secure", Some(keys.es.sign(&banned))).await.status,
        403,
        "{what}"
    );
    let gold = claims(ISS, "bob", "shop", json!({"tier": "gold"}));
    let r = get("/secure", Some(keys.ed.sign(&gold))).await;
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(
        r.header("x-served-by"),
        Some("two"),
        "{what}: routed on tier=gold"
    );
}

/// Key rotation through `get` (as [`run`]): `server` serves key A (`keys.rs`) and an A-token
/// is accepted; the server then serves key B alone, and within `within` a B-token is accepted
/// and the A-token gets 401 (the set was fetched again). Returns how long B took to work.
pub async fn rotation<F, Fut>(
    what: &str,
    server: &JwksServer,
    keys: &Keys,
    within: Duration,
    get: F,
) -> Duration
where
    F: Fn(&'static str, Option<String>) -> Fut,
    Fut: Future<Output = Collected>,
{
    let alice = alice();
    let old_token = keys.rs.sign(&alice);
    let r = get("/secure", Some(old_token.clone())).await;
    assert_eq!(
        r.status,
        200,
        "{what}: key A before the rotation: {}",
        r.text()
    );
    let fetched = server.hits();
    assert!(fetched >= 1, "{what}: the key set was never fetched");

    let b = SigningKey::es256("ec-rotated");
    server.set(jwks(&[&b]));
    let new_token = b.sign(&alice);
    let started = Instant::now();
    let accepted = eventually(within, || {
        let (get, t) = (&get, &new_token);
        async move { get("/secure", Some(t.clone())).await.status == 200 }
    })
    .await;
    let took = started.elapsed();
    assert!(accepted, "{what}: key B not accepted within {within:?}");
    assert!(
        server.hits() > fetched,
        "{what}: the key set was not fetched again"
    );
    let r = get("/secure", Some(old_token)).await;
    assert_eq!(
        r.status,
        401,
        "{what}: key A still verifies after the rotation: {}",
        r.text()
    );
    took
}
