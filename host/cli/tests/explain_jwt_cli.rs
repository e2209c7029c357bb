//! `waypoint explain --jwt TOKEN --jwks FILE`: the token authenticated with the destination's
//! RequestAuthentication, the verified claims shown and fed to authorization.

use std::process::Command;

use serde_json::{json, Value};
use waypoint_tests::jwt::{claims, jwks, now, SigningKey};
use waypoint_tests::pki::TempDir;

const ISS: &str = "https://issuer.test";

const CONFIG: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: default}
spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}
---
apiVersion: v1
kind: Service
metadata: {name: shop, namespace: default, labels: {istio.io/use-waypoint: waypoint}}
spec: {clusterIP: 10.96.9.1, ports: [{name: http, port: 80}]}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: shop-jwt, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: shop}]
  jwtRules:
  - issuer: https://issuer.test
    audiences: [shop]
    jwksUri: https://keys.issuer.test/jwks.json
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: shop-admins, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: shop}]
  rules:
  - when: [{key: "request.auth.claims[groups]", values: [admin]}]
"#;

fn explain(dir: &TempDir, token: &str) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_waypoint"))
        .arg("explain")
        .args([
            "--config",
            &dir.path().join("config.yaml").display().to_string(),
        ])
        .args(["--request", "GET http://shop/orders", "--jwt", token])
        .args([
            "--jwks",
            &dir.path().join("jwks.json").display().to_string(),
        ])
        .args(["--output", "json"])
        .output()
        .expect("run waypoint");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let raw = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (serde_json::from_str(&stdout).unwrap_or(Value::Null), raw)
}

#[test]
fn explain_shows_verified_claims_and_their_effect() {
    let dir = TempDir::new("explain-jwt");
    let key = SigningKey::es256("k1");
    std::fs::write(dir.path().join("config.yaml"), CONFIG).expect("write config");
    std::fs::write(dir.path().join("jwks.json"), jwks(&[&key])).expect("write jwks");

    let admin = key.sign(&claims(ISS, "alice", "shop", json!({"groups": ["admin"]})));
    let (j, raw) = explain(&dir, &admin);
    assert_eq!(j["action"], "route", "{raw}");
    assert_eq!(j["jwt"]["verified"], true, "{raw}");
    assert_eq!(j["jwt"]["principal"], "https://issuer.test/alice", "{raw}");
    assert_eq!(j["jwt"]["claims"]["groups"], json!(["admin"]), "{raw}");

    let dev = key.sign(&claims(ISS, "bob", "shop", json!({"groups": ["dev"]})));
    let (j, raw) = explain(&dir, &dev);
    assert_eq!(
        (j["action"].as_str(), j["status"].as_u64()),
        (Some("deny"), Some(403)),
        "{raw}"
    );

    let mut c = claims(ISS, "alice", "shop", json!({"groups": ["admin"]}));
    c["exp"] = json!(now() - 3600);
    let (j, raw) = explain(&dir, &key.sign(&c));
    assert_eq!(j["status"], 401, "{raw}");
    assert_eq!(j["body"], "Jwt is expired", "{raw}");
    assert_eq!(j["jwt"]["verified"], false, "{raw}");

    let other = SigningKey::es256("k1");
    let (j, raw) = explain(&dir, &other.sign(&claims(ISS, "alice", "shop", json!({}))));
    assert_eq!(j["body"], "Jwt verification fails", "{raw}");
}
