//! Where `waypoint xds` snapshot time goes for N services (N from argv, default 10000):
//! config load + validation, bootstrap generation, the xDS split, protobuf encoding.

use std::time::Instant;

use waypoint_benches::xds_fixture::{manifests, source};
use waypoint_envoy_config::xds::resources::{split, SplitOptions};
use waypoint_envoy_config::xds::Snapshot;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("waypoint-xds-phases-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("config.yaml"), manifests(n, "svc0")).expect("write");
    let src = source(&dir);
    // The load, split in its two parts (bootstrap::load does both).
    let t = Instant::now();
    let raw = waypoint_loader::load_paths(&src.inputs.config, "default");
    let t_parse = t.elapsed();
    let t = Instant::now();
    let _ = waypoint_core::Snapshot::build(&raw.resources, &waypoint_core::BuildOptions::default());
    let t_core = t.elapsed();
    let t = Instant::now();
    let loaded = waypoint_envoy_config::bootstrap::load(&src.inputs).expect("load");
    let t_load = t.elapsed();
    let t = Instant::now();
    let generated = waypoint_envoy_config::bootstrap::generate(&loaded.snapshot, &loaded.options);
    let t_gen = t.elapsed();
    let t = Instant::now();
    let read = |p: &str| std::fs::read_to_string(p);
    let json = split(&generated, &SplitOptions::default(), &read).expect("split");
    let t_split = t.elapsed();
    let t = Instant::now();
    let snap = Snapshot::encode(&json).expect("encode");
    let t_encode = t.elapsed();
    println!(
        "n={n}: load+validate {t_load:?} (parse {t_parse:?}, core Snapshot::build {t_core:?}), generate {t_gen:?}, split {t_split:?}, encode {t_encode:?} ({} bytes)",
        snap.bytes()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
