//! Local rate limiting in the host from an EnvoyFilter in Istio's shape: the shared scenario
//! (`waypoint_tests::ratelimit`), then the 429s in `istio_requests_total` (flag `RL`) and in
//! Envoy's counters.

use std::time::Duration;

use waypoint_hbone::HboneClient;
use waypoint_tests::echo::http_echo;
use waypoint_tests::pki::Pki;
use waypoint_tests::ratelimit::{self, sample, FRONT_PREFIX, OTHER_PREFIX};
use waypoint_tests::waypoint::{admin_get, TestWaypoint};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limits_hit_refill_and_count() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let front = http_echo("127.0.0.71:0".parse().expect("addr"), "front").await;
        let other = http_echo("127.0.0.72:0".parse().expect("addr"), "other").await;
        let yaml = ratelimit::manifests(front.addr, other.addr);
        let wp = TestWaypoint::start(&pki, &yaml, 15008).await;
        let current = wp.running.config.current();
        let state = current
            .as_ref()
            .unwrap_or_else(|| panic!("config rejected: {:?}", wp.running.config.last_errors()));
        assert!(state.warnings.is_empty(), "{:?}", state.warnings);
        let client = HboneClient::new(pki.store("default", "sleep"));

        ratelimit::run(&client, wp.running.hbone_addr, front.addr).await;

        let stats = wp.running.stats_addr.expect("stats listener");
        let (code, text) = admin_get(stats, "/stats/prometheus").await.expect("stats");
        assert_eq!(code, 200);
        let limited = |svc: &str| {
            sample(
                &text,
                "istio_requests_total",
                &[
                    "response_code=\"429\"",
                    "response_flags=\"RL\"",
                    &format!("destination_service_name=\"{svc}\""),
                ],
            )
        };
        // The request to front's pod has no service (no service route): neither's.
        assert_eq!(limited("other"), Some(2), "{text}");
        assert_eq!(limited("front"), Some(2), "{text}");
        let counter = |name: &str, prefix: &str| {
            sample(
                &text,
                &format!("envoy_http_local_rate_limit_{name}"),
                &[&format!("envoy_local_http_ratelimit_prefix=\"{prefix}\"")],
            )
        };
        // The filter's (other's and front's pod's): 3 + 1 allowed, 3 limited; front's route:
        // 2 allowed, 2 limited.
        for (prefix, ok, limited) in [(OTHER_PREFIX, 4, 3), (FRONT_PREFIX, 2, 2)] {
            assert_eq!(
                counter("enabled", prefix),
                Some(ok + limited),
                "{prefix}: {text}"
            );
            assert_eq!(counter("ok", prefix), Some(ok), "{prefix}");
            assert_eq!(counter("rate_limited", prefix), Some(limited), "{prefix}");
            assert_eq!(counter("enforced", prefix), Some(limited), "{prefix}");
        }
    })
    .await
    .expect("test timed out");
}

/// Host-only reach of the same EnvoyFilter shape: a limit on one named VirtualService route
/// (`vhost.route.name`), a limit enabled but not enforced (the request goes on with the
/// config's request headers), and buckets per tunnel
/// (`local_rate_limit_per_downstream_connection`).
const PER_ROUTE: &str = r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front, namespace: default}
spec:
  hosts: [front.default.svc.cluster.local]
  http:
  - name: limited
    match: [{uri: {prefix: /limited}}]
    route: [{destination: {host: front.default.svc.cluster.local}}]
  - name: free
    route: [{destination: {host: front.default.svc.cluster.local}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: per-route, namespace: default}
spec:
  workloadSelector:
    labels: {gateway.networking.k8s.io/gateway-name: waypoint}
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: observe
          token_bucket: {max_tokens: 1, tokens_per_fill: 1, fill_interval: 60s}
          filter_enabled: {default_value: {numerator: 100}}
          request_headers_to_add_when_not_enforced:
          - header: {key: x-would-be-limited, value: "yes"}
  - applyTo: HTTP_ROUTE
    match:
      routeConfiguration:
        vhost:
          name: front.default.svc.cluster.local:80
          route: {name: limited}
    patch:
      operation: MERGE
      value:
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            stat_prefix: limited
            token_bucket: {max_tokens: 1, tokens_per_fill: 1, fill_interval: 60s}
            filter_enabled: {default_value: {numerator: 100}}
            filter_enforced: {default_value: {numerator: 100}}
            local_rate_limit_per_downstream_connection: true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_names_observe_only_and_per_tunnel_buckets() {
    use waypoint_tests::hbone_client::{collect, http1_over, tunnel};
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let front = http_echo("127.0.0.74:0".parse().expect("addr"), "front").await;
        let yaml = [
            waypoint_tests::manifests::plain_service(
                "front",
                "10.96.7.4",
                "127.0.0.74",
                front.addr.port(),
            ),
            PER_ROUTE.to_string(),
        ]
        .concat();
        let wp = TestWaypoint::start(&pki, &yaml, 15008).await;
        let current = wp.running.config.current();
        let state = current
            .as_ref()
            .unwrap_or_else(|| panic!("config rejected: {:?}", wp.running.config.last_errors()));
        assert!(state.warnings.is_empty(), "{:?}", state.warnings);
        let client = HboneClient::new(pki.store("default", "sleep"));
        let addr = wp.running.hbone_addr;
        let vip = "10.96.7.4:80";

        // The `free` route meets the filter's config: limited after one token, not enforced:
        // forwarded, with the header the config adds.
        let r = ratelimit::get(&client, addr, vip, "/free", None).await;
        assert_eq!(r.status, 200);
        assert!(!r.text().contains("x-would-be-limited"), "{}", r.text());
        let r = ratelimit::get(&client, addr, vip, "/free", None).await;
        assert_eq!(r.status, 200);
        assert!(r.text().contains("x-would-be-limited=yes"), "{}", r.text());

        // The `limited` route: one token per tunnel.
        let s = tunnel(&client, addr, &[], vip).await.expect("tunnel");
        let mut send = http1_over(s).await.expect("h1");
        let mut statuses = Vec::new();
        for _ in 0..2 {
            let req = http::Request::builder()
                .uri("/limited")
                .header("host", vip)
                .body(waypoint_tests::echo::empty())
                .expect("req");
            send.ready().await.expect("connection ready");
            let r = collect(send.send_request(req).await.expect("send"))
                .await
                .expect("collect");
            statuses.push(r.status);
        }
        assert_eq!(statuses, [200, 429]);
        // A new tunnel has a full bucket of its own.
        let r = ratelimit::get(&client, addr, vip, "/limited", None).await;
        assert_eq!(r.status, 200, "{}", r.text());

        let (_, text) = admin_get(wp.running.stats_addr.expect("stats"), "/stats/prometheus")
            .await
            .expect("stats");
        let counter = |name: &str, prefix: &str| {
            sample(
                &text,
                &format!("envoy_http_local_rate_limit_{name}"),
                &[&format!("envoy_local_http_ratelimit_prefix=\"{prefix}\"")],
            )
        };
        assert_eq!(counter("rate_limited", "observe"), Some(1), "{text}");
        assert_eq!(counter("enforced", "observe"), Some(0));
        assert_eq!(counter("rate_limited", "limited"), Some(1));
        assert_eq!(counter("enforced", "limited"), Some(1));
    })
    .await
    .expect("test timed out");
}
