//! Per-rule rate limits in the host: the shared cases (`waypoint_tests::rule_ratelimit`), an
//! EnvoyFilter naming one VirtualService rule with a local and a global limit.

use std::time::Duration;

use waypoint_hbone::HboneClient;
use waypoint_tests::echo::http_echo;
use waypoint_tests::pki::Pki;
use waypoint_tests::rls_server;
use waypoint_tests::rule_ratelimit::{self, LIMIT};
use waypoint_tests::waypoint::TestWaypoint;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_rule_gets_its_local_and_global_limits() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let pki = Pki::new("cluster.local");
        let rls = rls_server::start("127.0.0.85:0".parse().expect("addr"), LIMIT).await;
        let front = http_echo("127.0.0.86:0".parse().expect("addr"), "front").await;
        let yaml = rule_ratelimit::manifests(front.addr, rls.addr);
        let wp = TestWaypoint::start(&pki, &yaml, 15008).await;
        let current = wp.running.config.current();
        let state = current
            .as_ref()
            .unwrap_or_else(|| panic!("config rejected: {:?}", wp.running.config.last_errors()));
        assert!(state.warnings.is_empty(), "{:?}", state.warnings);
        let client = HboneClient::new(pki.store("default", "sleep"));
        rule_ratelimit::run(&client, wp.running.hbone_addr, &rls).await;
    })
    .await
    .expect("test timed out");
}
