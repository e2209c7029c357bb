//! Sidecar pods through the host (`waypoint run`): Istio mTLS to the pod's port, the pod sees
//! the waypoint's identity; a pod presenting the wrong identity is a 503. The same scenario
//! runs through Envoy in `envoy/sidecar.rs`.

use std::time::Duration;

use waypoint_tests::pki::Pki;
use waypoint_tests::sidecar::Sidecars;
use waypoint_tests::traffic_policy::Proxy;
use waypoint_tests::waypoint::TestWaypoint;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_pods_are_reached_with_istio_mtls() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let pki = Pki::new("cluster.local");
        let s = Sidecars::setup(175, &pki).await;
        let wp = TestWaypoint::start(&pki, &s.yaml, 15008).await;
        assert!(
            wp.running.config.current().is_some(),
            "config rejected: {:?}",
            wp.running.config.last_errors()
        );
        let p = Proxy {
            client: waypoint_hbone::HboneClient::new(pki.store("default", "sleep")),
            addr: wp.running.hbone_addr,
        };
        s.check(&p, &pki.id("default", "waypoint").to_string())
            .await;
    })
    .await
    .expect("test timed out");
}
