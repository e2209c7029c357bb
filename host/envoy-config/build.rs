//! Build script: copy envoy-types' protobuf descriptor set (`src/generated/types.bin`, shipped
//! in the crate) into OUT_DIR so `xds::proto` can encode Envoy resources from JSON.

use std::path::PathBuf;

/// Must match the `=` pin of envoy-types in Cargo.toml.
const ENVOY_TYPES: &str = "envoy-types-0.7.7";

fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("WAYPOINT_ENVOY_DESCRIPTORS") {
        out.push(PathBuf::from(p));
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = home {
        if let Ok(rd) = std::fs::read_dir(home.join("registry/src")) {
            for e in rd.flatten() {
                out.push(e.path().join(ENVOY_TYPES).join("src/generated/types.bin"));
            }
        }
    }
    // Vendored sources (`cargo vendor`) next to the workspace.
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        let ws = PathBuf::from(dir).join("..");
        out.push(
            ws.join("..")
                .join("vendor")
                .join("envoy-types/src/generated/types.bin"),
        );
        out.push(
            ws.join("..")
                .join("vendor")
                .join(ENVOY_TYPES)
                .join("src/generated/types.bin"),
        );
    }
    out
}

fn main() {
    println!("cargo:rerun-if-env-changed=WAYPOINT_ENVOY_DESCRIPTORS");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let found = candidates().into_iter().find(|p| p.is_file());
    let Some(src) = found else {
        panic!(
            "cannot find {ENVOY_TYPES}/src/generated/types.bin in the cargo registry; \
             set WAYPOINT_ENVOY_DESCRIPTORS to its path"
        );
    };
    println!("cargo:rerun-if-changed={}", src.display());
    std::fs::copy(&src, out.join("envoy_descriptors.bin"))
        .unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
}
