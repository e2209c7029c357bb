//! Sidecar pods through stock Envoy on the generated bootstrap: the cluster's
//! `tlsMode-istio` transport socket match does Istio mTLS to the pod's port; the same
//! scenario as `host/sidecar.rs`.

use waypoint_tests::envoy_generated::{client, write_config, GeneratedWaypoint, Layout};
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::sidecar::Sidecars;
use waypoint_tests::traffic_policy::Proxy;
use waypoint_tests::waypoint::WAYPOINT_GATEWAY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_pods_are_reached_with_istio_mtls() {
    let pki = Pki::new("cluster.local");
    let s = Sidecars::setup(188, &pki).await;
    let config = TempDir::new("gen-sidecar");
    let (paths, snap) = write_config(config.path(), &format!("{WAYPOINT_GATEWAY}{}", s.yaml));
    let wp = GeneratedWaypoint::start(&pki, &snap, &paths, Layout::Originator, 1)
        .await
        .unwrap_or_else(|e| panic!("start Envoy on the generated bootstrap: {e}"));
    let p = Proxy {
        client: client(&pki, "default", "sleep"),
        addr: wp.hbone_addr,
    };
    let waypoint = pki.id("default", "waypoint").to_string();
    let outcome = tokio::spawn(async move { s.check(&p, &waypoint).await }).await;
    assert!(outcome.is_ok(), "{}", wp.log_tail(30));
}
