//! The per-rule rate limit scenario both runtimes run: an EnvoyFilter HTTP_ROUTE patch naming
//! one VirtualService rule (`vhost.route.name: limited`) with a local limit (3 tokens) and
//! `rate_limits` for the global filter (our service allows 2); the other rule is not limited.

use std::net::SocketAddr;

use waypoint_hbone::HboneClient;

use crate::global_ratelimit::envoy_filter_header;
use crate::manifests::service;
use crate::ratelimit::get;
use crate::rls_server::Rls;

pub const FRONT: &str = "10.96.9.1:80";
/// Requests per descriptor our service allows (the local bucket holds one more).
pub const LIMIT: u32 = 2;

/// The VirtualService with the two named rules and the EnvoyFilter (service at `rls`).
pub fn manifests(front_pod: SocketAddr, rls: SocketAddr) -> String {
    let filters = envoy_filter_header("rule-ratelimit", rls);
    format!(
        r#"{}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: front, namespace: default}}
spec:
  hosts: [front.default.svc.cluster.local]
  http:
  - name: limited
    match: [{{uri: {{prefix: /limited}}}}]
    route: [{{destination: {{host: front.default.svc.cluster.local}}}}]
  - name: free
    route: [{{destination: {{host: front.default.svc.cluster.local}}}}]
---{filters}
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: all
  - applyTo: HTTP_ROUTE
    match:
      routeConfiguration:
        vhost:
          name: front.default.svc.cluster.local:80
          route: {{name: limited}}
    patch:
      operation: MERGE
      value:
        route:
          rate_limits:
          - actions: [{{generic_key: {{descriptor_value: limited-rule}}}}]
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            stat_prefix: limited
            token_bucket: {{max_tokens: 3, tokens_per_fill: 1, fill_interval: 60s}}
            filter_enabled: {{default_value: {{numerator: 100}}}}
            filter_enforced: {{default_value: {{numerator: 100}}}}
"#,
        service(
            "front",
            "10.96.9.1",
            &front_pod.ip().to_string(),
            front_pod.port(),
            false
        ),
    )
}

/// Run the cases against a waypoint at `waypoint` (host or Envoy) and the service `rls`.
pub async fn run(client: &HboneClient, waypoint: SocketAddr, rls: &Rls) {
    // The free rule: no limit, no call.
    for _ in 0..4 {
        let r = get(client, waypoint, FRONT, "/free", None).await;
        assert_eq!(r.status, 200, "{} {:?}", r.text(), r.headers);
    }
    assert!(rls.calls().is_empty(), "{:?}", rls.calls());
    // The limited rule: the service allows 2, then says over (the local bucket has a 3rd
    // token); the 4th meets the empty local bucket first.
    for _ in 0..2 {
        let r = get(client, waypoint, FRONT, "/limited", None).await;
        assert_eq!(r.status, 200, "{} {:?}", r.text(), r.headers);
        assert!(
            !r.text().contains("x-waypoint-route"),
            "the rule header stays in the waypoint: {}",
            r.text()
        );
    }
    let r = get(client, waypoint, FRONT, "/limited", None).await;
    assert_eq!(r.status, 429, "{} {:?}", r.text(), r.headers);
    assert_eq!(r.header("x-envoy-ratelimited"), Some("true"), "global");
    let r = get(client, waypoint, FRONT, "/limited", None).await;
    assert_eq!(r.status, 429, "{} {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "local_rate_limited");
    assert_eq!(r.header("x-envoy-ratelimited"), None, "local");
    let want = (
        "waypoint".to_string(),
        vec![vec![(
            "generic_key".to_string(),
            "limited-rule".to_string(),
        )]],
    );
    assert_eq!(rls.calls(), vec![want; 3]);
    // The free rule is still not limited.
    let r = get(client, waypoint, FRONT, "/free", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
}
