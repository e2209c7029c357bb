//! `waypoint proxy-config` against real Envoy 1.40 with the module on the generated bootstrap
//! for examples/bookinfo: the module's routes with the 90/10 weights, Envoy's own route,
//! clusters and endpoints from `/config_dump?include_eds`, and the certificate from `/certs`.

use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use waypoint_core::{BuildOptions, Snapshot};
use waypoint_proxy::admin::proxy_config::{self, Format, Mode, ProxyConfig, Section};
use waypoint_tests::envoy_generated::{GeneratedWaypoint, Layout};
use waypoint_tests::envoy_harness::{free_port, repo_root};
use waypoint_tests::pki::Pki;
use x509_parser::prelude::{FromDer, X509Certificate};

const REVIEWS: &str = "reviews.default.svc.cluster.local";

async fn fetch(admin_port: u16, workdir: &std::path::Path) -> ProxyConfig {
    proxy_config::fetch(
        &format!("127.0.0.1:{admin_port}"),
        workdir,
        Duration::from_secs(10),
    )
    .await
    .expect("proxy-config from Envoy's admin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_proxy_config_shows_the_module_routes_and_envoy_state() {
    let pki = Pki::new("cluster.local");
    // Relative, as `waypoint bootstrap` writes them: the module (Envoy runs in the repository
    // root) and proxy-config (--envoy-workdir) both resolve it there.
    let paths = vec![PathBuf::from("examples/bookinfo")];
    let loaded = waypoint_loader::load_paths(&[repo_root().join("examples/bookinfo")], "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let (snap, diags) = Snapshot::build(&loaded.resources, &BuildOptions::default());
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
    let wp = GeneratedWaypoint::start(&pki, &snap, &paths, Layout::Envoy, free_port())
        .await
        .unwrap_or_else(|e| panic!("start Envoy on the generated bootstrap: {e}"));
    let admin = wp.envoy.admin_port;
    let doc = fetch(admin, &repo_root()).await;
    // Shown with --nocapture (and by a failing run): what an operator would see.
    println!(
        "{}",
        proxy_config::render(&doc, Section::All, Format::Short).expect("render")
    );
    assert_eq!(doc.mode, Mode::Envoy);
    assert!(doc.warnings.is_empty(), "{:?}", doc.warnings);
    assert_eq!(doc.waypoint.as_deref(), Some("default/waypoint"));

    // The module's route table: the canary split with both weights and their clusters.
    let canary = doc
        .routes
        .iter()
        .find(|r| {
            r.table == "waypoint"
                && r.resource.as_deref() == Some("VirtualService/default/reviews")
                && r.rule.as_deref() == Some("canary")
        })
        .unwrap_or_else(|| panic!("no canary route in {:#?}", doc.routes));
    let split: Vec<(Option<&str>, u32, Option<&str>)> = canary
        .backends
        .iter()
        .map(|b| (b.subset.as_deref(), b.weight, b.cluster.as_deref()))
        .collect();
    let v1 = format!("outbound|9080|v1|{REVIEWS}");
    let v3 = format!("outbound|9080|v3|{REVIEWS}");
    assert_eq!(
        split,
        vec![
            (Some("v1"), 90, Some(v1.as_str())),
            (Some("v3"), 10, Some(v3.as_str())),
        ]
    );
    let table = proxy_config::render(&doc, Section::Routes, Format::Short).expect("render");
    assert!(
        table.contains(&format!("{REVIEWS}:9080/v1=90, {REVIEWS}:9080/v3=10")),
        "{table}"
    );
    // Envoy's own route on main_internal hands the module's choice to the router.
    let envoy_route = doc
        .routes
        .iter()
        .find(|r| r.table == "envoy" && r.service.starts_with("main_internal/"))
        .unwrap_or_else(|| panic!("no main_internal route in {:#?}", doc.routes));
    assert!(
        envoy_route
            .backends
            .iter()
            .any(|b| b.cluster_header.as_deref() == Some("x-waypoint-cluster")),
        "{envoy_route:#?}"
    );

    // Inline route configs are listed by Envoy twice (listener and routes dump): shown once.
    let envoy_rows: Vec<(&str, &str)> = doc
        .routes
        .iter()
        .filter(|r| r.table == "envoy")
        .map(|r| (r.service.as_str(), r.matcher.as_str()))
        .collect();
    let mut distinct = envoy_rows.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), envoy_rows.len(), "{envoy_rows:#?}");

    // Every cluster the module can name exists in Envoy, with the module's DestinationRule.
    for b in &canary.backends {
        let name = b.cluster.as_deref().expect("cluster");
        let c = doc
            .clusters
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("Envoy has no cluster {name}"));
        assert_eq!(c.kind.as_deref(), Some("STATIC"));
        assert_eq!(c.endpoints, 1);
        assert_eq!(
            c.destination_rule.as_deref(),
            Some("DestinationRule/default/reviews")
        );
    }
    let ep: Vec<_> = doc.endpoints.iter().filter(|e| e.cluster == v1).collect();
    assert_eq!(ep.len(), 1, "{:#?}", doc.endpoints);
    assert_eq!(ep[0].address, "127.10.0.21:9080");
    assert!(ep[0].hbone);
    assert_eq!(
        ep[0].identity.as_deref(),
        Some("spiffe://cluster.local/ns/default/sa/bookinfo-reviews")
    );

    // Policies from the module's config.
    let viewer = doc
        .policies
        .iter()
        .find(|p| p.name == "productpage-viewer")
        .unwrap_or_else(|| panic!("no productpage-viewer in {:#?}", doc.policies));
    assert_eq!(viewer.action, "ALLOW");
    assert_eq!(
        viewer.targets,
        vec!["Service/default/productpage".to_string()]
    );

    // The certificate Envoy loaded, compared with its file; never key material.
    let leaf = doc
        .secrets
        .iter()
        .find(|s| s.kind == "cert_chain")
        .unwrap_or_else(|| panic!("no cert chain in {:#?}", doc.secrets));
    assert_eq!(
        leaf.identity.as_deref(),
        Some("spiffe://cluster.local/ns/default/sa/waypoint")
    );
    let pem = std::fs::read_to_string(&leaf.name).expect("Envoy names the certificate file");
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem");
    let (_, cert) = X509Certificate::from_der(&der).expect("x509");
    let serial: String = cert
        .raw_serial()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(leaf.serial, serial);
    assert_eq!(
        leaf.not_after,
        proxy_config::certs::rfc3339(cert.validity().not_after.timestamp())
    );
    assert!(
        doc.secrets.iter().any(|s| s.kind == "root"),
        "{:#?}",
        doc.secrets
    );
    let key_file = std::path::Path::new(&leaf.name).with_file_name("waypoint-key.pem");
    let key: Vec<String> = std::fs::read_to_string(&key_file)
        .expect("key file")
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(str::to_string)
        .collect();
    assert!(!key.is_empty());
    for format in [Format::Short, Format::Json, Format::Yaml] {
        let out = proxy_config::render(&doc, Section::All, format).expect("render");
        assert!(!out.contains("PRIVATE KEY"));
        assert!(
            !key.iter().any(|k| out.contains(k.as_str())),
            "key in {format:?}"
        );
    }

    // From another directory the relative config path is not found: said, not guessed.
    let elsewhere = fetch(admin, std::path::Path::new("/nonexistent-workdir")).await;
    assert!(elsewhere.routes.iter().all(|r| r.table == "envoy"));
    assert!(
        elsewhere
            .warnings
            .iter()
            .any(|w| w.contains("/nonexistent-workdir/examples/bookinfo")),
        "{:?}",
        elsewhere.warnings
    );
    assert!(!elsewhere.clusters.is_empty());
}

/// Under `waypoint xds` everything is dynamic: the module's manifests arrive inline over ECDS,
/// clusters over CDS with EDS endpoints, the certificate as SDS secrets `default` and `ROOTCA`.
#[test]
fn envoy_proxy_config_under_xds_reads_ecds_eds_and_sds() {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use waypoint_envoy_config::bootstrap::Inputs;
    use waypoint_envoy_config::xds::{server, Cache, Source};
    use waypoint_tests::envoy_harness::{scratch_dir, Envoy};

    let dir = scratch_dir("proxy-config-xds");
    let pki = Pki::new("cluster.local");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    let issued = pki.issue("default", "waypoint");
    for (from, to) in [
        (&issued.cert, "cert-chain.pem"),
        (&issued.key, "key.pem"),
        (&issued.roots, "root-cert.pem"),
    ] {
        std::fs::copy(from, certs.join(to)).expect("copy cert");
    }
    let inputs = Inputs {
        config: vec![repo_root().join("examples/bookinfo")],
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
    let local = |port: u16| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], port)) };
    let rebind = BTreeMap::from([
        ("connect_terminate".to_string(), local(free_port())),
        ("readiness".to_string(), local(free_port())),
        ("stats".to_string(), local(free_port())),
    ]);
    let source = Source {
        inputs: inputs.clone(),
        rebind,
        extra_listeners: Vec::new(),
    };
    let watched = source.watched();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let xds = rt
        .block_on(server::start(
            Cache::from_source(source),
            local(0),
            watched,
            Duration::from_millis(100),
        ))
        .expect("xds server");
    let admin = free_port();
    let yaml = waypoint_envoy_config::xds::render_bootstrap(&inputs, xds.addr, false)
        .expect("bootstrap")
        .replace("port_value: 15000", &format!("port_value: {admin}"));
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, yaml).expect("write bootstrap");
    let _envoy = Envoy::start(&path, admin, &repo_root()).unwrap_or_else(|e| panic!("{e}"));

    // Ready means the listeners are in; wait for the module's view as well (ECDS).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let doc = loop {
        let d = rt.block_on(fetch(admin, &repo_root()));
        if d.routes.iter().any(|r| r.table == "waypoint") {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no module routes: {:?}",
            d.warnings
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "{}",
        proxy_config::render(&doc, Section::All, Format::Short).expect("render")
    );
    assert!(doc.warnings.is_empty(), "{:?}", doc.warnings);
    let canary = doc
        .routes
        .iter()
        .find(|r| r.rule.as_deref() == Some("canary"))
        .expect("canary route");
    let weights: Vec<(Option<&str>, u32)> = canary
        .backends
        .iter()
        .map(|b| (b.subset.as_deref(), b.weight))
        .collect();
    assert_eq!(weights, vec![(Some("v1"), 90), (Some("v3"), 10)]);
    let v3 = format!("outbound|9080|v3|{REVIEWS}");
    let cluster = doc
        .clusters
        .iter()
        .find(|c| c.name == v3)
        .unwrap_or_else(|| panic!("no {v3} in {:#?}", doc.clusters));
    assert_eq!(cluster.endpoints, 1);
    let ep = doc
        .endpoints
        .iter()
        .find(|e| e.cluster == v3)
        .expect("v3 endpoint");
    assert_eq!(ep.address, "127.10.0.23:9080");
    assert!(ep.hbone);
    assert!(doc.policies.iter().any(|p| p.name == "reviews-viewer"));

    let named = |name: &str, kind: &str| {
        doc.secrets
            .iter()
            .find(|s| s.name == name && s.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} secret {name} in {:#?}", doc.secrets))
    };
    assert_eq!(
        named("default", "cert_chain").identity.as_deref(),
        Some("spiffe://cluster.local/ns/default/sa/waypoint")
    );
    named("ROOTCA", "root");
    let key: Vec<String> = std::fs::read_to_string(certs.join("key.pem"))
        .expect("key")
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(str::to_string)
        .collect();
    for format in [Format::Short, Format::Json, Format::Yaml] {
        let out = proxy_config::render(&doc, Section::All, format).expect("render");
        assert!(!out.contains("PRIVATE KEY"));
        assert!(
            !key.iter().any(|k| out.contains(k.as_str())),
            "key in {format:?}"
        );
    }
}
