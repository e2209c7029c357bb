//! Envoy mode with its identity from Istio's CA: `waypoint xds --ca` writes the certificate a
//! fake CA signed into a directory, serves it to real Envoy 1.40 over SDS, and after each
//! half-life renewal Envoy presents the new certificate on its HBONE listener.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use waypoint_envoy_config::bootstrap::Inputs;
use waypoint_envoy_config::xds::{server, Cache, Source};
use waypoint_hbone::tls::Identity;
use waypoint_istio_ca::files::{start_to_dir, FileNames};
use waypoint_tests::envoy_harness::{free_port, repo_root, scratch_dir, Envoy, Upstream};
use waypoint_tests::fake_ca::FakeCa;
use waypoint_tests::manifests::plain_service;
use waypoint_tests::pki::Pki;

const TOKEN: &str = "projected-token-for-default-waypoint";
const CLUSTER: &str = "Kubernetes";

/// The leaf Envoy presents at `addr` to a mesh client that requires `want` (the handshake
/// fails unless the chain verifies against the mesh root and carries `want`).
async fn served_leaf(
    pki: &Pki,
    addr: SocketAddr,
    want: &Identity,
) -> Result<CertificateDer<'static>, String> {
    let cfg = waypoint_hbone::tls::config::client_config(
        pki.store("default", "sleep"),
        vec![want.clone()],
    )
    .map_err(|e| format!("{e:#}"))?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first().cloned())
        .ok_or_else(|| "no peer certificate".to_string())
}

#[test]
fn envoy_serves_the_ca_certificate_and_its_renewals() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = scratch_dir("xds-ca");
    let pki = Pki::new("cluster.local");
    // 6 s certificates: renewed every ~3 s.
    let ca = rt.block_on(FakeCa::start(&pki, TOKEN, CLUSTER, Duration::from_secs(6)));
    let id = pki.id("default", "waypoint");
    let certs: PathBuf = dir.join("ca-certs");
    // Istio's names, as `waypoint xds --ca` writes them.
    let names = FileNames::default();
    let rotation = rt
        .block_on(start_to_dir(
            ca.options(id.clone(), CLUSTER),
            certs.clone(),
            names,
        ))
        .expect("first certificate from the CA");
    assert_eq!(ca.issued(), 1);

    let upstream = Upstream::start("up-alpha").expect("upstream");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: waypoint, namespace: default}}\n\
             spec: {{gatewayClassName: istio-waypoint, listeners: [{{name: mesh, port: 15008, protocol: HBONE}}]}}\n{}",
            plain_service("alpha", "10.96.5.1", "127.0.0.1", upstream.port)
        ),
    )
    .expect("config");
    let (hbone, readiness, stats) = (free_port(), free_port(), free_port());
    let hbone_addr: SocketAddr = format!("127.0.0.1:{hbone}").parse().expect("addr");
    let inputs = Inputs {
        config: vec![config],
        root: PathBuf::from("/"),
        namespace: "default".into(),
        waypoint: None,
        certs: waypoint_hbone::tls::CertPaths::from_dir(&certs),
        module_name: "waypoint".into(),
        trust_domain: "cluster.local".into(),
        originator: None,
        access_log: false,
        timeouts: Default::default(),
    };
    let local = |p: u16| format!("127.0.0.1:{p}").parse().expect("addr");
    let source = Source {
        inputs: inputs.clone(),
        rebind: BTreeMap::from([
            ("connect_terminate".to_string(), hbone_addr),
            ("readiness".to_string(), local(readiness)),
            ("stats".to_string(), local(stats)),
        ]),
        extra_listeners: Vec::new(),
    };
    let watched = source.watched();
    let server = rt
        .block_on(server::start(
            Cache::from_source(source),
            local(0),
            watched,
            Duration::from_millis(100),
        ))
        .expect("xds server");
    let admin = free_port();
    let yaml = waypoint_envoy_config::xds::render_bootstrap(&inputs, server.addr, false)
        .expect("bootstrap")
        .replace("port_value: 15000", &format!("port_value: {admin}"));
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, yaml).expect("write bootstrap");
    let envoy = Envoy::start(&path, admin, &repo_root()).unwrap_or_else(|e| panic!("{e}"));

    // Envoy presents the CA-issued certificate (the handshake verifies chain and identity).
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        match rt.block_on(served_leaf(&pki, hbone_addr, &id)) {
            Ok(leaf) => break leaf,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!(
                "Envoy never served the CA certificate: {e}\n{}",
                envoy.log_text()
            ),
        }
    };
    let written = std::fs::read_to_string(certs.join("cert-chain.pem")).expect("written chain");
    let written = waypoint_hbone::tls::certs::parse_certs(&written).expect("chain");
    // Envoy serves the file the CA client wrote, unless a renewal already replaced it.
    let rotated_already = ca.issued() > 1;
    assert!(
        rotated_already || written[0] == first,
        "Envoy serves another certificate"
    );

    // After the next renewals Envoy presents a new leaf, without a restart.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = rt.block_on(served_leaf(&pki, hbone_addr, &id));
        if let Ok(leaf) = &now {
            if *leaf != first {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no renewed certificate served after 30 s ({} issued; last: {:?})\n{}",
            ca.issued(),
            now.err(),
            envoy.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ca.issued() >= 2, "renewed by the CA: {}", ca.issued());
    rotation.abort();
    drop(server);
}
