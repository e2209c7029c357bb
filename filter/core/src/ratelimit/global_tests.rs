//! Global rate limit tests: Istio's task EnvoyFilter (filter, CLUSTER patch, virtual host
//! `rate_limits`) read for the waypoint, the service resolved, the descriptors a request sends.

use std::time::Duration;

use super::*;
use crate::error::Diagnostics;
use crate::registry::{Registry, Waypoint};
use crate::resource::parse_manifests;

fn read(yaml: &str) -> (RateLimits, Diagnostics) {
    let (docs, errors) = parse_manifests(yaml, "t.yaml", "default", 0);
    assert!(errors.is_empty(), "{errors:?}");
    let mut diags = Diagnostics::default();
    let w = Waypoint {
        namespace: "default".into(),
        name: "waypoint".into(),
        class: "istio-waypoint".into(),
    };
    let mut rl = compile(&docs, Some(&w), "istio-system", &mut diags);
    let registry = Registry::build(&docs, &mut diags);
    rl.resolve_services(&registry, &mut diags);
    (rl, diags)
}

const RLS_SERVICE: &str = "
apiVersion: v1
kind: Service
metadata: {name: ratelimit, namespace: default}
spec: {clusterIP: 10.96.9.9, ports: [{name: grpc, port: 8081}]}
---
";

/// Istio's global rate-limit task (istio.io docs/tasks/policy-enforcement/rate-limit), attached
/// to the waypoint: the filter before the router, the service's cluster as a CLUSTER patch
/// (STRICT_DNS on the service's hostname), `:path` descriptors on every virtual host.
fn task(cluster_name: &str, with_cluster_patch: bool) -> String {
    let cluster = if with_cluster_patch {
        "
  - applyTo: CLUSTER
    match: {cluster: {service: ratelimit.default.svc.cluster.local}}
    patch:
      operation: ADD
      value:
        name: rate_limit_cluster
        type: STRICT_DNS
        connect_timeout: 10s
        lb_policy: ROUND_ROBIN
        http2_protocol_options: {}
        load_assignment:
          cluster_name: rate_limit_cluster
          endpoints:
          - lb_endpoints:
            - endpoint:
                address:
                  socket_address: {address: ratelimit.default.svc.cluster.local, port_value: 8081}"
    } else {
        ""
    };
    format!(
        r#"{RLS_SERVICE}
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: filter-ratelimit, namespace: default}}
spec:
  targetRefs: [{{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}}]
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: GATEWAY
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {{name: envoy.filters.http.router}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
          domain: ratelimit
          failure_mode_deny: true
          timeout: 10s
          rate_limit_service:
            grpc_service:
              envoy_grpc: {{cluster_name: "{cluster_name}", authority: ratelimit.default.svc.cluster.local}}
            transport_api_version: V3{cluster}
  - applyTo: VIRTUAL_HOST
    match:
      context: GATEWAY
      routeConfiguration:
        vhost:
          name: ""
          route: {{action: ANY}}
    patch:
      operation: MERGE
      value:
        rate_limits:
        - actions:
          - request_headers: {{header_name: ":path", descriptor_key: PATH}}
"#
    )
}

fn view<'a>(headers: &'a [(&'a str, &'a str)]) -> RequestView<'a> {
    RequestView {
        headers,
        remote_address: Some("10.1.0.7".parse().expect("ip")),
        destination_cluster: Some("outbound|80||front.default.svc.cluster.local"),
    }
}

const ANY: Target<'static> = Target {
    host: "front.default.svc.cluster.local",
    port: 80,
    rule: None,
};

#[test]
fn the_task_filter_reads_into_a_global_limit() {
    let (rl, diags) = read(&task(
        "outbound|8081||ratelimit.default.svc.cluster.local",
        false,
    ));
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
    assert!(diags.warnings.is_empty(), "{:?}", diags.warnings);
    assert!(rl.filters.is_empty());
    let [g] = rl.global.as_slice() else {
        panic!("{:?}", rl.global)
    };
    assert_eq!(g.config.domain, "ratelimit");
    assert!(g.config.failure_mode_deny);
    assert_eq!(g.config.timeout, Duration::from_secs(10));
    assert_eq!(g.config.rate_limited_status, 429);
    assert_eq!(g.config.status_on_error, 500);
    assert_eq!(g.config.envoy_json["@type"], GLOBAL_TYPE_URL);
    assert_eq!(g.config.envoy_json["timeout"], "10s");
    // A known service's outbound cluster: the registry's service and port.
    let Some(RlsTarget::Service { index: _, port }) = g.target else {
        panic!("{:?}", g.target)
    };
    assert_eq!(port, 8081);
    let h = [(":path", "/productpage")];
    let calls = rl.global_calls(&ANY, &view(&h));
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].descriptors,
        vec![vec![("PATH".to_string(), "/productpage".to_string())]]
    );
}

#[test]
fn a_cluster_patch_names_the_service() {
    let (rl, diags) = read(&task("rate_limit_cluster", true));
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
    assert!(diags.warnings.is_empty(), "{:?}", diags.warnings);
    assert_eq!(rl.clusters.len(), 1);
    assert_eq!(rl.clusters[0].name, "rate_limit_cluster");
    assert_eq!(rl.clusters[0].envoy_json["type"], "STRICT_DNS");
    // Its STRICT_DNS address is the service's hostname: the registry's service.
    assert!(
        matches!(
            rl.global[0].target,
            Some(RlsTarget::Service { port: 8081, .. })
        ),
        "{:?}",
        rl.global[0].target
    );
    // An IP address stays an endpoint.
    let yaml = task("rate_limit_cluster", true).replace(
        "address: ratelimit.default.svc.cluster.local,",
        "address: 127.0.0.9,",
    );
    let (rl, _) = read(&yaml);
    assert_eq!(
        rl.global[0].target,
        Some(RlsTarget::Endpoints(vec![("127.0.0.9".into(), 8081)]))
    );
}

#[test]
fn timeouts_reach_envoy_in_seconds() {
    let (rl, _) = read(&task("rate_limit_cluster", true).replace("timeout: 10s", "timeout: 250ms"));
    assert_eq!(rl.global[0].config.timeout, Duration::from_millis(250));
    assert_eq!(rl.global[0].config.envoy_json["timeout"], "0.25s");
}

#[test]
fn an_unknown_cluster_is_warned_about() {
    let (rl, diags) = read(&task(
        "outbound|9999||nowhere.default.svc.cluster.local",
        false,
    ));
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
    assert_eq!(rl.global[0].target, None);
    assert!(
        diags
            .warnings
            .iter()
            .any(|w| w.to_string().contains("every call fails")),
        "{:?}",
        diags.warnings
    );
}

#[test]
fn config_errors_name_the_field() {
    for (from, to, field) in [
        ("domain: ratelimit", "domain: ''", "typed_config.domain"),
        (
            "transport_api_version: V3",
            "transport_api_version: V2",
            "transport_api_version",
        ),
        ("timeout: 10s", "timeout: ten", "typed_config.timeout"),
        (
            "failure_mode_deny: true",
            "failure_mode_denied: true",
            "failure_mode_denied",
        ),
    ] {
        let yaml = task("rate_limit_cluster", true).replace(from, to);
        let (rl, diags) = read(&yaml);
        assert!(rl.global.is_empty(), "{from}");
        assert!(
            diags.errors.iter().any(|e| e.to_string().contains(field)),
            "{from}: {:?}",
            diags.errors
        );
    }
}

#[test]
fn actions_compute_descriptors_per_route() {
    let rules = actions::parse_rate_limits(&serde_json::json!([
        {"actions": [{"generic_key": {"descriptor_value": "front"}}, {"destination_cluster": {}}]},
        {"actions": [{"remote_address": {}}]},
        {"actions": [{"header_value_match": {"descriptor_value": "json", "headers": [
            {"name": "content-type", "exact_match": "application/json"}]}}]},
        {"stage": 1, "actions": [{"generic_key": {"descriptor_value": "later"}}]},
    ]))
    .expect("rules");
    let h = [("content-type", "text/plain")];
    assert_eq!(
        descriptors(&rules, 0, &view(&h)),
        vec![
            vec![
                ("generic_key".to_string(), "front".to_string()),
                (
                    "destination_cluster".to_string(),
                    "outbound|80||front.default.svc.cluster.local".to_string()
                )
            ],
            vec![("remote_address".to_string(), "10.1.0.7".to_string())],
        ]
    );
    let h = [("content-type", "application/json")];
    assert_eq!(descriptors(&rules, 0, &view(&h)).len(), 3);
    assert_eq!(
        descriptors(&rules, 1, &view(&h)),
        vec![vec![("generic_key".to_string(), "later".to_string())]]
    );
}

#[test]
fn a_route_without_descriptors_makes_no_call() {
    let (rl, _) = read(&task("rate_limit_cluster", true));
    // No `:path` (the view lacks it): the only rule produces nothing, so no call.
    let calls = rl.global_calls(&ANY, &view(&[]));
    assert!(calls.is_empty());
}
