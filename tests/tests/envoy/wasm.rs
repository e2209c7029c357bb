//! The proxy-wasm filter (filter/wasm) in real Envoy 1.40 on V8: the shared scenario suite
//! through it (what it cannot express is a visible SKIP), and the generated bootstrap with
//! `--filter wasm` validated by Envoy.

use crate::scenarios::{run_file, Filter};
use waypoint_tests::scenario;

#[test]
fn shared_scenarios_decide_the_same_through_the_wasm_filter() {
    let files = scenario::scenario_files();
    assert!(!files.is_empty(), "no scenario files");
    let mut failures = Vec::new();
    let mut ran = 0;
    for f in &files {
        match run_file(f, Filter::Wasm) {
            Ok(n) => {
                println!(
                    "{}: {n} cases matched the core through the Wasm filter",
                    f.display()
                );
                ran += n
            }
            Err(e) => failures.extend(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        ran >= 10,
        "only {ran} scenario cases ran through the Wasm filter"
    );
}

/// `waypoint bootstrap --filter wasm`: the module's place holds `envoy.filters.http.wasm`
/// with the manifests inline, and Envoy validates the whole bootstrap with the real `.wasm`.
#[test]
fn generated_bootstrap_with_the_wasm_filter_validates() {
    use std::path::PathBuf;
    use waypoint_envoy_config::bootstrap::{inline_manifests, load, render, Inputs, PolicyFilter};
    use waypoint_tests::envoy_harness::{repo_root, scratch_dir, validate, wasm_file};
    let inputs = Inputs {
        config: vec![PathBuf::from("examples/bookinfo")],
        root: repo_root(),
        namespace: "default".into(),
        waypoint: None,
        certs: waypoint_hbone::tls::CertPaths::find(&repo_root().join("envoy-configs/certs"))
            .expect("example certificates"),
        module_name: "waypoint".into(),
        trust_domain: "cluster.local".into(),
        originator: None,
        access_log: false,
        timeouts: Default::default(),
    };
    let mut l = load(&inputs).expect("bookinfo loads");
    let manifests = inline_manifests(&l.files).expect("manifests");
    l.options.filter = PolicyFilter::Wasm {
        file: wasm_file().display().to_string(),
        manifests: manifests.clone(),
        default_namespace: "default".into(),
    };
    let text = render(&l.snapshot, &l.options).expect("render");
    let boot: serde_json::Value = serde_yaml::from_str(&text).expect("YAML");
    let main = boot["static_resources"]["listeners"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == "main_internal"))
        .expect("main_internal");
    let filters = &main["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
    let wasm = &filters[0]["typed_config"];
    assert_eq!(
        wasm["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
    );
    assert_eq!(
        wasm["config"]["vm_config"]["runtime"],
        "envoy.wasm.runtime.v8"
    );
    let plugin: serde_json::Value = serde_json::from_str(
        wasm["config"]["configuration"]["value"]
            .as_str()
            .expect("plugin configuration"),
    )
    .expect("JSON");
    assert_eq!(plugin["config_inline"], manifests.as_str());
    assert_eq!(plugin["principal_from"], "filter_state");
    assert!(
        !text.contains("DynamicModuleFilter"),
        "the module is still configured"
    );
    let path = scratch_dir("wasm-bootstrap").join("bootstrap.yaml");
    std::fs::write(&path, &text).expect("write bootstrap");
    let out = validate(&path, &repo_root());
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "validation failed:\n{log}");
    // Validation runs the plugin's on_configure: the manifests compiled in the VM.
    assert!(
        log.contains("waypoint wasm: config loaded"),
        "the Wasm filter did not load its config:\n{log}"
    );
}
