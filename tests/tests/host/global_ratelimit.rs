//! Global rate limiting in the host from Istio's task EnvoyFilter: the shared cases
//! (`waypoint_tests::global_ratelimit`) against our rate limit service, then the limited and
//! failed requests in `istio_requests_total` (flags `RL`, `RLSE`) and in Envoy's counters.

use std::time::Duration;

use waypoint_hbone::HboneClient;
use waypoint_tests::echo::http_echo;
use waypoint_tests::global_ratelimit::{self, cluster_counter, COUNTER_NAMES, COUNTS, LIMIT};
use waypoint_tests::pki::Pki;
use waypoint_tests::ratelimit::sample;
use waypoint_tests::rls_server;
use waypoint_tests::waypoint::{admin_get, TestWaypoint};

const TEST_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_rate_limits_ask_the_service() {
    tokio::time::timeout(TEST_LIMIT, async {
        let pki = Pki::new("cluster.local");
        let rls = rls_server::start("127.0.0.81:0".parse().expect("addr"), LIMIT).await;
        let mut pods = Vec::new();
        for (ip, name) in [
            ("127.0.0.82", "front"),
            ("127.0.0.83", "other"),
            ("127.0.0.84", "strict"),
        ] {
            pods.push(http_echo(format!("{ip}:0").parse().expect("addr"), name).await);
        }
        let yaml =
            global_ratelimit::manifests([pods[0].addr, pods[1].addr, pods[2].addr], rls.addr);
        let wp = TestWaypoint::start(&pki, &yaml, 15008).await;
        let current = wp.running.config.current();
        let state = current
            .as_ref()
            .unwrap_or_else(|| panic!("config rejected: {:?}", wp.running.config.last_errors()));
        assert!(state.warnings.is_empty(), "{:?}", state.warnings);
        let client = HboneClient::new(pki.store("default", "sleep"));

        global_ratelimit::run(&client, wp.running.hbone_addr, &rls).await;

        let stats = wp.running.stats_addr.expect("stats listener");
        let (code, text) = admin_get(stats, "/stats/prometheus").await.expect("stats");
        assert_eq!(code, 200);
        let requests = |code: &str, flag: &str, svc: &str| {
            sample(
                &text,
                "istio_requests_total",
                &[
                    &format!("response_code=\"{code}\""),
                    &format!("response_flags=\"{flag}\""),
                    &format!("destination_service_name=\"{svc}\""),
                ],
            )
        };
        assert_eq!(requests("429", "RL", "other"), Some(1), "{text}");
        assert_eq!(requests("429", "RL", "front"), Some(1));
        assert_eq!(requests("500", "RLSE", "strict"), Some(2));
        for (cluster, want) in COUNTS {
            let got = COUNTER_NAMES.map(|n| cluster_counter(&text, cluster, n));
            assert_eq!(
                got, want,
                "{cluster}: ok, over_limit, error, failure_mode_allowed"
            );
        }
    })
    .await
    .expect("test timed out");
}
