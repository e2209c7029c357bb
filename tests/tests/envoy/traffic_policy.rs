//! DestinationRule traffic policy through stock Envoy on the generated bootstrap (clusters
//! with the rule's balancer, circuit breakers and outlier detection; the module's hash
//! header): the scenarios of `waypoint_tests::traffic_policy`, run through the host too.

use waypoint_tests::envoy_generated::{client, write_config, GeneratedWaypoint, Layout};
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::traffic_policy::{
    AllEjected, BackendTimeoutRetry, Ejection, Overflow, PerConnection, Proxy, RetryOverflow,
    Sticky,
};
use waypoint_tests::waypoint::WAYPOINT_GATEWAY;

async fn start(pki: &Pki, yaml: &str) -> (GeneratedWaypoint, Proxy, TempDir) {
    let config = TempDir::new("gen-traffic-policy");
    let (paths, snap) = write_config(config.path(), &format!("{WAYPOINT_GATEWAY}{yaml}"));
    // The pods' HBONE port is unused here (plaintext upstreams).
    let wp = GeneratedWaypoint::start(pki, &snap, &paths, Layout::Originator, 1)
        .await
        .unwrap_or_else(|e| panic!("start Envoy on the generated bootstrap: {e}"));
    let proxy = Proxy {
        client: client(pki, "default", "sleep"),
        addr: wp.hbone_addr,
    };
    (wp, proxy, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_is_sticky() {
    let pki = Pki::new("cluster.local");
    let s = Sticky::setup(181).await;
    let (wp, p, _dir) = start(&pki, &s.yaml).await;
    let outcome = tokio::spawn(async move { s.check(&p).await }).await;
    assert!(outcome.is_ok(), "{}", wp.log_tail(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_5xx_eject_the_endpoint() {
    let pki = Pki::new("cluster.local");
    let s = Ejection::setup(182).await;
    let (wp, p, _dir) = start(&pki, &s.yaml).await;
    let outcome = tokio::spawn(async move { s.check(&p).await }).await;
    assert!(outcome.is_ok(), "{}", wp.log_tail(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_overflow_is_503_uo() {
    let pki = Pki::new("cluster.local");
    let s = Overflow::setup(183).await;
    let (wp, p, _dir) = start(&pki, &s.yaml).await;
    let outcome = tokio::spawn(async move { s.check(&p).await }).await;
    assert!(outcome.is_ok(), "{}", wp.log_tail(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_per_connection() {
    let pki = Pki::new("cluster.local");
    let s = PerConnection::setup(184).await;
    let (wp, p, _dir) = start(&pki, &s.yaml).await;
    let outcome = tokio::spawn(async move { s.check(&p).await }).await;
    assert!(outcome.is_ok(), "{}", wp.log_tail(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_ejected_is_no_healthy_upstream() {
    let pki = Pki::new("cluster.local");
    let s = AllEjected::setup(185).await;
    let (wp, p, _dir) = start(&pki, &s.yaml).await;
    let outcome = tokio::spawn(async move { s.check(&p).await }).await;
    assert!(outcome.is_ok(), "{}", wp.log_tail(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_beyond_max_retries_are_not_made() {
    let pki = Pki::new("cluster.local");
    let s = RetryOverflow::setup(186).await;
    let (wp, p, _dir) = start(&pki, &s.yaml).await;
    let outcome = tokio::spawn(async move { s.check(&p).await }).await;
    assert!(outcome.is_ok(), "{}", wp.log_tail(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_backend_request_is_retried() {
    let pki = Pki::new("cluster.local");
    let s = BackendTimeoutRetry::setup(187).await;
    let (wp, p, _dir) = start(&pki, &s.yaml).await;
    let outcome = tokio::spawn(async move { s.check(&p).await }).await;
    assert!(outcome.is_ok(), "{}", wp.log_tail(30));
}
