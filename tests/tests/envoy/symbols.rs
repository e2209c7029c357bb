//! Envoy 1.40 opens modules with RTLD_NOW: every `envoy_dynamic_module_callback_*` symbol that
//! libwaypoint.so imports must be exported by the pinned envoy binary, or the load fails.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use waypoint_tests::envoy_harness::{envoy_binary, module_dir};

fn dynamic_symbols(file: &Path, which: &str) -> BTreeSet<String> {
    let out = Command::new("nm")
        .args(["-D", which])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("`nm` (binutils) is required for this test: {e}"));
    assert!(
        out.status.success(),
        "nm {which} {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|s| s.split('@').next().unwrap_or(s).to_string())
        .collect()
}

#[test]
fn every_imported_callback_is_exported_by_envoy() {
    let envoy = envoy_binary();
    let module = module_dir().join("libwaypoint.so");
    let imported: BTreeSet<String> = dynamic_symbols(&module, "--undefined-only")
        .into_iter()
        .filter(|s| s.starts_with("envoy_dynamic_module_callback_"))
        .collect();
    assert!(
        imported.len() >= 10,
        "expected the module to import Envoy callbacks, found {imported:?}"
    );
    let exported = dynamic_symbols(&envoy, "--defined-only");
    let missing: Vec<&String> = imported.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "libwaypoint.so imports callbacks that {} does not export (Envoy would refuse to load it): {missing:?}",
        envoy.display()
    );
}

#[test]
fn module_exports_every_hook_envoy_requires() {
    // The 21 hooks Envoy 1.40.0 resolves when creating an HTTP filter config.
    let required = [
        "envoy_dynamic_module_on_program_init",
        "envoy_dynamic_module_on_http_filter_config_new",
        "envoy_dynamic_module_on_http_filter_config_destroy",
        "envoy_dynamic_module_on_http_filter_new",
        "envoy_dynamic_module_on_http_filter_request_headers",
        "envoy_dynamic_module_on_http_filter_request_body",
        "envoy_dynamic_module_on_http_filter_request_trailers",
        "envoy_dynamic_module_on_http_filter_response_headers",
        "envoy_dynamic_module_on_http_filter_response_body",
        "envoy_dynamic_module_on_http_filter_response_trailers",
        "envoy_dynamic_module_on_http_filter_stream_complete",
        "envoy_dynamic_module_on_http_filter_destroy",
        "envoy_dynamic_module_on_http_filter_http_callout_done",
        "envoy_dynamic_module_on_http_filter_http_stream_headers",
        "envoy_dynamic_module_on_http_filter_http_stream_data",
        "envoy_dynamic_module_on_http_filter_http_stream_trailers",
        "envoy_dynamic_module_on_http_filter_http_stream_complete",
        "envoy_dynamic_module_on_http_filter_http_stream_reset",
        "envoy_dynamic_module_on_http_filter_scheduled",
        "envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark",
        "envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark",
    ];
    let module = module_dir().join("libwaypoint.so");
    let exported = dynamic_symbols(&module, "--defined-only");
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|h| !exported.contains(*h))
        .collect();
    assert!(
        missing.is_empty(),
        "libwaypoint.so lacks hooks: {missing:?}"
    );
}
