//! Writes the Bazel files (MODULE.bazel, every crate's BUILD.bazel) from `cargo metadata`:
//! run after changing a Cargo.toml; tests/tests/deploy/bazel.rs fails until you do.

use std::path::Path;

use anyhow::{Context, Result};

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the tests crate sits in the workspace")?;
    let meta = waypoint_tests::bazel::metadata(root)?;
    let files = waypoint_tests::bazel::generate(&meta)?;
    let written = waypoint_tests::bazel::write(root, &files)?;
    if written.is_empty() {
        println!("Bazel files up to date ({} files)", files.len());
    }
    for path in written {
        println!("wrote {path}");
    }
    Ok(())
}
