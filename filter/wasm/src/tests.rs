//! The filter logic over a fake stream: what it reads from Envoy's attributes and what it
//! writes for each kind of decision.

use std::collections::HashMap;

use waypoint_core::SplitMix64;

use crate::config::WasmConfig;
use crate::filter::{on_request, on_response, Outcome, RequestState, Stream, DENY_BODY};

/// A local reply: status, headers, body.
type Reply = (u16, Vec<(String, String)>, String);

#[derive(Default)]
struct Fake {
    headers: Vec<(String, String)>,
    response: Vec<(String, String)>,
    properties: HashMap<String, String>,
    reply: Option<Reply>,
}

impl Fake {
    fn request(authority: &str, path: &str) -> Fake {
        Fake {
            headers: vec![
                (":method".into(), "GET".into()),
                (":scheme".into(), "http".into()),
                (":authority".into(), authority.into()),
                (":path".into(), path.into()),
            ],
            ..Fake::default()
        }
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Stream for Fake {
    fn request_headers(&self) -> Vec<(String, String)> {
        self.headers.clone()
    }
    fn property(&self, path: &[&str]) -> Option<String> {
        self.properties.get(&path.join(".")).cloned()
    }
    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        self.headers.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.headers.push((name.into(), v.into()));
        }
    }
    fn add_request_header(&mut self, name: &str, value: &str) {
        self.headers.push((name.into(), value.into()));
    }
    fn set_response_header(&mut self, name: &str, value: Option<&str>) {
        self.response.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.response.push((name.into(), v.into()));
        }
    }
    fn add_response_header(&mut self, name: &str, value: &str) {
        self.response.push((name.into(), value.into()));
    }
    fn send_reply(&mut self, status: u16, headers: &[(&str, &str)], body: &str) {
        let h = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.reply = Some((status, h, body.to_string()));
    }
    fn log_warn(&self, _: &str) {}
}

const CONFIG: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: shop}
spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop, labels: {istio.io/use-waypoint: waypoint}}
spec: {clusterIP: 10.96.9.1, ports: [{port: 80, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart.shop.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new}
  - match: [{uri: {prefix: /teapot}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}, delay: {fixedDelay: 50ms, percentage: {value: 100}}}
    route: [{destination: {host: cart.shop.svc.cluster.local}}]
  - match: [{uri: {prefix: /api}}]
    rewrite: {uri: /v2}
    timeout: 2s
    headers:
      request: {set: {x-set: "1"}, remove: [x-drop]}
      response: {add: {x-resp: "r"}}
    route: [{destination: {host: cart.shop.svc.cluster.local, subset: v2}}]
  - route: [{destination: {host: cart.shop.svc.cluster.local}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: shop}
spec: {host: cart.shop.svc.cluster.local, subsets: [{name: v2, labels: {version: v2}}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-web, namespace: shop}
spec:
  targetRefs: [{kind: Service, group: "", name: cart}]
  action: ALLOW
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]}]
"#;

const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";

fn config() -> WasmConfig {
    let spec = serde_json::json!({"waypoint": "shop/waypoint", "config_inline": CONFIG});
    WasmConfig::from_bytes(spec.to_string().as_bytes()).expect("config")
}

fn run(cfg: &WasmConfig, s: &mut Fake) -> (Outcome, RequestState) {
    let mut state = RequestState::default();
    let out = on_request(cfg, s, &mut SplitMix64(3), &mut state);
    (out, state)
}

#[test]
fn routes_with_header_ops_rewrite_and_router_headers() {
    let cfg = config();
    let mut s = Fake::request("cart.shop.svc.cluster.local", "/api/items");
    s.headers.push(("x-drop".into(), "x".into()));
    // A client's own router header never steers the router.
    s.headers
        .push(("x-envoy-upstream-rq-timeout-ms".into(), "1".into()));
    s.properties.insert(
        "connection.uri_san_peer_certificate".into(),
        WEB.to_string(),
    );
    let (out, state) = run(&cfg, &mut s);
    assert_eq!(out, Outcome::Continue);
    assert!(s.reply.is_none());
    assert_eq!(
        s.header("x-waypoint-cluster"),
        Some("outbound|80|v2|cart.shop.svc.cluster.local")
    );
    assert_eq!(s.header(":path"), Some("/v2/items"));
    assert_eq!(s.header("x-set"), Some("1"));
    assert_eq!(s.header("x-drop"), None);
    assert_eq!(s.header("x-envoy-upstream-rq-timeout-ms"), Some("2000"));
    on_response(&mut s, &state);
    assert_eq!(s.response, vec![("x-resp".to_string(), "r".to_string())]);
}

#[test]
fn principal_comes_from_the_certificate_or_the_filter_state() {
    let cfg = config();
    // No identity: the ALLOW policy denies.
    let mut s = Fake::request("cart.shop.svc.cluster.local", "/");
    let (out, _) = run(&cfg, &mut s);
    assert_eq!(out, Outcome::Replied);
    let (status, _, body) = s.reply.clone().expect("reply");
    assert_eq!((status, body.as_str()), (403, DENY_BODY));
    // The HBONE listener's filter state, with the original destination.
    let mut s = Fake::request("whatever", "/");
    s.properties
        .insert("filter_state.io.istio.peer_principal".into(), WEB.into());
    s.properties.insert(
        "filter_state.waypoint.original_dst".into(),
        "10.96.9.1:80".into(),
    );
    let (out, _) = run(&cfg, &mut s);
    assert_eq!(out, Outcome::Continue, "{:?}", s.reply);
    assert_eq!(
        s.header("x-waypoint-cluster"),
        Some("outbound|80||cart.shop.svc.cluster.local")
    );
    // Several SPIFFE IDs: refused.
    let mut s = Fake::request("cart.shop.svc.cluster.local", "/");
    s.properties.insert(
        "filter_state.io.istio.peer_principal".into(),
        format!("{WEB},spiffe://cluster.local/ns/shop/sa/other"),
    );
    let (out, _) = run(&cfg, &mut s);
    assert_eq!(out, Outcome::Replied);
    assert_eq!(s.reply.map(|r| r.0), Some(403));
}

#[test]
fn redirects_reply_and_fault_aborts_wait_for_their_delay() {
    let cfg = config();
    let mut s = Fake::request("cart.shop.svc.cluster.local", "/old/x");
    s.properties.insert(
        "connection.uri_san_peer_certificate".into(),
        WEB.to_string(),
    );
    let (out, _) = run(&cfg, &mut s);
    assert_eq!(out, Outcome::Replied);
    let (status, headers, _) = s.reply.clone().expect("reply");
    assert_eq!(status, 301);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "location" && v.ends_with("/new")),
        "{headers:?}"
    );
    let mut s = Fake::request("cart.shop.svc.cluster.local", "/teapot");
    s.properties.insert(
        "connection.uri_san_peer_certificate".into(),
        WEB.to_string(),
    );
    match run(&cfg, &mut s).0 {
        Outcome::Delay(d, Some(local)) => {
            assert_eq!(d, std::time::Duration::from_millis(50));
            assert_eq!(local.status, 418);
        }
        other => panic!("expected a delayed abort, got {other:?}"),
    }
    assert!(s.reply.is_none(), "the abort waits for the delay");
}
