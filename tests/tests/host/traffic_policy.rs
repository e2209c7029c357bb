//! DestinationRule traffic policy through the host (`waypoint run`): the scenarios of
//! `waypoint_tests::traffic_policy`, run against Envoy in `envoy/traffic_policy.rs` too.

use std::time::Duration;

use waypoint_tests::pki::Pki;
use waypoint_tests::traffic_policy::{
    AllEjected, BackendTimeoutRetry, Ejection, Overflow, PerConnection, Proxy, RetryOverflow,
    Sticky,
};
use waypoint_tests::waypoint::TestWaypoint;

const LIMIT: Duration = Duration::from_secs(60);

async fn start(pki: &Pki, yaml: &str) -> (TestWaypoint, Proxy) {
    let wp = TestWaypoint::start(pki, yaml, 15008).await;
    assert!(
        wp.running.config.current().is_some(),
        "config rejected: {:?}",
        wp.running.config.last_errors()
    );
    let proxy = Proxy {
        client: waypoint_hbone::HboneClient::new(pki.store("default", "sleep")),
        addr: wp.running.hbone_addr,
    };
    (wp, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_is_sticky() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let s = Sticky::setup(171).await;
        let (_wp, p) = start(&pki, &s.yaml).await;
        s.check(&p).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_5xx_eject_the_endpoint() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let s = Ejection::setup(172).await;
        let (_wp, p) = start(&pki, &s.yaml).await;
        s.check(&p).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_overflow_is_503_uo() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let s = Overflow::setup(173).await;
        let (_wp, p) = start(&pki, &s.yaml).await;
        s.check(&p).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_per_connection() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let s = PerConnection::setup(174).await;
        let (_wp, p) = start(&pki, &s.yaml).await;
        s.check(&p).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_ejected_is_no_healthy_upstream() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let s = AllEjected::setup(175).await;
        let (_wp, p) = start(&pki, &s.yaml).await;
        s.check(&p).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_beyond_max_retries_are_not_made() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let s = RetryOverflow::setup(176).await;
        let (_wp, p) = start(&pki, &s.yaml).await;
        s.check(&p).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_backend_request_is_retried() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let s = BackendTimeoutRetry::setup(177).await;
        let (_wp, p) = start(&pki, &s.yaml).await;
        s.check(&p).await;
    })
    .await
    .expect("test timed out");
}
