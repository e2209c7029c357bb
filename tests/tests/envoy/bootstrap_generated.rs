//! The committed bootstraps in envoy-configs/generated/ match what `waypoint bootstrap` writes
//! now (no drift), and every generated bootstrap passes `envoy --mode validate` with the module.

use std::path::{Path, PathBuf};

use waypoint_envoy_config::bootstrap::{from_config, Inputs};
use waypoint_hbone::tls::CertPaths;
use waypoint_tests::envoy_harness::{repo_root, scratch_dir, validate};

/// Fixed certificate directory of the committed bootstraps (as mounted in a deployment).
const CERTS: &str = "/etc/waypoint/certs";

/// Address of the local HBONE originator in the committed originator bootstrap.
const ORIGINATOR: &str = "127.0.0.1:15009";

/// (committed file, config paths relative to the repository root, with `--originator`).
const GENERATED: &[(&str, &[&str], bool)] = &[
    (
        "envoy-configs/generated/bookinfo.yaml",
        &["examples/bookinfo"],
        false,
    ),
    (
        "envoy-configs/generated/bookinfo-originator.yaml",
        &["examples/bookinfo"],
        true,
    ),
];

fn regenerate(config: &[&str], originator: bool) -> String {
    let inputs = Inputs {
        config: config.iter().map(PathBuf::from).collect(),
        root: repo_root(),
        namespace: "default".into(),
        waypoint: None,
        certs: CertPaths::from_dir(Path::new(CERTS)),
        module_name: "waypoint".into(),
        trust_domain: "cluster.local".into(),
        originator: originator.then(|| ORIGINATOR.parse().expect("address")),
        access_log: false,
        timeouts: Default::default(),
    };
    from_config(&inputs).unwrap_or_else(|e| panic!("bootstrap for {config:?}: {e:#}"))
}

#[test]
fn generated_bootstraps_have_no_drift() {
    for (file, config, originator) in GENERATED {
        let path = repo_root().join(file);
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let fresh = regenerate(config, *originator);
        if committed != fresh {
            let diff: Vec<String> = committed
                .lines()
                .zip(fresh.lines())
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .take(10)
                .map(|(n, (a, b))| format!("line {}:\n  - {a}\n  + {b}", n + 1))
                .collect();
            let diff = if diff.is_empty() {
                vec!["(the common lines agree; one file has extra lines at the end)".to_string()]
            } else {
                diff
            };
            panic!(
                "{file} is out of date ({} committed lines, {} generated); first differences:\n{}\n\
                 Regenerate with: cargo run -p waypoint-cli -- bootstrap --config {} --certs {CERTS} --unchecked-certs{} > {file}",
                committed.lines().count(),
                fresh.lines().count(),
                diff.join("\n"),
                config.join(" --config "),
                if *originator { format!(" --originator {ORIGINATOR}") } else { String::new() }
            );
        }
    }
}

#[test]
fn generated_bootstraps_validate() {
    let certs =
        CertPaths::find(&repo_root().join("envoy-configs/certs")).expect("example certificates");
    let committed = CertPaths::from_dir(Path::new(CERTS));
    let dir = scratch_dir("bootstrap");
    for (file, config, originator) in GENERATED {
        // The committed certificate paths exist only in a deployment: point them at the
        // example certificates; everything else is validated exactly as generated.
        let mut text = regenerate(config, *originator);
        for (from, to) in committed.all().iter().zip(certs.all()) {
            text = text.replace(&from.display().to_string(), &to.display().to_string());
        }
        let name = file.rsplit('/').next().unwrap_or("bootstrap.yaml");
        let path = dir.join(name);
        std::fs::write(&path, &text).expect("write bootstrap");
        let out = validate(&path, &repo_root());
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{file} failed validation:\n{log}");
        assert!(
            log.contains("waypoint filter waypoint: config loaded"),
            "{file}: the module did not load its config:\n{log}"
        );
    }
}

/// The bookinfo bootstrap has Istio's waypoint shape: the listeners and ports, admin on
/// loopback, the SPIFFE check on :15008, and mesh pods reached over HBONE.
#[test]
fn bookinfo_bootstrap_has_the_waypoint_shape() {
    let text = regenerate(&["examples/bookinfo"], false);
    let boot: serde_json::Value = serde_yaml::from_str(&text).expect("YAML");
    assert_eq!(
        boot["admin"]["address"]["socket_address"],
        serde_json::json!({"address": "127.0.0.1", "port_value": 15000})
    );
    let listeners = boot["static_resources"]["listeners"]
        .as_array()
        .expect("listeners");
    let port_of = |name: &str| {
        listeners
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("no listener {name}"))["address"]["socket_address"]
            ["port_value"]
            .as_u64()
    };
    assert_eq!(port_of("connect_terminate"), Some(15008));
    assert_eq!(port_of("readiness"), Some(15021));
    assert_eq!(port_of("stats"), Some(15020));
    assert_eq!(port_of("main_internal"), None, "main_internal is internal");
    let term = listeners
        .iter()
        .find(|l| l["name"] == "connect_terminate")
        .expect("connect_terminate");
    let tls = &term["filter_chains"][0]["transport_socket"]["typed_config"];
    assert_eq!(tls["require_client_certificate"], true);
    assert_eq!(
        tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]
            ["matcher"]["prefix"],
        "spiffe://cluster.local/"
    );
    // reviews v2 (pod 127.10.0.22, in the mesh) is reached through its originating listener,
    // which tunnels to the pod's :15008 with the pod's target address as the authority.
    let clusters = boot["static_resources"]["clusters"]
        .as_array()
        .expect("clusters");
    let v2 = clusters
        .iter()
        .find(|c| c["name"] == "outbound|9080|v2|reviews.default.svc.cluster.local")
        .expect("reviews v2 cluster");
    let eps = v2["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .expect("endpoints");
    assert_eq!(eps.len(), 1);
    assert_eq!(
        eps[0]["endpoint"]["address"]["envoy_internal_address"]["server_listener_name"],
        "connect_originate|127.10.0.22:9080"
    );
    let orig = listeners
        .iter()
        .find(|l| l["name"] == "connect_originate|127.10.0.22:9080")
        .expect("originating listener");
    let proxy = &orig["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(proxy["cluster"], "hbone|127.10.0.22");
    assert_eq!(proxy["tunneling_config"]["hostname"], "127.10.0.22:9080");
    let hbone = clusters
        .iter()
        .find(|c| c["name"] == "hbone|127.10.0.22")
        .expect("hbone cluster");
    assert_eq!(
        hbone["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"]["port_value"],
        15008
    );
}

/// With `--originator`, mesh pods are reached through the local originator: the originating
/// listener restores the pod address with `original_dst` and proxies raw TCP to a cluster
/// that writes a PROXY v2 header (with the pod identity TLV) to the originator.
#[test]
fn originator_bootstrap_hands_mesh_pods_to_the_originator() {
    let text = regenerate(&["examples/bookinfo"], true);
    assert!(text.contains(&format!("waypoint originate --listen {ORIGINATOR}")));
    let boot: serde_json::Value = serde_yaml::from_str(&text).expect("YAML");
    let listeners = boot["static_resources"]["listeners"]
        .as_array()
        .expect("listeners");
    let clusters = boot["static_resources"]["clusters"]
        .as_array()
        .expect("clusters");
    let orig = listeners
        .iter()
        .find(|l| l["name"] == "connect_originate|127.10.0.22:9080")
        .expect("originating listener");
    assert_eq!(
        orig["listener_filters"][0]["name"],
        "envoy.filters.listener.original_dst"
    );
    let proxy = &orig["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(proxy["cluster"], "originate|127.10.0.22");
    assert!(proxy.get("tunneling_config").is_none());
    let v2 = clusters
        .iter()
        .find(|c| c["name"] == "outbound|9080|v2|reviews.default.svc.cluster.local")
        .expect("reviews v2 cluster");
    assert_eq!(
        v2["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["metadata"]["filter_metadata"]
            ["envoy.filters.listener.original_dst"]["local"],
        "127.10.0.22:9080"
    );
    let c = clusters
        .iter()
        .find(|c| c["name"] == "originate|127.10.0.22")
        .expect("originator cluster");
    assert_eq!(
        c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"]["port_value"],
        15009
    );
    let pp = &c["transport_socket"]["typed_config"]["config"];
    assert_eq!(pp["version"], "V2");
    assert_eq!(pp["added_tlvs"][0]["type"], 0xE0);
    assert!(
        !clusters
            .iter()
            .any(|c| c["name"].as_str().is_some_and(|n| n.starts_with("hbone|"))),
        "no Envoy-side HBONE clusters with the originator"
    );
}
