//! Local rate limiting on real Envoy 1.40: the bootstrap generated from an EnvoyFilter in
//! Istio's shape validates, and the shared scenario (`waypoint_tests::ratelimit`) gives the
//! same answers as the host, counted in Envoy's own `local_rate_limit` stats.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use waypoint_tests::echo::http_echo;
use waypoint_tests::envoy_generated::{client, GeneratedWaypoint};
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::ratelimit::{self, sample, FRONT_PREFIX, OTHER_PREFIX};
use waypoint_tests::waypoint::admin_get;

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_local_rate_limits_match_the_host() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let front = http_echo(SocketAddr::new(IpAddr::from([127, 73, 0, 2]), 0), "front").await;
        let other = http_echo(SocketAddr::new(IpAddr::from([127, 73, 0, 3]), 0), "other").await;
        let config = TempDir::new("ratelimit");
        let wp = GeneratedWaypoint::start_validated(
            &pki,
            &config,
            &ratelimit::manifests(front.addr, other.addr),
        )
        .await;
        let client = client(&pki, "default", "sleep");

        ratelimit::run(&client, wp.hbone_addr, front.addr).await;

        let (code, text) = admin_get(wp.stats_addr, "/stats/prometheus")
            .await
            .expect("stats");
        assert_eq!(code, 200);
        let counter = |name: &str, prefix: &str| {
            sample(
                &text,
                &format!("envoy_http_local_rate_limit_{name}"),
                &[&format!("envoy_local_http_ratelimit_prefix=\"{prefix}\"")],
            )
        };
        // The host's counts (tests/tests/host/ratelimit.rs).
        for (prefix, ok, limited) in [(OTHER_PREFIX, 4, 3), (FRONT_PREFIX, 2, 2)] {
            let at = |name| counter(name, prefix);
            assert_eq!(
                at("rate_limited"),
                Some(limited),
                "{prefix}: {}",
                grep(&text)
            );
            assert_eq!(at("enforced"), Some(limited), "{prefix}");
            assert_eq!(at("ok"), Some(ok), "{prefix}");
            assert_eq!(at("enabled"), Some(ok + limited), "{prefix}");
        }
    })
    .await
    .expect("test timed out");
}

fn grep(text: &str) -> String {
    text.lines()
        .filter(|l| l.contains("rate_limit"))
        .collect::<Vec<_>>()
        .join("\n")
}
