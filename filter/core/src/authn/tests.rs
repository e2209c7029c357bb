//! RequestAuthentication through the core: compile, select, extract, check claims, and the
//! verified attributes in authorization and claim routing (signatures faked: `sig` = `good`).

use serde_json::json;

use super::*;
use crate::decision::Action;
use crate::request::Request;
use crate::resource::parse_manifests;
use crate::{BuildOptions, Snapshot, SplitMix64};

const NOW: u64 = 1_800_000_000;

/// Accepts a token whose signature section is `good`.
struct FakeVerifier;

impl SignatureVerifier for FakeVerifier {
    fn verify(&self, _rule: &JwtRule, token: &str) -> Result<(), JwtError> {
        if token.ends_with(".good") {
            Ok(())
        } else {
            Err(JwtError::VerificationFailed)
        }
    }
}

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

fn token(payload: serde_json::Value, sig: &str) -> String {
    format!(
        "{}.{}.{sig}",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(payload.to_string().as_bytes())
    )
}

fn good(payload: serde_json::Value) -> String {
    token(payload, "good")
}

fn claims() -> serde_json::Value {
    json!({"iss": "https://issuer.test", "sub": "alice", "aud": ["shop"], "azp": "web",
           "exp": NOW + 3600, "groups": ["admin", "dev"], "realm": {"role": "gold"}})
}

fn snapshot(extra: &str) -> Snapshot {
    let text = format!(
        r#"{gw}apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default, labels: {{istio.io/use-waypoint: waypoint}}}}
spec: {{clusterIP: 10.0.0.1, ports: [{{name: http, port: 80}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: other, namespace: default, labels: {{istio.io/use-waypoint: waypoint}}}}
spec: {{clusterIP: 10.0.0.2, ports: [{{name: http, port: 80}}]}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: echo}}]
  jwtRules:
  - issuer: https://issuer.test
    audiences: [shop]
    jwks: '{{"keys": []}}'
    outputClaimToHeaders: [{{header: x-user, claim: sub}}, {{header: x-role, claim: realm.role}}]
    outputPayloadToHeader: x-payload
{extra}"#,
        gw = crate::waypoint_gateway_yaml!("default"),
    );
    let (rs, errs) = parse_manifests(&text, "t.yaml", "default", 0);
    assert!(errs.is_empty(), "{errs:?}");
    let (snap, d) = Snapshot::build(&rs, &BuildOptions::default());
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    snap
}

fn req<'a>(path: &'a str, headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
    Request {
        method: "GET",
        scheme: "http",
        authority: "echo",
        path,
        headers,
        source_principal: None,
        source_ip: None,
        destination: "10.0.0.1:80",
        sni: None,
    }
}

fn run(snap: &Snapshot, r: &Request<'_>) -> Result<Authenticated, Unauthenticated> {
    let rules = snap.jwt_rules_for(r.destination);
    authenticate(&rules, r, &FakeVerifier, NOW)
}

#[test]
fn token_outcomes_as_envoy_jwt_authn() {
    let snap = snapshot("");
    let mut expired = claims();
    expired["exp"] = json!(NOW - 61);
    let mut skewed = claims();
    skewed["exp"] = json!(NOW - 59);
    let mut early = claims();
    early["nbf"] = json!(NOW + 61);
    let mut wrong_iss = claims();
    wrong_iss["iss"] = json!("https://evil.test");
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("other");
    let cases: Vec<(&str, String, Result<(), JwtError>)> = vec![
        ("valid", good(claims()), Ok(())),
        (
            "expired past the skew",
            good(expired),
            Err(JwtError::Expired),
        ),
        ("expired within 60 s of skew", good(skewed), Ok(())),
        ("not yet valid", good(early), Err(JwtError::NotYetValid)),
        (
            "wrong issuer",
            good(wrong_iss),
            Err(JwtError::UnknownIssuer),
        ),
        (
            "wrong audience",
            good(wrong_aud),
            Err(JwtError::AudienceNotAllowed),
        ),
        (
            "bad signature",
            token(claims(), "bad"),
            Err(JwtError::VerificationFailed),
        ),
        ("not a JWT", "abc.def".to_string(), Err(JwtError::BadFormat)),
    ];
    for (name, tok, want) in cases {
        let auth = format!("Bearer {tok}");
        let h = [("authorization", auth.as_str())];
        let got = run(&snap, &req("/", &h)).map(|_| ()).map_err(|e| e.error);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn missing_token_is_allowed_without_attributes() {
    let snap = snapshot("");
    let out = run(&snap, &req("/", &[])).expect("no token passes authentication");
    assert!(out.auth.is_none());
    assert!(out.set_headers.is_empty() && out.remove_headers.is_empty());
}

#[test]
fn verified_token_gives_attributes_outputs_and_removal() {
    let snap = snapshot("");
    let tok = good(claims());
    let auth = format!("Bearer {tok}");
    let h = [("authorization", auth.as_str())];
    let out = run(&snap, &req("/", &h)).expect("valid token");
    let a = out.auth.expect("attributes");
    assert_eq!(a.principal.as_deref(), Some("https://issuer.test/alice"));
    assert_eq!(a.audiences, vec!["shop".to_string()]);
    assert_eq!(a.presenter.as_deref(), Some("web"));
    assert_eq!(a.claim_strings(&["groups"]), vec!["admin", "dev"]);
    assert_eq!(out.remove_headers, vec!["authorization".to_string()]);
    let payload = tok.split('.').nth(1).unwrap_or_default().to_string();
    assert_eq!(
        out.set_headers,
        vec![
            ("x-payload".to_string(), payload),
            ("x-user".to_string(), "alice".to_string()),
            ("x-role".to_string(), "gold".to_string()),
        ]
    );
}

#[test]
fn rules_apply_only_to_their_targets() {
    let snap = snapshot("");
    assert_eq!(snap.jwt_rules_for("10.0.0.1:80").len(), 1);
    assert!(snap.jwt_rules_for("10.0.0.2:80").is_empty());
    let bad = format!("Bearer {}", token(claims(), "bad"));
    let h = [("authorization", bad.as_str())];
    let mut r = req("/", &h);
    r.destination = "10.0.0.2:80";
    assert!(
        run(&snap, &r).is_ok(),
        "no rule for `other`: the token is not read"
    );
}

#[test]
fn locations_params_cookies_and_forwarding() {
    let snap = snapshot(
        r#"---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: wide, namespace: default}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  jwtRules:
  - issuer: other-issuer
    jwksUri: https://keys.test/jwks.json
    fromHeaders: [{name: x-jwt, prefix: "Token "}]
    fromParams: [tok]
    fromCookies: [session]
    forwardOriginalToken: true
"#,
    );
    assert_eq!(snap.jwt_rules_for("10.0.0.2:80").len(), 1, "waypoint-wide");
    assert_eq!(snap.jwt_rules_for("10.0.0.1:80").len(), 2);
    let mut c = claims();
    c["iss"] = json!("other-issuer");
    c["aud"] = json!("x");
    let tok = good(c);
    let hdr = format!("Token {tok}");
    let cookie = format!("a=b; session={tok}");
    let path = format!("/p?tok={tok}");
    for (name, h, p) in [
        ("header", vec![("x-jwt", hdr.as_str())], "/"),
        ("cookie", vec![("cookie", cookie.as_str())], "/"),
        ("param", vec![], path.as_str()),
    ] {
        let mut r = req(p, &h);
        r.destination = "10.0.0.2:80";
        let out = run(&snap, &r).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let a = out.auth.unwrap_or_else(|| panic!("{name}: verified"));
        assert_eq!(a.issuer, "other-issuer", "{name}");
        assert!(
            out.remove_headers.is_empty(),
            "{name}: forwardOriginalToken"
        );
    }
    // The default Authorization header is not one of this rule's locations.
    let auth = format!("Bearer {tok}");
    let h = [("authorization", auth.as_str())];
    let mut r = req("/", &h);
    r.destination = "10.0.0.2:80";
    assert!(run(&snap, &r).expect("ignored").auth.is_none());
    // On `echo` both rules apply: the other issuer's token in the Authorization header fails
    // the first rule (unknown issuer) and is in no location of the second: 401.
    let r = req("/", &h);
    assert_eq!(
        run(&snap, &r).map(|_| ()).map_err(|e| e.error),
        Err(JwtError::UnknownIssuer)
    );
}

#[test]
fn validation_names_the_field() {
    let text = r#"apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: bad, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: echo}]
  jwtRules:
  - issuer: ""
  - issuer: a
    jwksUri: ftp://x
  - issuer: b
    outputClaimToHeaders: [{header: "bad header", claim: sub}]
  - issuer: c
"#;
    let (rs, _) = parse_manifests(text, "t.yaml", "default", 0);
    let (c, d) = compile_request_authn(&rs[0]);
    let fields: Vec<&str> = d.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "spec.jwtRules[0].issuer",
            "spec.jwtRules[1].jwksUri",
            "spec.jwtRules[2].outputClaimToHeaders[0].header"
        ]
    );
    let c = c.expect("parsed");
    assert_eq!(c.rules.len(), 1);
    assert_eq!(c.rules[0].issuer, "c");
    assert_eq!(c.rules[0].locations, TokenLocation::defaults());
    assert_eq!(
        c.rules[0].jwks,
        JwksSource::Discovery("c/.well-known/openid-configuration".into())
    );
}

const POLICIES: &str = r#"---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: need-jwt, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: echo}]
  rules:
  - from: [{source: {requestPrincipals: ["https://issuer.test/*"]}}]
    when: [{key: "request.auth.claims[groups]", values: [admin, ops]}]
  - to: [{operation: {paths: [/public]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-gold, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: echo}]
  action: DENY
  rules:
  - when: [{key: "request.auth.claims[realm][role]", values: [gold]}]
    to: [{operation: {paths: [/gold-free]}}]
"#;

fn decide_status(snap: &Snapshot, path: &str, payload: Option<serde_json::Value>) -> u16 {
    let auth = payload.map(|p| match p {
        serde_json::Value::Object(m) => RequestAuth::from_payload(m),
        _ => RequestAuth::default(),
    });
    let r = req(path, &[]);
    let d = snap.decide_authenticated(&r, auth.as_ref(), &mut SplitMix64(1), false);
    match d.local {
        Some(l) => l.status,
        None => {
            assert_eq!(d.action, Action::Route);
            200
        }
    }
}

#[test]
fn claims_and_request_principals_in_authorization() {
    let snap = snapshot(POLICIES);
    assert_eq!(
        decide_status(&snap, "/", Some(claims())),
        200,
        "admin group"
    );
    assert_eq!(
        decide_status(&snap, "/", None),
        403,
        "no token: no request principal"
    );
    assert_eq!(decide_status(&snap, "/public", None), 200);
    let mut dev = claims();
    dev["groups"] = json!("dev");
    assert_eq!(
        decide_status(&snap, "/", Some(dev)),
        403,
        "claim not matched"
    );
    let mut other = claims();
    other["iss"] = json!("https://other.test");
    assert_eq!(
        decide_status(&snap, "/", Some(other)),
        403,
        "principal not matched"
    );
    assert_eq!(
        decide_status(&snap, "/gold-free", Some(claims())),
        403,
        "nested claim DENY"
    );
    let mut silver = claims();
    silver["realm"] = json!({"role": "silver"});
    assert_eq!(
        decide_status(&snap, "/gold-free", Some(silver)),
        200,
        "DENY not matched, ALLOW matched"
    );
}

#[test]
fn routing_on_a_claim() {
    let snap = snapshot(
        r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
  - match: [{headers: {"@request.auth.claims.realm.role": {exact: gold}}}]
    route: [{destination: {host: other}}]
  - route: [{destination: {host: echo}}]
"#,
    );
    let host = |payload: Option<serde_json::Value>| {
        let auth = payload.and_then(|p| p.as_object().cloned().map(RequestAuth::from_payload));
        let r = req("/", &[("@request.auth.claims.realm.role", "gold")]);
        let d = snap.decide_authenticated(&r, auth.as_ref(), &mut SplitMix64(1), false);
        d.forward
            .map(|f| f.backend.host.clone())
            .unwrap_or_default()
    };
    assert!(host(Some(claims())).starts_with("other"));
    assert!(
        host(None).starts_with("echo"),
        "a header of that name is no claim"
    );
    let mut silver = claims();
    silver["realm"] = json!({"role": "silver"});
    assert!(host(Some(silver)).starts_with("echo"));
}
