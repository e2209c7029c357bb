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

        ratelimit::run(&client, wp.running.hbone_addr).await;

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
        assert_eq!(limited("other"), Some(2), "{text}");
        assert_eq!(limited("front"), Some(2), "{text}");
        let counter = |name: &str, prefix: &str| {
            sample(
                &text,
                &format!("envoy_http_local_rate_limit_{name}"),
                &[&format!("envoy_local_http_ratelimit_prefix=\"{prefix}\"")],
            )
        };
        // other: 3 + 1 allowed, 2 limited; front: 2 allowed, 2 limited.
        for (prefix, ok) in [(OTHER_PREFIX, 4), (FRONT_PREFIX, 2)] {
            assert_eq!(counter("enabled", prefix), Some(ok + 2), "{prefix}: {text}");
            assert_eq!(counter("ok", prefix), Some(ok), "{prefix}");
            assert_eq!(counter("rate_limited", prefix), Some(2), "{prefix}");
            assert_eq!(counter("enforced", prefix), Some(2), "{prefix}");
        }
    })
    .await
    .expect("test timed out");
}
