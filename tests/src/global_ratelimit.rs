//! The global rate limit scenario both runtimes run: Istio's task EnvoyFilter (the filter
//! before the router, the service's cluster as a CLUSTER patch, `rate_limits` per virtual host
//! and per route) against our small service (`rls_server`, 2 requests per descriptor).
//!
//! `other` sends `generic_key` + `destination_cluster` (the virtual hosts' rule), `front` its
//! route's `x-user` rule, `strict` a stage-1 rule only the second filter (`failure_mode_deny`)
//! sends. Then the service fails, then it is slow: allowed, except by the strict filter (500).

use std::net::SocketAddr;

use waypoint_hbone::HboneClient;

use crate::hbone_client::Collected;
use crate::manifests::service;
use crate::ratelimit::get;
use crate::rls_server::{Mode, Rls, OVER_HEADER};

pub const FRONT: &str = "10.96.8.1:80";
pub const OTHER: &str = "10.96.8.2:80";
pub const STRICT: &str = "10.96.8.3:80";
/// Envoy's names of the three services' clusters (the counters' `envoy_cluster_name`).
pub const FRONT_CLUSTER: &str = "outbound|80||front.default.svc.cluster.local";
pub const OTHER_CLUSTER: &str = "outbound|80||other.default.svc.cluster.local";
pub const STRICT_CLUSTER: &str = "outbound|80||strict.default.svc.cluster.local";
/// Requests per descriptor the service allows.
pub const LIMIT: u32 = 2;

/// One global filter patch: `domain`, `stage`, `failure_mode_deny`, its service's cluster.
fn filter(domain: &str, stage: u32, deny: bool) -> String {
    format!(
        r#"
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
          domain: {domain}
          stage: {stage}
          failure_mode_deny: {deny}
          timeout: 500ms
          enable_x_ratelimit_headers: DRAFT_VERSION_03
          rate_limit_service:
            grpc_service:
              envoy_grpc: {{cluster_name: rate_limit_cluster}}
            transport_api_version: V3"#
    )
}

/// The start of an EnvoyFilter `name` attached by targetRefs: the global filter (domain
/// `waypoint`, `failure_mode_deny: false`) and the CLUSTER patch (as Istio's task writes it)
/// for the service at `rls`; more patches may follow.
pub fn envoy_filter_header(name: &str, rls: SocketAddr) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: {name}
  namespace: default
spec:
  targetRefs:
  - kind: Gateway
    group: gateway.networking.k8s.io
    name: waypoint
  configPatches:{}
  - applyTo: CLUSTER
    match: {{cluster: {{service: ratelimit.default.svc.cluster.local}}}}
    patch:
      operation: ADD
      value:
        name: rate_limit_cluster
        type: STRICT_DNS
        connect_timeout: 1s
        lb_policy: ROUND_ROBIN
        http2_protocol_options: {{}}
        load_assignment:
          cluster_name: rate_limit_cluster
          endpoints:
          - lb_endpoints:
            - endpoint:
                address:
                  socket_address: {{address: "{}", port_value: {}}}"#,
        filter("waypoint", 0, false),
        rls.ip(),
        rls.port()
    )
}

/// The EnvoyFilter as Istio's global rate limit task writes it, attached by targetRefs, the
/// service at `rls`, with a second (strict) filter and the scenario's route patches.
pub fn envoy_filter(rls: SocketAddr) -> String {
    format!(
        r#"{}{}
  - applyTo: VIRTUAL_HOST
    match:
      context: GATEWAY
      routeConfiguration: {{vhost: {{name: "", route: {{action: ANY}}}}}}
    patch:
      operation: MERGE
      value:
        rate_limits:
        - actions:
          - generic_key: {{descriptor_value: all}}
          - destination_cluster: {{}}
  - applyTo: HTTP_ROUTE
    match:
      context: GATEWAY
      routeConfiguration: {{vhost: {{name: "front.default.svc.cluster.local:80", route: {{action: ANY}}}}}}
    patch:
      operation: MERGE
      value:
        route:
          rate_limits:
          - actions:
            - request_headers: {{header_name: x-user, descriptor_key: user}}
  - applyTo: VIRTUAL_HOST
    match:
      context: GATEWAY
      routeConfiguration: {{vhost: {{name: "strict.default.svc.cluster.local:80"}}}}
    patch:
      operation: MERGE
      value:
        rate_limits:
        - stage: 1
          actions:
          - generic_key: {{descriptor_value: strict}}
"#,
        envoy_filter_header("global-ratelimit", rls),
        filter("strict", 1, true),
    )
}

/// The services (plaintext pods) and the EnvoyFilter, without the waypoint Gateway.
pub fn manifests(pods: [SocketAddr; 3], rls: SocketAddr) -> String {
    let svc = |name: &str, vip: &str, pod: SocketAddr| {
        service(name, vip, &pod.ip().to_string(), pod.port(), false)
    };
    [
        svc("front", "10.96.8.1", pods[0]),
        svc("other", "10.96.8.2", pods[1]),
        svc("strict", "10.96.8.3", pods[2]),
        format!("---{}", envoy_filter(rls)),
    ]
    .concat()
}

fn entries(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn assert_limited(r: &Collected, what: &str) {
    assert_eq!(r.status, 429, "{what}: {} {:?}", r.text(), r.headers);
    assert_eq!(r.header("x-envoy-ratelimited"), Some("true"), "{what}");
    assert_eq!(r.header(OVER_HEADER), Some("over-limit"), "{what}");
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"), "{what}");
}

/// Run the cases against a waypoint at `waypoint` (host or Envoy) and the service `rls`.
pub async fn run(client: &HboneClient, waypoint: SocketAddr, rls: &Rls) {
    // other: the virtual hosts' rule; 2 allowed with x-ratelimit-* counting down, then 429.
    for left in ["1", "0"] {
        let r = get(client, waypoint, OTHER, "/a", None).await;
        assert_eq!(r.status, 200, "{} {:?}", r.text(), r.headers);
        assert_eq!(
            r.header("x-ratelimit-limit"),
            Some("2, 2;w=60"),
            "{:?}",
            r.headers
        );
        assert_eq!(r.header("x-ratelimit-remaining"), Some(left));
        assert_eq!(r.header("x-ratelimit-reset"), Some("60"));
        assert_eq!(r.header(OVER_HEADER), None);
    }
    let r = get(client, waypoint, OTHER, "/a", None).await;
    assert_limited(&r, "other, 3rd");
    let want = (
        "waypoint".to_string(),
        vec![entries(&[
            ("generic_key", "all"),
            ("destination_cluster", OTHER_CLUSTER),
        ])],
    );
    assert_eq!(rls.calls(), vec![want.clone(); 3], "other's descriptors");

    // front: its route's rule (one counter per user); no x-user, no descriptor, no call.
    for _ in 0..2 {
        let r = get(client, waypoint, FRONT, "/b", Some("ann")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = get(client, waypoint, FRONT, "/b", Some("ann")).await;
    assert_limited(&r, "front, ann's 3rd");
    let r = get(client, waypoint, FRONT, "/b", Some("bob")).await;
    assert_eq!(r.status, 200, "bob: {}", r.text());
    let before = rls.calls().len();
    let r = get(client, waypoint, FRONT, "/b", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ratelimit-limit"), None);
    assert_eq!(
        rls.calls().len(),
        before,
        "a request without x-user is not sent"
    );
    let calls = rls.calls();
    assert_eq!(
        calls[3],
        ("waypoint".to_string(), vec![entries(&[("user", "ann")])])
    );
    assert_eq!(
        calls[6],
        ("waypoint".to_string(), vec![entries(&[("user", "bob")])])
    );

    // strict: only the stage-1 filter asks, in its own domain.
    let r = get(client, waypoint, STRICT, "/c", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        rls.calls().last(),
        Some(&(
            "strict".to_string(),
            vec![entries(&[("generic_key", "strict")])]
        ))
    );

    // The service fails, then is slower than the timeout: allowed (other is over its limit,
    // and goes through), except where failure_mode_deny (500).
    for mode in [Mode::Fail, Mode::Slow] {
        rls.set_mode(mode);
        let r = get(client, waypoint, OTHER, "/a", None).await;
        assert_eq!(r.status, 200, "{mode:?}: {} {:?}", r.text(), r.headers);
        assert_eq!(r.header("x-envoy-ratelimited"), None);
        let r = get(client, waypoint, STRICT, "/c", None).await;
        assert_eq!(r.status, 500, "{mode:?}: {} {:?}", r.text(), r.headers);
        assert_eq!(r.header("x-envoy-ratelimited"), None);
    }
    rls.set_mode(Mode::Normal);
}

/// The value of Envoy's counter `cluster.<cluster>.ratelimit.<name>` in Prometheus `text`
/// (absent: 0). Envoy's tag extractor stops the cluster name at its first dot; the rest goes
/// into the metric name.
pub fn cluster_counter(text: &str, cluster: &str, name: &str) -> u64 {
    let (tag, rest) = cluster.split_once('.').unwrap_or((cluster, ""));
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!("{}_", rest.replace(['.', '-'], "_"))
    };
    crate::ratelimit::sample(
        text,
        &format!("envoy_cluster_{rest}ratelimit_{name}"),
        &[&format!("envoy_cluster_name=\"{tag}\"")],
    )
    .unwrap_or(0)
}

/// Counters the scenario leaves, per cluster: (ok, over_limit, error, failure_mode_allowed).
pub const COUNTS: [(&str, [u64; 4]); 3] = [
    (OTHER_CLUSTER, [2, 1, 2, 2]),
    (FRONT_CLUSTER, [3, 1, 0, 0]),
    (STRICT_CLUSTER, [1, 0, 2, 0]),
];
/// Their names, in [`COUNTS`]' order.
pub const COUNTER_NAMES: [&str; 4] = ["ok", "over_limit", "error", "failure_mode_allowed"];
