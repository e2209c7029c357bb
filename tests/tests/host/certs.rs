//! End-to-end certificate rotation: new certificate files are picked up by new handshakes
//! while an established HBONE connection keeps working.

use std::time::Duration;

use waypoint_devtools::dev_ca::write_issued;
use waypoint_hbone::HboneClient;
use waypoint_tests::echo::http_echo;
use waypoint_tests::hbone_client::{collect, get, http1_get_as, http1_over, tunnel};
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::{eventually, TestWaypoint};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_without_dropping_connections() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let wp = TestWaypoint::start(&pki, "", 15008).await;
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "echo").await;
        let dest = echo.addr.to_string();
        let old_id = pki.id("default", "waypoint");
        let new_id = pki.id("default", "waypoint-rotated");

        // An open tunnel before the rotation.
        let before = HboneClient::new(pki.store("default", "sleep"));
        let s = tunnel(
            &before,
            wp.running.hbone_addr,
            std::slice::from_ref(&old_id),
            &dest,
        )
        .await
        .expect("tunnel");
        let mut send = http1_over(s).await.expect("h1");

        // Rotate: write a certificate with another identity into the waypoint's files.
        let wdir = pki.dir.path().join("default.waypoint");
        let issued = pki.ca.issue(&new_id).expect("issue");
        write_issued(&wdir, &issued, &pki.ca.ca_pem()).expect("write");
        let certs = wp.running.certs.clone();
        let want = new_id.clone();
        assert!(
            eventually(Duration::from_secs(10), || {
                let (certs, want) = (certs.clone(), want.clone());
                async move { certs.identity() == want }
            })
            .await,
            "rotation must be picked up"
        );

        // New handshakes present the new identity.
        let after = HboneClient::new(pki.store("default", "sleep"));
        let s = tunnel(&after, wp.running.hbone_addr, &[new_id], &dest).await;
        assert!(s.is_ok(), "new identity: {:?}", s.err());
        let r = tunnel(
            &after,
            wp.running.hbone_addr,
            std::slice::from_ref(&old_id),
            &dest,
        )
        .await;
        assert!(r.is_err(), "old identity must be gone for new connections");
        // The tunnel opened before the rotation still carries requests.
        let r = collect(
            send.send_request(get("echo", "/still"))
                .await
                .expect("send"),
        )
        .await
        .expect("collect");
        assert_eq!(r.status, 200);
        // A new stream on the pooled connection opened before the rotation still works
        // (it authenticated the old identity once; no new handshake happens).
        let r = http1_get_as(
            &before,
            wp.running.hbone_addr,
            &[old_id],
            &dest,
            "echo",
            "/pooled",
        )
        .await
        .expect("GET through the tunnel");
        assert_eq!(r.status, 200);
        assert_eq!(before.connections_opened(), 1);
    })
    .await
    .expect("test timed out");
}
