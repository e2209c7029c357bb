//! The shared scenario suite through real Envoy 1.40 on the bootstrap `waypoint bootstrap`
//! generates (HBONE in on :15008, our module, HBONE out through the local originator): every
//! case must come out as the core decides, exactly as the host test (host_scenarios.rs)
//! checks it. Pod IPs are remapped to loopback (binding their ports needs root: SKIP).

use std::collections::HashMap;
use std::time::Duration;

use waypoint_core::{BuildOptions, Snapshot};
use waypoint_tests::envoy_generated::{GeneratedWaypoint, Layout};
use waypoint_tests::netns::skip_unless_root;
use waypoint_tests::pki::Pki;
use waypoint_tests::scenario::{build_snapshot, load, scenario_files};
use waypoint_tests::scenario_hbone::{run_case, start_pods};

async fn suite(layout: Layout, base: u8) {
    let pki = Pki::new("cluster.local");
    let mut failures = Vec::new();
    let mut count = 0;
    for (i, f) in scenario_files().iter().enumerate() {
        let file = load(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let snap = build_snapshot(&file).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let pods = start_pods(&pki, &snap, &file.config, base, i as u8).await;
        // The bootstrap is generated from the remapped config (the pods' loopback addresses),
        // as `waypoint bootstrap` would be from the cluster's.
        let paths = vec![pods.config_dir.path().to_path_buf()];
        let loaded = waypoint_loader::load_paths(&paths, "default");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let waypoint = file
            .waypoint
            .as_deref()
            .and_then(|w| w.split_once('/'))
            .map(|(a, b)| (a.to_string(), b.to_string()));
        let (remapped, diags) = Snapshot::build(
            &loaded.resources,
            &BuildOptions {
                waypoint,
                ..Default::default()
            },
        );
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        let wp = GeneratedWaypoint::start(&pki, &remapped, &paths, layout, pods.hbone_port)
            .await
            .unwrap_or_else(|e| panic!("{}: Envoy: {e}", f.display()));
        let mut clients = HashMap::new();
        // WAYPOINT_SCENARIO=<substring>: only the cases whose name contains it.
        let only = std::env::var("WAYPOINT_SCENARIO").unwrap_or_default();
        for case in file.cases.iter().filter(|c| c.name.contains(&only)) {
            count += 1;
            let outcome = tokio::time::timeout(
                Duration::from_secs(30),
                run_case(wp.hbone_addr, &snap, &pods.map, &mut clients, &pki, case),
            )
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
            if let Err(diff) = outcome {
                failures.push(format!("{} / {}: {diff}", f.display(), case.name));
            }
        }
        if !failures.is_empty() {
            failures.push(format!("--- Envoy log tail ---\n{}", wp.log_tail(30)));
        }
    }
    println!(
        "scenario suite (generated Envoy bootstrap, {layout:?}): {count} cases, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_suite_through_the_generated_bootstrap() {
    if skip_unless_root("scenario_suite_through_the_generated_bootstrap") {
        return;
    }
    tokio::time::timeout(Duration::from_secs(600), suite(Layout::Originator, 170))
        .await
        .expect("suite timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_suite_through_the_generated_bootstrap_stock_tunnelling() {
    if skip_unless_root("scenario_suite_through_the_generated_bootstrap_stock_tunnelling") {
        return;
    }
    tokio::time::timeout(Duration::from_secs(600), suite(Layout::Envoy, 180))
        .await
        .expect("suite timed out");
}
