//! The local rate limit scenario both runtimes run: an EnvoyFilter in Istio's shape attached
//! to the waypoint, two services, and the requests with what each must get back.
//!
//! `other` meets the filter's own bucket (3 tokens, one back every 2 s, x-ratelimit headers);
//! `front` a route-level config (2 tokens) with a descriptor bucket for `x-user: jason`
//! (1 token). Intervals are short and the waits bounded: the scenario takes about 2.5 s.

use std::net::SocketAddr;
use std::time::Duration;

use waypoint_hbone::HboneClient;

use crate::hbone_client::{collect, http1_over, tunnel, Collected};
use crate::manifests::service;

pub const FRONT: &str = "10.96.7.1:80";
pub const OTHER: &str = "10.96.7.2:80";
/// The filter's and the route's stat prefixes.
pub const OTHER_PREFIX: &str = "waypoint_rl";
pub const FRONT_PREFIX: &str = "front_rl";
/// Every bucket's fill interval (one token back per interval).
pub const FILL: Duration = Duration::from_secs(2);

/// The EnvoyFilter as an Istio user writes it for a gateway, attached by targetRefs.
pub const ENVOY_FILTER: &str = r#"
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: local-ratelimit
  namespace: default
spec:
  targetRefs:
  - kind: Gateway
    group: gateway.networking.k8s.io
    name: waypoint
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: GATEWAY
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter:
              name: envoy.filters.http.router
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: waypoint_rl
          token_bucket:
            max_tokens: 3
            tokens_per_fill: 1
            fill_interval: 2s
          filter_enabled:
            runtime_key: local_rate_limit_enabled
            default_value: {numerator: 100, denominator: HUNDRED}
          filter_enforced:
            runtime_key: local_rate_limit_enforced
            default_value: {numerator: 100, denominator: HUNDRED}
          enable_x_ratelimit_headers: DRAFT_VERSION_03
          response_headers_to_add:
          - append_action: OVERWRITE_IF_EXISTS_OR_ADD
            header: {key: x-local-rate-limit, value: "true"}
  - applyTo: HTTP_ROUTE
    match:
      context: GATEWAY
      routeConfiguration:
        vhost:
          name: front.default.svc.cluster.local:80
          route:
            action: ANY
    patch:
      operation: MERGE
      value:
        route:
          rate_limits:
          - actions:
            - request_headers: {header_name: x-user, descriptor_key: user}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            "@type": type.googleapis.com/udpa.type.v1.TypedStruct
            type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            value:
              stat_prefix: front_rl
              token_bucket: {max_tokens: 2, tokens_per_fill: 1, fill_interval: 2s}
              filter_enabled:
                runtime_key: local_rate_limit_enabled
                default_value: {numerator: 100, denominator: HUNDRED}
              filter_enforced:
                runtime_key: local_rate_limit_enforced
                default_value: {numerator: 100, denominator: HUNDRED}
              descriptors:
              - entries: [{key: user, value: jason}]
                token_bucket: {max_tokens: 1, tokens_per_fill: 1, fill_interval: 2s}
              response_headers_to_add:
              - append: false
                header: {key: x-front-limited, value: "true"}
"#;

/// The services (plaintext pods at `front_pod` / `other_pod`) and the EnvoyFilter, without
/// the waypoint Gateway.
pub fn manifests(front_pod: SocketAddr, other_pod: SocketAddr) -> String {
    let svc = |name: &str, vip: &str, pod: SocketAddr| {
        service(name, vip, &pod.ip().to_string(), pod.port(), false)
    };
    [
        svc("front", "10.96.7.1", front_pod),
        svc("other", "10.96.7.2", other_pod),
        format!("---{ENVOY_FILTER}"),
    ]
    .concat()
}

/// GET `path` on `authority` through the waypoint, with `x-user` when given.
pub async fn get(
    client: &HboneClient,
    waypoint: SocketAddr,
    authority: &str,
    path: &str,
    user: Option<&str>,
) -> Collected {
    let s = tunnel(client, waypoint, &[], authority)
        .await
        .unwrap_or_else(|e| panic!("CONNECT {authority}: {e}"));
    let mut send = http1_over(s).await.expect("http/1 handshake");
    let mut req = http::Request::builder().uri(path).header("host", authority);
    if let Some(u) = user {
        req = req.header("x-user", u);
    }
    let req = req.body(crate::echo::empty()).expect("request");
    collect(send.send_request(req).await.expect("send"))
        .await
        .expect("response")
}

fn assert_limited(r: &Collected, what: &str) {
    assert_eq!(r.status, 429, "{what}: {} {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "local_rate_limited", "{what}");
    // Envoy 1.40's local_ratelimit sets no `x-envoy-ratelimited` (its docs say it does; the
    // real filter, run in tests/tests/envoy/ratelimit.rs, does not): neither does the host.
    assert_eq!(
        r.header("x-envoy-ratelimited"),
        None,
        "{what}: {:?}",
        r.headers
    );
}

/// Run the scenario against a waypoint at `waypoint` (host or Envoy): limits hit, the route's
/// config and descriptors per route, the 429 headers, refill after the interval.
/// `front_pod`: front's pod, addressed directly (the filter's limits, not front's route's).
pub async fn run(client: &HboneClient, waypoint: SocketAddr, front_pod: SocketAddr) {
    // The filter's bucket: 3 pass with x-ratelimit headers counting down, the 4th is limited.
    for left in ["2", "1", "0"] {
        let r = get(client, waypoint, OTHER, "/a", None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"), "{:?}", r.headers);
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some(left),
            "{:?}",
            r.headers
        );
    }
    let r = get(client, waypoint, OTHER, "/a", None).await;
    assert_limited(&r, "other, 4th");
    assert_eq!(r.header("x-local-rate-limit"), Some("true"));
    assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    let reset: u64 = r
        .header("x-ratelimit-reset")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("x-ratelimit-reset: {:?}", r.headers));
    assert!(reset <= FILL.as_secs(), "reset {reset}");

    // front: the route's own config replaces the filter's (its header, no x-ratelimit-*);
    // jason's descriptor bucket holds one token.
    let r = get(client, waypoint, FRONT, "/b", Some("jason")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ratelimit-limit"), None);
    let r = get(client, waypoint, FRONT, "/b", Some("jason")).await;
    assert_limited(&r, "front, jason's 2nd");
    assert_eq!(r.header("x-front-limited"), Some("true"));
    assert_eq!(r.header("x-local-rate-limit"), None);
    // Addressed to front's pod: no service route (Istio's direct-http chain), so not the
    // route's config but the filter's own, whose bucket `other` emptied above.
    let pod = front_pod.to_string();
    let r = get(client, waypoint, &pod, "/b", Some("jason")).await;
    assert_limited(&r, "front's pod, the filter's bucket");
    assert_eq!(r.header("x-front-limited"), None);
    assert_eq!(r.header("x-local-rate-limit"), Some("true"));
    // The route's default bucket (2) lost one token to jason's first request.
    let r = get(client, waypoint, FRONT, "/b", Some("ann")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(client, waypoint, FRONT, "/b", None).await;
    assert_limited(&r, "front, default bucket empty");

    // One token back after the fill interval, and only one.
    tokio::time::sleep(FILL + Duration::from_millis(150)).await;
    let r = get(client, waypoint, OTHER, "/a", None).await;
    assert_eq!(r.status, 200, "refilled: {}", r.text());
    let r = get(client, waypoint, OTHER, "/a", None).await;
    assert_limited(&r, "other, after one refill");
}

/// The value of the Prometheus sample `name{labels}` whose labels contain every `want`.
pub fn sample(text: &str, name: &str, want: &[&str]) -> Option<u64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| want.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .reduce(|a, b| a + b)
}
