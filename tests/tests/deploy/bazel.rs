//! The Bazel files against Cargo: regenerated from `cargo metadata` in memory, they must equal
//! what is committed (every crate and target, crate roots, editions, features, dependencies).

use std::path::Path;

use waypoint_tests::bazel;

#[test]
fn bazel_files_match_cargo_metadata() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root");
    let meta = bazel::metadata(root).expect("cargo metadata");
    let files = bazel::generate(&meta).expect("generate Bazel files");
    // The two targets an Envoy build needs are there, whatever else changes.
    assert!(files["filter/envoy/BUILD.bazel"].contains("name = \"libwaypoint\""));
    assert!(files["host/cli/BUILD.bazel"].contains("rust_binary(\n    name = \"waypoint\""));
    let stale = bazel::drift(root, &files);
    assert!(
        stale.is_empty(),
        "Bazel files out of step with Cargo: {stale:?}; run `{}` and commit the result",
        bazel::REGENERATE
    );
}
