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

/// The same scenario with the config served by `waypoint xds` (SotW ADS) to Envoy started
/// from `waypoint bootstrap --xds`: the sidecar clusters' certificates arrive over SDS.
#[test]
fn sidecar_pods_are_reached_with_istio_mtls_over_xds() {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;
    use waypoint_envoy_config::bootstrap::Inputs;
    use waypoint_envoy_config::xds::{server, Cache, Source};
    use waypoint_tests::envoy_harness::{free_port, repo_root, scratch_dir, Envoy};

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = Pki::new("cluster.local");
    let s = rt.block_on(Sidecars::setup(189, &pki));
    let dir = scratch_dir("xds-sidecar");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    let issued = pki.issue("default", "waypoint");
    for (from, to) in [
        (&issued.cert, "waypoint.pem"),
        (&issued.key, "waypoint-key.pem"),
        (&issued.roots, "ca.pem"),
    ] {
        std::fs::copy(from, certs.join(to)).expect("copy cert");
    }
    let config = dir.join("config.yaml");
    std::fs::write(&config, format!("{WAYPOINT_GATEWAY}{}", s.yaml)).expect("write config");
    let inputs = Inputs {
        config: vec![config],
        root: PathBuf::from("/"),
        namespace: "default".into(),
        waypoint: None,
        certs: waypoint_hbone::tls::CertPaths::find(&certs).expect("certificate files"),
        module_name: "waypoint".into(),
        trust_domain: "cluster.local".into(),
        originator: None,
        access_log: false,
        timeouts: Default::default(),
    };
    let hbone: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let source = Source {
        inputs: inputs.clone(),
        rebind: BTreeMap::from([
            ("connect_terminate".to_string(), hbone),
            (
                "readiness".to_string(),
                format!("127.0.0.1:{}", free_port()).parse().expect("addr"),
            ),
            (
                "stats".to_string(),
                format!("127.0.0.1:{}", free_port()).parse().expect("addr"),
            ),
        ]),
        extra_listeners: Vec::new(),
    };
    let watched = source.watched();
    let running = rt
        .block_on(server::start(
            Cache::from_source(source),
            "127.0.0.1:0".parse().expect("addr"),
            watched,
            Duration::from_millis(100),
        ))
        .expect("xds server");
    let admin = free_port();
    let yaml = waypoint_envoy_config::xds::render_bootstrap(&inputs, running.addr, false)
        .expect("bootstrap")
        .replace("port_value: 15000", &format!("port_value: {admin}"));
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, yaml).expect("write bootstrap");
    let envoy = Envoy::start(&path, admin, &repo_root()).unwrap_or_else(|e| panic!("{e}"));
    let p = Proxy {
        client: client(&pki, "default", "sleep"),
        addr: hbone,
    };
    let waypoint = pki.id("default", "waypoint").to_string();
    let outcome = rt.block_on(async move {
        // The listeners arrive over ADS after Envoy starts: wait for the first answer.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while waypoint_tests::traffic_policy::get(&p, "10.96.189.1:80", "/", &[])
            .await
            .is_err()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::spawn(async move { s.check(&p, &waypoint).await }).await
    });
    assert!(outcome.is_ok(), "{}", envoy.log_text());
    assert!(
        running.cache.nacks().is_empty(),
        "{:?}",
        running.cache.nacks()
    );
}
