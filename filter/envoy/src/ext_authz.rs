//! CUSTOM AuthorizationPolicy on Envoy: the module asks no provider itself; it enables the
//! native `ext_authz` filter of that provider (after the module) through dynamic metadata.

use crate::config::FilterConfig;
use crate::stream::StreamHandle;

/// Dynamic-metadata namespace the provider's `ext_authz` filter keys its
/// `filter_enabled_metadata` on (the bootstrap generator writes the matching filters).
pub const METADATA_NS: &str = "waypoint.ext_authz";
/// Key under [`METADATA_NS`] holding the provider name.
pub const METADATA_KEY: &str = "provider";
/// Key under [`METADATA_NS`] set to `deny` when DENY/ALLOW denied the request but the provider
/// is asked first: the RBAC guard after the provider filters denies what the provider allows.
pub const THEN_KEY: &str = "then";

/// Enable `provider`'s ext_authz filter for this request. Written whatever the
/// `filter_config.metadata` level, since enforcement depends on it. Returns false when Envoy
/// has no filter for that provider (not in `ext_authz_filters`): the caller must deny, as
/// Envoy does for an unusable CUSTOM provider.
pub fn enable<S: StreamHandle>(s: &mut S, config: &FilterConfig, provider: &str) -> bool {
    if !config.ext_authz_filters.iter().any(|p| p == provider) {
        return false;
    }
    s.set_metadata(METADATA_NS, METADATA_KEY, provider);
    true
}

/// Ask `provider` first, then deny: enables its filter and marks the request for the RBAC
/// guard. False (the caller denies at once) when Envoy has no filter for the provider.
pub fn deny_after_provider<S: StreamHandle>(
    s: &mut S,
    config: &FilterConfig,
    provider: &str,
) -> bool {
    if !config.ext_authz_filters.iter().any(|p| p == provider) {
        return false;
    }
    s.set_metadata_batch(METADATA_NS, &[(METADATA_KEY, provider), (THEN_KEY, "deny")]);
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::fake::FakeStream;
    use crate::filter::HttpFilter;
    use crate::stream::HeadersStatus;

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
        let cfg =
            FilterConfig::from_bytes("waypoint", spec.to_string().as_bytes()).expect("config");
        let mut s = FakeStream::request("GET", "echo", path, &[]);
        s.filter_state.insert(
            crate::config::DEFAULT_DESTINATION_KEY.to_string(),
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
            s.header(
                crate::stream::HeaderKind::Request,
                crate::router::CLUSTER_HEADER
            )
            .is_none(),
            "a denied request gets no cluster"
        );
        // No filter for the provider: denied at once.
        let (st, s) = run(&[], "/custom/deny");
        assert_eq!(st, HeadersStatus::StopIteration);
        assert_eq!(s.reply.as_ref().map(|r| r.status), Some(403));
    }
}
