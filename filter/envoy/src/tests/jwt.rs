//! RequestAuthentication in the module over the fake handle: jwt_authn's forwarded payload
//! header means "signature verified"; the core's checks, the 401, the token's removal and the
//! payload headers never reaching the upstream (a forged one is ignored and dropped).

use std::sync::Arc;

use crate::config::FilterConfig;
use crate::fake::FakeStream;
use crate::filter::HttpFilter;

const CONFIG: &str = concat!(
    waypoint_core::waypoint_gateway_yaml!("bookinfo"),
    r#"apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo, labels: {istio.io/use-waypoint: waypoint}}
spec: {clusterIP: 10.96.0.11, ports: [{port: 9080, name: http}]}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: bookinfo}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  jwtRules: [{issuer: iss, jwksUri: "https://keys.test/jwks.json", outputClaimToHeaders: [{header: x-sub, claim: sub}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: need-jwt, namespace: bookinfo}
spec:
  targetRefs: [{kind: Service, group: "", name: reviews}]
  rules: [{from: [{source: {requestPrincipals: ["iss/*"]}}]}]
"#
);

fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// (token, its payload section) with `exp` at `exp`.
fn token(exp: u64) -> (String, String) {
    let payload = b64(
        serde_json::json!({"iss": "iss", "sub": "alice", "exp": exp})
            .to_string()
            .as_bytes(),
    );
    (
        format!("{}.{payload}.sig", b64(br#"{"alg":"ES256"}"#)),
        payload,
    )
}

fn run(headers: &[(&str, &str)]) -> FakeStream {
    let spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": CONFIG});
    let cfg = FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config");
    let mut s = FakeStream::request(
        "GET",
        "reviews.bookinfo.svc.cluster.local:9080",
        "/",
        headers,
    )
    .with_peer(None, Some("spiffe://cluster.local/ns/bookinfo/sa/sleep"));
    let mut f = HttpFilter::new(Arc::new(cfg));
    f.on_request_headers(&mut s, true);
    s
}

fn has(s: &FakeStream, name: &str) -> bool {
    s.request.iter().any(|(k, _)| k == name)
}

#[test]
fn verified_payload_header_feeds_the_core() {
    let now = crate::jwt::now();
    let (good, payload) = token(now + 600);
    let bearer = format!("Bearer {good}");

    // jwt_authn verified it: allowed, token and payload header removed, the claim output set.
    let s = run(&[("authorization", &bearer), ("x-waypoint-jwt-0", &payload)]);
    assert!(s.reply.is_none(), "{:?}", s.reply);
    assert!(!has(&s, "authorization") && !has(&s, "x-waypoint-jwt-0"));
    assert!(s.request.iter().any(|(k, v)| k == "x-sub" && v == "alice"));

    // jwt_authn did not verify it (no payload header): 401.
    let s = run(&[("authorization", &bearer)]);
    let r = s.reply.expect("401");
    assert_eq!((r.status, r.body.as_str()), (401, "Jwt verification fails"));
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v.contains("invalid_token")));

    // Verified but expired past the 60 s skew: the core's check.
    let (old, old_payload) = token(now - 120);
    let s = run(&[
        ("authorization", &format!("Bearer {old}")),
        ("x-waypoint-jwt-0", &old_payload),
    ]);
    assert_eq!(
        s.reply.map(|r| (r.status, r.body)),
        Some((401, "Jwt is expired".to_string()))
    );

    // No token: authentication passes, the ALLOW policy wants a request principal: 403; a
    // forged payload header without a token changes nothing and is dropped.
    let s = run(&[("x-waypoint-jwt-0", &payload)]);
    assert!(!has(&s, "x-waypoint-jwt-0"), "forged payload header kept");
    assert_eq!(s.reply.map(|r| r.status), Some(403));
}
