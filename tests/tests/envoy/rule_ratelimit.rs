//! Per-rule rate limits on real Envoy 1.40: the route the module selects for a named
//! VirtualService rule carries its local and global limits, with the host's answers (the
//! shared cases in `waypoint_tests::rule_ratelimit`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use waypoint_tests::echo::http_echo;
use waypoint_tests::envoy_generated::{client, GeneratedWaypoint};
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::ratelimit::sample;
use waypoint_tests::rls_server;
use waypoint_tests::rule_ratelimit::{self, LIMIT};
use waypoint_tests::waypoint::admin_get;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_limits_a_named_rule_as_the_host_does() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let pki = Pki::new("cluster.local");
        let at = |last: u8| SocketAddr::new(IpAddr::from([127, 75, 0, last]), 0);
        let rls = rls_server::start(at(1), LIMIT).await;
        let front = http_echo(at(2), "front").await;
        let config = TempDir::new("rule-ratelimit");
        let wp = GeneratedWaypoint::start_validated(
            &pki,
            &config,
            &rule_ratelimit::manifests(front.addr, rls.addr),
        )
        .await;
        let client = client(&pki, "default", "sleep");

        rule_ratelimit::run(&client, wp.hbone_addr, &rls).await;

        // The rule's local config counts under its own prefix: 3 allowed, 1 limited.
        let (_, text) = admin_get(wp.stats_addr, "/stats/prometheus")
            .await
            .expect("stats");
        let counter = |name: &str| {
            sample(
                &text,
                &format!("envoy_http_local_rate_limit_{name}"),
                &["envoy_local_http_ratelimit_prefix=\"limited\""],
            )
        };
        assert_eq!(counter("rate_limited"), Some(1), "{text}");
        assert_eq!(counter("ok"), Some(3));
    })
    .await
    .expect("test timed out");
}
