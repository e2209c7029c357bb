//! Global rate limiting on real Envoy 1.40: the bootstrap generated from Istio's task
//! EnvoyFilter validates, and the shared cases (`waypoint_tests::global_ratelimit`) give the
//! host's answers, counted in Envoy's own `cluster.<name>.ratelimit.*` stats.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use waypoint_tests::echo::http_echo;
use waypoint_tests::envoy_generated::{client, GeneratedWaypoint};
use waypoint_tests::global_ratelimit::{self, cluster_counter, COUNTER_NAMES, COUNTS, LIMIT};
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::ratelimit::sample;
use waypoint_tests::rls_server;
use waypoint_tests::waypoint::admin_get;

const TEST_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_global_rate_limits_match_the_host() {
    tokio::time::timeout(TEST_LIMIT, async {
        let pki = Pki::new("cluster.local");
        let at = |last: u8| SocketAddr::new(IpAddr::from([127, 74, 0, last]), 0);
        let rls = rls_server::start(at(1), LIMIT).await;
        let mut pods = Vec::new();
        for (last, name) in [(2, "front"), (3, "other"), (4, "strict")] {
            pods.push(http_echo(at(last), name).await);
        }
        let config = TempDir::new("global-ratelimit");
        let wp = GeneratedWaypoint::start_validated(
            &pki,
            &config,
            &global_ratelimit::manifests([pods[0].addr, pods[1].addr, pods[2].addr], rls.addr),
        )
        .await;
        let client = client(&pki, "default", "sleep");

        global_ratelimit::run(&client, wp.hbone_addr, &rls).await;

        // The module flushes its batched Istio metrics 5 s after a batch's first request:
        // poll, bounded, until the last failure is counted.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let text = loop {
            let (code, text) = admin_get(wp.stats_addr, "/stats/prometheus")
                .await
                .expect("stats");
            assert_eq!(code, 200);
            let done = text.lines().any(|l| {
                l.starts_with("istio_requests_total") && l.contains("response_flags=\"RLSE\"")
            });
            if done || std::time::Instant::now() > deadline {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
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
        // The module counts the filter's replies after it (flags RL and RLSE).
        assert_eq!(
            requests("429", "RL", "other"),
            Some(1),
            "{}",
            grep_istio(&text)
        );
        assert_eq!(requests("429", "RL", "front"), Some(1));
        assert_eq!(requests("500", "RLSE", "strict"), Some(2));
        // The host's counts (tests/tests/host/global_ratelimit.rs).
        for (cluster, want) in COUNTS {
            let got = COUNTER_NAMES.map(|n| cluster_counter(&text, cluster, n));
            assert_eq!(got, want, "{cluster}: {}", grep(&text));
        }
    })
    .await
    .expect("test timed out");
}

fn grep_istio(text: &str) -> String {
    text.lines()
        .filter(|l| l.starts_with("istio_requests_total"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn grep(text: &str) -> String {
    text.lines()
        .filter(|l| l.contains("ratelimit"))
        .collect::<Vec<_>>()
        .join("\n")
}
