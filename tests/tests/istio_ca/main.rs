//! Identity from Istio's CA, end to end on loopback: a fake CA over TLS signs the waypoint's
//! CSR; the waypoint serves that certificate, rotates it at half-life without dropping
//! connections, keeps it while the CA is down, and reports a rejected token clearly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use waypoint_hbone::tls::{CertStore, Identity};
use waypoint_hbone::HboneClient;
use waypoint_istio_ca::CaError;
use waypoint_proxy::run::CertSource;
use waypoint_tests::echo::http_echo;
use waypoint_tests::fake_ca::FakeCa;
use waypoint_tests::hbone_client::{collect, get, http1_get_as, http1_over, tunnel};
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::{eventually, TestWaypoint};

const LIMIT: Duration = Duration::from_secs(90);
const TOKEN: &str = "projected-token-for-default-waypoint";
const CLUSTER: &str = "Kubernetes";

/// The leaf the waypoint at `addr` presents to a mesh client of `pki`, which requires `want`.
async fn served_leaf(pki: &Pki, addr: SocketAddr, want: &Identity) -> CertificateDer<'static> {
    let cfg = waypoint_hbone::tls::config::client_config(
        pki.store("default", "sleep"),
        vec![want.clone()],
    )
    .expect("client config");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .expect("handshake with the waypoint");
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("peer certificates")[0]
        .clone()
}

fn leaf_of(store: &CertStore) -> CertificateDer<'static> {
    store.current().material.certified_key.cert[0].clone()
}

/// A waypoint serving the store kept by the CA client.
async fn waypoint_with(pki: &Pki, store: Arc<CertStore>) -> TestWaypoint {
    TestWaypoint::start_with(pki, "", move |o| o.certs = CertSource::Store(store)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_certificate_is_obtained_and_served() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let ca = FakeCa::start(&pki, TOKEN, CLUSTER, Duration::from_secs(3600)).await;
        let id = pki.id("default", "waypoint");
        let mut opts = ca.options(id.clone(), CLUSTER);
        opts.ttl = Duration::from_secs(7200);
        let (store, rotation) = waypoint_istio_ca::start(opts).await.expect("certificate");
        assert_eq!(store.identity(), id);
        assert_eq!(ca.issued(), 1);
        // validity_duration is sent in seconds; the CA capped it at its own maximum.
        assert_eq!(ca.requested_ttls(), vec![7200]);
        let v = x509_validity(&leaf_of(&store));
        assert!((3599..=3601).contains(&v), "lifetime {v}s");

        let wp = waypoint_with(&pki, store.clone()).await;
        // The waypoint presents exactly the CA's certificate, with our SPIFFE SAN.
        let served = served_leaf(&pki, wp.running.hbone_addr, &id).await;
        assert_eq!(served, leaf_of(&store));
        assert_eq!(
            waypoint_hbone::tls::san::spiffe_sans(&served),
            vec![id.clone()]
        );
        // And carries traffic: an HBONE client requiring that SAN gets through to a backend.
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "echo").await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        let r = http1_get_as(
            &client,
            wp.running.hbone_addr,
            &[id],
            &echo.addr.to_string(),
            "echo",
            "/",
        )
        .await
        .expect("GET through the tunnel");
        assert_eq!(r.status, 200);
        rotation.abort();
    })
    .await
    .expect("test timed out");
}

/// Seconds between notBefore and notAfter.
fn x509_validity(der: &CertificateDer<'_>) -> i64 {
    let (_, x) = x509_parser::parse_x509_certificate(der.as_ref()).expect("x509");
    x.validity().not_after.timestamp() - x.validity().not_before.timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotates_at_half_life_without_dropping_connections() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        // Eight-second certificates: renewed about four seconds after issue.
        let ca = FakeCa::start(&pki, TOKEN, CLUSTER, Duration::from_secs(8)).await;
        let id = pki.id("default", "waypoint");
        let issued_at = Instant::now();
        let (store, rotation) = waypoint_istio_ca::start(ca.options(id.clone(), CLUSTER))
            .await
            .expect("certificate");
        let first = leaf_of(&store);
        let wp = waypoint_with(&pki, store.clone()).await;
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "echo").await;
        let dest = echo.addr.to_string();

        // A tunnel open before the rotation.
        let before = HboneClient::new(pki.store("default", "sleep"));
        let s = tunnel(
            &before,
            wp.running.hbone_addr,
            std::slice::from_ref(&id),
            &dest,
        )
        .await
        .expect("tunnel");
        let mut send = http1_over(s).await.expect("h1");

        let ca_ref = &ca;
        assert!(
            eventually(
                Duration::from_secs(10),
                || async move { ca_ref.issued() >= 2 }
            )
            .await,
            "no renewal"
        );
        let renewed_after = issued_at.elapsed();
        // Half of eight seconds; notBefore has one-second precision, so up to a second early.
        assert!(
            renewed_after >= Duration::from_secs(3) && renewed_after < Duration::from_millis(5500),
            "renewed after {renewed_after:?}"
        );
        let store_ref = &store;
        let first_ref = &first;
        assert!(
            eventually(Duration::from_secs(5), || async move {
                leaf_of(store_ref) != *first_ref
            })
            .await,
            "the store must hold the renewed certificate"
        );
        // New handshakes get the new certificate (same identity, new key).
        let served = served_leaf(&pki, wp.running.hbone_addr, &id).await;
        assert_ne!(served, first);
        assert_eq!(
            waypoint_hbone::tls::san::spiffe_sans(&served),
            vec![id.clone()]
        );
        // The tunnel opened before still works, and so does a new stream on its connection.
        let r = collect(
            send.send_request(get("echo", "/still"))
                .await
                .expect("send"),
        )
        .await
        .expect("collect");
        assert_eq!(r.status, 200);
        let r = http1_get_as(
            &before,
            wp.running.hbone_addr,
            std::slice::from_ref(&id),
            &dest,
            "echo",
            "/pooled",
        )
        .await
        .expect("GET through the tunnel");
        assert_eq!(r.status, 200);
        assert_eq!(before.connections_opened(), 1);
        // A fresh client handshakes with the rotated certificate.
        let after = HboneClient::new(pki.store("default", "sleep"));
        let s = tunnel(&after, wp.running.hbone_addr, &[id], &dest).await;
        assert!(s.is_ok(), "after rotation: {:?}", s.err());
        rotation.abort();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_down_backs_off_and_keeps_the_current_certificate() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let ca = FakeCa::start(&pki, TOKEN, CLUSTER, Duration::from_secs(8)).await;
        let id = pki.id("default", "waypoint");
        let (store, rotation) = waypoint_istio_ca::start(ca.options(id.clone(), CLUSTER))
            .await
            .expect("certificate");
        let first = leaf_of(&store);
        let wp = waypoint_with(&pki, store.clone()).await;
        ca.set_down(true);
        // Renewal is due after ~4 s; attempts fail (connections closed) and back off.
        tokio::time::sleep(Duration::from_millis(6500)).await;
        assert_eq!(ca.issued(), 1, "nothing issued while down");
        assert_eq!(ca.requests(), 1, "no request got through while down");
        // Attempts at ~4 s, then ~1 s and ~2 s later (each up to 20 % sooner): retried, with
        // growing gaps rather than in a tight loop.
        let refused = ca.refused();
        assert!((2..=4).contains(&refused), "{refused} attempts while down");
        assert_eq!(leaf_of(&store), first, "the current certificate is kept");
        // Still valid (8 s), still served.
        let served = served_leaf(&pki, wp.running.hbone_addr, &id).await;
        assert_eq!(served, first);
        // Back up: a retry (within the backoff, a few seconds) renews it.
        ca.set_down(false);
        let store_ref = &store;
        let first_ref = &first;
        assert!(
            eventually(Duration::from_secs(15), || async move {
                leaf_of(store_ref) != *first_ref
            })
            .await,
            "renewed once the CA is back"
        );
        assert_eq!(ca.issued(), 2);
        let served = served_leaf(&pki, wp.running.hbone_addr, &id).await;
        assert_eq!(served, leaf_of(&store));
        rotation.abort();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_is_a_clear_error_and_not_retried() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let ca = FakeCa::start(&pki, TOKEN, CLUSTER, Duration::from_secs(3600)).await;
        let id = pki.id("default", "waypoint");
        std::fs::write(&ca.token_file, "some-other-token\n").expect("write token");
        let started = Instant::now();
        let e = waypoint_istio_ca::start(ca.options(id.clone(), CLUSTER))
            .await
            .expect_err("bad token");
        assert!(matches!(e, CaError::Unauthenticated(_)), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("UNAUTHENTICATED") && msg.contains("--ca-token"),
            "{msg}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "not retried");
        assert_eq!(ca.requests(), 1);
        // The right token for another cluster id is rejected the same way.
        std::fs::write(&ca.token_file, TOKEN).expect("write token");
        let e = waypoint_istio_ca::start(ca.options(id, "other-cluster"))
            .await
            .expect_err("bad cluster");
        assert!(matches!(e, CaError::Unauthenticated(_)), "{e}");
        assert_eq!(ca.issued(), 0);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_file_is_reread_on_every_request() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let ca = FakeCa::start(&pki, TOKEN, CLUSTER, Duration::from_secs(4)).await;
        let id = pki.id("default", "waypoint");
        let (store, rotation) = waypoint_istio_ca::start(ca.options(id, CLUSTER))
            .await
            .expect("certificate");
        let first = leaf_of(&store);
        // kubelet rotates the projected token; the CA only accepts the new one from now on.
        ca.set_token("rotated-token");
        std::fs::write(&ca.token_file, "rotated-token\n").expect("write token");
        let store_ref = &store;
        let first_ref = &first;
        assert!(
            eventually(Duration::from_secs(10), || async move {
                leaf_of(store_ref) != *first_ref
            })
            .await,
            "renewal with the rotated token"
        );
        assert_eq!(ca.issued(), 2);
        assert_eq!(
            ca.requests(),
            2,
            "the first renewal attempt used the new token"
        );
        rotation.abort();
    })
    .await
    .expect("test timed out");
}
