//! RequestAuthentication in the generated Envoy config: one jwt_authn provider per JWT rule
//! (Istio's form: `requires_any` of every provider and `allow_missing_or_failed`), each
//! forwarding its verified payload in `x-waypoint-jwt-<k>` for the module, which rejects
//! failed tokens with 401 as Istio's authn step did; a `header_mutation` filter first strips
//! those headers from the client. In the static bootstrap Envoy fetches `jwksUri` sets
//! (`remote_jwks`); `waypoint xds` fetches them itself and inlines them ([`inline_remote`]).

use serde_json::{json, Value};
use waypoint_core::authn::{JwksSource, JwtRule, TokenLocation};
use waypoint_core::Snapshot;

const JWT_AUTHN: &str =
    "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
const HEADER_MUTATION: &str =
    "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation";
const TLS: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";

/// Istio's `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL` (20 min) as the remote JWKS cache duration.
const JWKS_CACHE_SECONDS: u64 = 1200;

/// A JWKS that verifies nothing (no one holds its private key), for providers Envoy cannot get
/// keys for (OpenID discovery, a bad `jwksUri`): as istiod's fake JWKS, Envoy accepts the
/// config and every token of the provider fails (401).
fn unverifiable_jwks() -> String {
    json!({"keys": [{"kty": "RSA", "kid": "waypoint-unverifiable", "alg": "RS256", "e": "AQAB",
    "n": concat!(
        "x9OebYSd3ihubVB9fX-idsPh4-zjQoyDrV8Na5vFF20EDv_aljFSyQuYtqlxaexlpGxWGwCRIvQ4XRiDur5k5Z",
        "7lD5Z83Zxodj7w93cRomaTk_GBvMA3mVo84Dfgn0WrceX4FMoj-J8Wr_sqPE2V67Twc6Bh3GDhbsl17z8RuB4w",
        "DnfV51zXhYcvyzXtTQS0ulzlpXMaptq_z2OgEQmD1R7IWsRSDSgURBNvNyDXDLUV-KCJv0mYVnV62Gn-fN0l_2",
        "sMYVAh5rfYkpZhhmrT6NMQRxHyzNTj5kALHoOik9XH0Iyzh4ZTVOxOsPK40Fe6eunQbDz2-02UzdMrvuRMGQ"
    )}]})
    .to_string()
}

/// The module's payload header of provider `k` (the module's `jwt::payload_header`).
pub fn payload_header(k: usize) -> String {
    format!("x-waypoint-jwt-{k}")
}

/// A `jwksUri` split for its cluster: (scheme is https, host, port, cluster name).
fn remote_target(uri: &str) -> Option<(bool, String, u16, String)> {
    let (https, rest) = match uri.strip_prefix("https://") {
        Some(r) => (true, r),
        None => (false, uri.strip_prefix("http://")?),
    };
    let hostport = rest.split(['/', '?', '#']).next()?;
    let (host, port) = match waypoint_core::request::split_host_port(hostport) {
        (h, Some(p)) => (h.to_string(), p),
        (h, None) => (h.to_string(), if https { 443 } else { 80 }),
    };
    let name = format!("jwks|{host}|{port}");
    Some((https, host, port, name))
}

fn provider(k: usize, r: &JwtRule) -> Value {
    let mut p = json!({
        "issuer": r.issuer,
        "audiences": r.audiences,
        // The module removes the token unless forwardOriginalToken (it reads it first).
        "forward": true,
        "forward_payload_header": payload_header(k),
        "payload_in_metadata": r.issuer,
    });
    let (mut headers, mut params, mut cookies) = (Vec::new(), Vec::new(), Vec::new());
    for l in &r.locations {
        match l {
            TokenLocation::Header { name, prefix } => {
                headers.push(json!({"name": name, "value_prefix": prefix}))
            }
            TokenLocation::Param(n) => params.push(json!(n)),
            TokenLocation::Cookie(n) => cookies.push(json!(n)),
        }
    }
    p["from_headers"] = json!(headers);
    p["from_params"] = json!(params);
    if !cookies.is_empty() {
        p["from_cookies"] = json!(cookies);
    }
    match &r.jwks {
        JwksSource::Inline(text) => p["local_jwks"] = json!({"inline_string": text}),
        JwksSource::Remote(uri) => match remote_target(uri) {
            Some((_, _, _, cluster)) => {
                p["remote_jwks"] = json!({
                    "http_uri": {"uri": uri, "cluster": cluster,
                                 "timeout": format!("{}s", r.fetch_timeout_ms.div_ceil(1000).max(1))},
                    "cache_duration": format!("{JWKS_CACHE_SECONDS}s"),
                    "async_fetch": {},
                })
            }
            None => p["local_jwks"] = json!({"inline_string": unverifiable_jwks()}),
        },
        // No OpenID discovery in Envoy: the provider verifies nothing (tokens fail, 401).
        JwksSource::Discovery(_) => p["local_jwks"] = json!({"inline_string": unverifiable_jwks()}),
    }
    p
}

/// The `header_mutation` and `jwt_authn` filters, to go before the module.
pub fn filters(snapshot: &Snapshot) -> Vec<Value> {
    let rules = snapshot.jwt_rules();
    if rules.is_empty() {
        return Vec::new();
    }
    let strip: Vec<Value> = (0..rules.len())
        .map(|k| json!({"remove": payload_header(k)}))
        .collect();
    let mut providers = serde_json::Map::new();
    let mut any: Vec<Value> = Vec::new();
    for (k, r) in rules.iter().enumerate() {
        let name = format!("origins-{k}");
        providers.insert(name.clone(), provider(k, r));
        any.push(json!({"provider_name": name}));
    }
    any.push(json!({"allow_missing_or_failed": {}}));
    vec![
        json!({"name": "waypoint.jwt_payload_strip", "typed_config": {
            "@type": HEADER_MUTATION,
            "mutations": {"request_mutations": strip}}}),
        json!({"name": "envoy.filters.http.jwt_authn", "typed_config": {
            "@type": JWT_AUTHN,
            "providers": providers,
            "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": any}}}],
            "bypass_cors_preflight": true}}),
    ]
}

/// Insert [`filters`] before the module in the L7 listener.
pub fn wire(listener: &mut Value, snapshot: &Snapshot) {
    let add = filters(snapshot);
    if add.is_empty() {
        return;
    }
    let Some(chain) =
        listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"].as_array_mut()
    else {
        return;
    };
    let at = chain
        .iter()
        .position(|f| f["name"] == "waypoint")
        .unwrap_or(0);
    for (i, f) in add.into_iter().enumerate() {
        chain.insert(at + i, f);
    }
}

/// istiod's form for `waypoint xds`: every remote set (`jwksUri`, OpenID discovery) of
/// `config` (a [`super::generate`] result for `snapshot`) becomes `local_jwks` with the text
/// `fetched` gives, or the unverifiable set when it has none yet; the `jwks|` clusters go.
pub fn inline_remote(
    config: &mut Value,
    snapshot: &Snapshot,
    fetched: &dyn Fn(&JwtRule) -> Option<std::sync::Arc<str>>,
) {
    let rules = snapshot.jwt_rules();
    let mut texts = serde_json::Map::new();
    for (k, r) in rules.iter().enumerate() {
        if matches!(r.jwks, JwksSource::Remote(_) | JwksSource::Discovery(_)) {
            let text = fetched(r).map_or_else(unverifiable_jwks, |t| t.to_string());
            texts.insert(format!("origins-{k}"), json!(text));
        }
    }
    // `get_mut` only: indexing a `Value` mutably would add the keys it looks for.
    let http_filters = config
        .get_mut("static_resources")
        .and_then(|s| s.get_mut("listeners"))
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get_mut("filter_chains").and_then(Value::as_array_mut))
        .flatten()
        .filter_map(|c| c.get_mut("filters").and_then(Value::as_array_mut))
        .flatten()
        .filter_map(|f| {
            f.get_mut("typed_config")
                .and_then(|t| t.get_mut("http_filters"))
                .and_then(Value::as_array_mut)
        })
        .flatten();
    for h in http_filters {
        if h.get("name").and_then(Value::as_str) != Some("envoy.filters.http.jwt_authn") {
            continue;
        }
        let Some(providers) = h
            .get_mut("typed_config")
            .and_then(|t| t.get_mut("providers"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (name, text) in &texts {
            if let Some(p) = providers.get_mut(name).and_then(Value::as_object_mut) {
                p.remove("remote_jwks");
                p.insert("local_jwks".into(), json!({"inline_string": text}));
            }
        }
    }
    if let Some(clusters) = config
        .get_mut("static_resources")
        .and_then(|s| s.get_mut("clusters"))
        .and_then(Value::as_array_mut)
    {
        clusters.retain(|c| !c["name"].as_str().is_some_and(|n| n.starts_with("jwks|")));
    }
}

/// One cluster per `jwksUri` host and port (DNS, TLS with the system roots for https).
pub fn clusters(snapshot: &Snapshot) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for r in snapshot.jwt_rules() {
        let JwksSource::Remote(uri) = &r.jwks else {
            continue;
        };
        let Some((https, host, port, name)) = remote_target(uri) else {
            continue;
        };
        if out.iter().any(|c| c["name"] == name) {
            continue;
        }
        let mut c = json!({
            "name": name,
            "type": "STRICT_DNS",
            "connect_timeout": "5s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": host, "port_value": port}}}}]}]},
        });
        if https {
            c["transport_socket"] = json!({"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": TLS,
                "sni": host,
                "common_tls_context": {"validation_context": {
                    "trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"}}}}});
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_core::resource::parse_manifests;
    use waypoint_core::BuildOptions;

    #[test]
    fn providers_filters_and_clusters_from_request_authentications() {
        let text = concat!(
            waypoint_core::waypoint_gateway_yaml!("default"),
            r#"apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  jwtRules:
  - issuer: https://a.test
    audiences: [shop]
    jwksUri: https://keys.a.test/jwks.json
  - issuer: b
    jwks: '{"keys": []}'
    fromHeaders: [{name: X-Jwt}]
    fromCookies: [session]
"#
        );
        let (rs, errs) = parse_manifests(text, "t.yaml", "default", 0);
        assert!(errs.is_empty(), "{errs:?}");
        let (snap, d) = Snapshot::build(&rs, &BuildOptions::default());
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let f = filters(&snap);
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0]["typed_config"]["mutations"]["request_mutations"],
            json!([{"remove": "x-waypoint-jwt-0"}, {"remove": "x-waypoint-jwt-1"}])
        );
        let jwt = &f[1]["typed_config"];
        let a = &jwt["providers"]["origins-0"];
        assert_eq!(a["issuer"], "https://a.test");
        assert_eq!(a["audiences"], json!(["shop"]));
        assert_eq!(a["forward_payload_header"], "x-waypoint-jwt-0");
        assert_eq!(
            a["remote_jwks"]["http_uri"]["cluster"],
            "jwks|keys.a.test|443"
        );
        assert_eq!(
            a["from_headers"],
            json!([{"name": "authorization", "value_prefix": "Bearer "}])
        );
        assert_eq!(a["from_params"], json!(["access_token"]));
        let b = &jwt["providers"]["origins-1"];
        assert_eq!(b["local_jwks"]["inline_string"], "{\"keys\": []}");
        assert_eq!(
            b["from_headers"],
            json!([{"name": "x-jwt", "value_prefix": ""}])
        );
        assert_eq!(b["from_cookies"], json!(["session"]));
        assert_eq!(
            jwt["rules"][0]["requires"]["requires_any"]["requirements"],
            json!([{"provider_name": "origins-0"}, {"provider_name": "origins-1"},
                   {"allow_missing_or_failed": {}}])
        );
        let c = clusters(&snap);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["name"], "jwks|keys.a.test|443");
        assert_eq!(
            c[0]["transport_socket"]["typed_config"]["sni"],
            "keys.a.test"
        );

        // `waypoint xds`: the fetched set inlined, its cluster gone, inline rules untouched.
        let tcp = json!({"name": "tcp", "filter_chains": [{"filters": [{"typed_config": {"cluster": "x"}}]}]});
        let config = |f: Vec<Value>, c: Vec<Value>| {
            json!({"static_resources": {
                "listeners": [{"filter_chains": [{"filters": [{"typed_config": {"http_filters": f}}]}]},
                              tcp.clone()],
                "clusters": c}})
        };
        let mut fetched = config(filters(&snap), clusters(&snap));
        inline_remote(&mut fetched, &snap, &|r| {
            (r.issuer == "https://a.test").then(|| std::sync::Arc::from(r#"{"keys": ["a"]}"#))
        });
        let providers = |v: &Value| {
            v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
                ["http_filters"][1]["typed_config"]["providers"]
                .clone()
        };
        let p = providers(&fetched);
        assert_eq!(
            p["origins-0"]["local_jwks"]["inline_string"],
            r#"{"keys": ["a"]}"#
        );
        assert!(p["origins-0"].get("remote_jwks").is_none());
        assert_eq!(p["origins-1"], b.clone());
        assert_eq!(fetched["static_resources"]["clusters"], json!([]));
        // Other listeners are left exactly as they were (nothing added).
        assert_eq!(fetched["static_resources"]["listeners"][1], tcp);
        // Never fetched: the unverifiable set (every token of the issuer fails).
        let mut missing = config(filters(&snap), clusters(&snap));
        inline_remote(&mut missing, &snap, &|_| None);
        let text = providers(&missing)["origins-0"]["local_jwks"]["inline_string"].clone();
        assert!(
            text.as_str()
                .is_some_and(|t| t.contains("waypoint-unverifiable")),
            "{text}"
        );
    }
}
