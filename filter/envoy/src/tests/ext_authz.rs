//! CUSTOM AuthorizationPolicy through the filter: a matched provider's `ext_authz` filter is
//! enabled by metadata, a provider without one fails closed, a deny waits for the provider.

use std::sync::Arc;

use crate::config::{FilterConfig, DEFAULT_DESTINATION_KEY};
use crate::ext_authz::{METADATA_KEY, METADATA_NS, THEN_KEY};
use crate::fake::FakeStream;
use crate::filter::HttpFilter;
use crate::router::CLUSTER_HEADER;
use crate::stream::{HeaderKind, HeadersStatus, StreamHandle};

/// A waypoint, a bound service, the mesh ConfigMap with provider `ext` and a CUSTOM
/// policy on `/custom*`.
const CONFIG: &str = concat!(
    waypoint_core::waypoint_gateway_yaml!("default"),
    r#"apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default, labels: {istio.io/use-waypoint: waypoint}}
spec: {clusterIP: 10.96.0.11, ports: [{port: 80, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: authz, namespace: default}
spec: {clusterIP: 10.96.0.12, ports: [{port: 8000, name: http}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    extensionProviders:
    - name: ext
      envoyExtAuthzHttp: {service: authz.default.svc.cluster.local, port: 8000}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: custom, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: echo}]
  action: CUSTOM
  provider: {name: ext}
  rules: [{to: [{operation: {paths: ["/custom*"]}}]}]
---
{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
 "metadata": {"name": "deny", "namespace": "default"},
 "spec": {"targetRefs": [{"kind": "Service", "group": "", "name": "echo"}], "action": "DENY",
          "rules": [{"to": [{"operation": {"paths": ["/custom/deny"]}}]}]}}
"#
);

fn run(filters: &[&str], path: &str) -> (HeadersStatus, FakeStream) {
    let spec = serde_json::json!({
        "waypoint": "default/waypoint", "config_inline": CONFIG,
        "metadata": "none", "ext_authz_filters": filters});
    let cfg = FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config");
    let mut s = FakeStream::request("GET", "echo", path, &[]);
    s.filter_state.insert(
        DEFAULT_DESTINATION_KEY.to_string(),
        "10.96.0.11:80".to_string(),
    );
    let st = HttpFilter::new(Arc::new(cfg)).on_request_headers(&mut s, true);
    (st, s)
}

fn provider_meta(s: &FakeStream) -> Option<&str> {
    s.metadata
        .get(&(METADATA_NS.to_string(), METADATA_KEY.to_string()))
        .map(String::as_str)
}

#[test]
fn custom_match_enables_the_provider_filter_even_without_metadata() {
    let (st, s) = run(&["ext"], "/custom/a");
    assert_eq!(st, HeadersStatus::Continue);
    assert!(s.reply.is_none(), "{:?}", s.reply);
    assert_eq!(provider_meta(&s), Some("ext"));
}

#[test]
fn no_match_sets_nothing() {
    let (st, s) = run(&["ext"], "/other");
    assert_eq!(st, HeadersStatus::Continue);
    assert_eq!(provider_meta(&s), None);
}

#[test]
fn provider_without_a_filter_fails_closed() {
    let (_, s) = run(&[], "/custom/a");
    assert_eq!(s.reply.as_ref().map(|r| r.status), Some(403));
    assert_eq!(provider_meta(&s), None);
}

#[test]
fn a_deny_waits_for_the_provider_then_the_guard() {
    let (st, s) = run(&["ext"], "/custom/deny");
    assert_eq!(st, HeadersStatus::Continue);
    assert!(s.reply.is_none(), "{:?}", s.reply);
    assert_eq!(provider_meta(&s), Some("ext"));
    assert_eq!(
        s.metadata
            .get(&(METADATA_NS.to_string(), THEN_KEY.to_string()))
            .map(String::as_str),
        Some("deny")
    );
    assert!(
        s.header(HeaderKind::Request, CLUSTER_HEADER).is_none(),
        "a denied request gets no cluster"
    );
    // No filter for the provider: denied at once.
    let (st, s) = run(&[], "/custom/deny");
    assert_eq!(st, HeadersStatus::StopIteration);
    assert_eq!(s.reply.as_ref().map(|r| r.status), Some(403));
}
