//! The shared scenario suite through the standalone host (a differential test): every case is
//! sent over HBONE with the case's identity, source IP and destination, and what the host does
//! must match the core's decision for the same case: the local reply (status, body, location),
//! or a forward that reaches an endpoint of the chosen backend with the decided path and
//! request headers. Pod IPs are remapped to loopback; binding their ports needs root (SKIP).

use std::collections::HashMap;
use std::time::Duration;

use waypoint_tests::netns::skip_unless_root;
use waypoint_tests::pki::Pki;
use waypoint_tests::scenario::{build_snapshot, load, scenario_files};
use waypoint_tests::scenario_hbone::{run_case, start_pods};
use waypoint_tests::waypoint::TestWaypoint;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_suite_through_the_host() {
    if skip_unless_root("scenario_suite_through_the_host") {
        return;
    }
    let pki = Pki::new("cluster.local");
    let mut failures = Vec::new();
    let mut count = 0;
    for (i, f) in scenario_files().iter().enumerate() {
        let file = load(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let snap = build_snapshot(&file).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let pods = start_pods(&pki, &snap, &file.config, 90, i as u8).await;
        let wp = TestWaypoint::start_in(&pki, pods.config_dir.path(), pods.hbone_port).await;
        assert!(
            wp.running.config.current().is_some(),
            "{}: host rejected the config: {:?}",
            f.display(),
            wp.running.config.last_errors()
        );
        let mut clients = HashMap::new();
        for case in &file.cases {
            count += 1;
            let outcome = tokio::time::timeout(
                Duration::from_secs(30),
                run_case(
                    wp.running.hbone_addr,
                    &snap,
                    &pods.map,
                    &mut clients,
                    &pki,
                    case,
                ),
            )
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
            if let Err(diff) = outcome {
                failures.push(format!("{} / {}: {diff}", f.display(), case.name));
            }
        }
    }
    println!(
        "scenario suite (host): {count} cases, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
