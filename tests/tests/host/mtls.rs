//! End-to-end mTLS rejections at the waypoint's HBONE listener: untrusted CA, wrong trust
//! domain, no client certificate, expired certificate; and the client's SAN check.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use waypoint_hbone::tls::Identity;
use waypoint_hbone::{HboneClient, HboneError};
use waypoint_tests::echo::http_echo;
use waypoint_tests::hbone_client::{http1_get, tunnel};
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::TestWaypoint;

const LIMIT: Duration = Duration::from_secs(60);

/// The attempt must fail at TLS or HTTP/2 set-up, never reach the destination.
fn assert_rejected(r: Result<waypoint_hbone::H2Stream, HboneError>, what: &str) {
    match r {
        Ok(_) => panic!("{what}: tunnel unexpectedly established"),
        Err(HboneError::Status { status, .. }) => {
            panic!("{what}: got an HTTP status {status}, expected a TLS rejection")
        }
        Err(e) => eprintln!("{what}: rejected as expected: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_client_certificates_are_rejected() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let wp = TestWaypoint::start(&pki, "", 15008).await;
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "echo").await;
        let dest = echo.addr.to_string();
        let addr = wp.running.hbone_addr;
        // Clients expect the waypoint's identity, so every failure below is the server's.
        let wp_id = [pki.id("default", "waypoint")];

        // Control: a good identity works.
        let good = HboneClient::new(pki.store("default", "sleep"));
        assert_eq!(
            http1_get(&good, addr, &dest, "/")
                .await
                .expect("good")
                .status,
            200
        );

        // Untrusted CA: another CA issuing the same identity. The client trusts our root
        // (so the failure is the server's), but presents a foreign chain.
        let other = Pki::new("cluster.local");
        let paths = other.issue("default", "sleep");
        let mixed = waypoint_hbone::tls::certs::material_from_pem(
            &std::fs::read_to_string(&paths.cert).expect("read"),
            &std::fs::read_to_string(&paths.key).expect("read"),
            &pki.ca.ca_pem(),
        )
        .expect("material");
        let untrusted =
            HboneClient::new(waypoint_hbone::tls::CertStore::new(mixed).expect("store"));
        assert_rejected(
            tunnel(&untrusted, addr, &wp_id, &dest).await,
            "untrusted CA",
        );

        // Wrong trust domain, signed by the right CA.
        let wrong_td = HboneClient::new(
            pki.store_for(&Identity::new("evil.example", "default", "sleep"), None),
        );
        assert_rejected(
            tunnel(&wrong_td, addr, &wp_id, &dest).await,
            "wrong trust domain",
        );

        // Expired certificate.
        let expired = HboneClient::new(pki.expired_store("default", "sleep"));
        assert_rejected(
            tunnel(&expired, addr, &wp_id, &dest).await,
            "expired certificate",
        );

        // No client certificate at all: the server must refuse the handshake.
        let store = pki.store("default", "sleep");
        let mut cfg =
            rustls::ClientConfig::builder_with_provider(waypoint_hbone::tls::config::provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("versions")
                .dangerous()
                .with_custom_certificate_verifier(
                    waypoint_hbone::tls::verify::MeshServerVerifier::new(store, vec![]),
                )
                .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = TcpStream::connect(addr).await.expect("tcp");
        let outcome = match tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
        {
            Err(e) => Err(e.to_string()),
            // TLS 1.3: the client may finish first; the server's alert arrives on read.
            Ok(mut tls) => {
                let mut buf = [0u8; 16];
                match tls.read(&mut buf).await {
                    Ok(0) => Err("closed".to_string()),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        assert!(outcome.is_err(), "no-client-cert handshake must fail");
        eprintln!("no client cert: rejected as expected: {outcome:?}");

        // The good client still works after all that.
        assert_eq!(
            http1_get(&good, addr, &dest, "/")
                .await
                .expect("good")
                .status,
            200
        );
        assert_eq!(echo.hits(), 2, "no rejected attempt may reach the upstream");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_unexpected_server_identity() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let wp = TestWaypoint::start(&pki, "", 15008).await;
        let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "echo").await;
        let client = HboneClient::new(pki.store("default", "sleep"));
        let wrong = pki.id("default", "not-the-waypoint");
        assert_rejected(
            tunnel(
                &client,
                wp.running.hbone_addr,
                &[wrong],
                &echo.addr.to_string(),
            )
            .await,
            "unexpected server SAN",
        );
        assert_eq!(echo.hits(), 0);
    })
    .await
    .expect("test timed out");
}
