//! The module steers a rule an EnvoyFilter rate limit patch names (`vhost.route.name`) to its
//! generated route: `x-waypoint-route` set for that rule only, a client's never kept.

use std::sync::Arc;

use super::MINI;
use crate::config::FilterConfig;
use crate::fake::FakeStream;
use crate::filter::HttpFilter;
use crate::router::ROUTE_HEADER;
use crate::stream::{Attribute, HeaderKind, StreamHandle};

const NAMED: &str = r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  http:
  - name: limited
    match: [{uri: {prefix: /limited}}]
    route: [{destination: {host: reviews.bookinfo.svc.cluster.local}}]
  - name: free
    route: [{destination: {host: reviews.bookinfo.svc.cluster.local}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: rule, namespace: bookinfo}
spec:
  targetRefs: [{kind: Gateway, name: waypoint}]
  configPatches:
  - applyTo: HTTP_ROUTE
    match: {routeConfiguration: {vhost: {name: "reviews.bookinfo.svc.cluster.local:9080", route: {name: limited}}}}
    patch:
      operation: MERGE
      value: {route: {rate_limits: [{actions: [{generic_key: {descriptor_value: x}}]}]}}
"#;

fn config() -> Arc<FilterConfig> {
    let yaml = format!("{MINI}{NAMED}");
    let spec = serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": yaml});
    Arc::new(FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config"))
}

fn send(path: &str) -> FakeStream {
    let mut f = HttpFilter::new(config());
    let mut s = FakeStream::request("GET", "reviews:9080", path, &[(ROUTE_HEADER, "forged")])
        .with_peer(Some("spiffe://cluster.local/ns/bookinfo/sa/sleep"), None)
        .with_attribute(Attribute::DestinationAddress, "10.96.0.11:9080");
    f.on_request_headers(&mut s, true);
    assert!(s.reply.is_none(), "forwarded: {:?}", s.reply);
    s
}

#[test]
fn the_named_rule_gets_its_route_header_and_a_rematch() {
    let s = send("/limited/x");
    assert_eq!(
        s.header_values(HeaderKind::Request, ROUTE_HEADER),
        ["limited"]
    );
    assert!(s.route_cache_cleared >= 1);
}

#[test]
fn other_rules_carry_no_route_header() {
    let s = send("/other");
    assert!(
        s.header_values(HeaderKind::Request, ROUTE_HEADER)
            .is_empty(),
        "a client's header is removed"
    );
}
