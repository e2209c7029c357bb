//! `waypoint xds` figures (reported, never asserted): snapshot generation time for 1k and 10k
//! services (load + validate + generate + split + protobuf encode), and the bytes a delta push
//! carries for a one-route change.

use criterion::{criterion_group, criterion_main, Criterion};
use waypoint_benches::xds_fixture::{manifests, source};
use waypoint_envoy_config::xds::proto::ROUTE;
use waypoint_envoy_config::xds::Snapshot;

fn bench(c: &mut Criterion) {
    for n in [1_000usize, 10_000] {
        let dir =
            std::env::temp_dir().join(format!("waypoint-xds-bench-{n}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let config = dir.join("config.yaml");
        std::fs::write(&config, manifests(n, "svc0")).expect("write");
        let src = source(&dir);
        let before = src.build(None).expect("snapshot");

        // A one-route change: the HTTPRoute of svc0 now sends to svc1.
        std::fs::write(&config, manifests(n, "svc1")).expect("write");
        let after = src.build(None).expect("snapshot");
        let diff = after.diff(&before);
        let pushed: usize = diff.iter().map(|d| d.2).sum();
        let counts: Vec<usize> = after.types.values().map(|m| m.len()).collect();
        println!(
            "xds n={n}: {} resources ({counts:?} by type), full snapshot {} bytes; \
             one-route change pushes {} resource(s), {pushed} bytes: {:?}",
            counts.iter().sum::<usize>(),
            after.bytes(),
            diff.len(),
            diff.iter()
                .map(|d| (
                    waypoint_envoy_config::xds::proto::short(d.0),
                    d.1.as_str(),
                    d.2
                ))
                .collect::<Vec<_>>()
        );
        // A change to one RouteConfiguration (what RDS granularity costs): the readiness table.
        let mut json = src.json(None).expect("json");
        if let Some(rc) = json.get_mut(ROUTE).and_then(|m| m.get_mut("readiness")) {
            rc["virtual_hosts"][0]["name"] = serde_json::json!("readiness-2");
        }
        let one = Snapshot::encode(&json).expect("encode");
        let d: usize = one.diff(&after).iter().map(|d| d.2).sum();
        println!("xds n={n}: one RouteConfiguration change pushes {d} bytes");

        let mut g = c.benchmark_group("xds_snapshot");
        g.sample_size(10);
        g.bench_function(format!("build_{n}_services"), |b| {
            b.iter(|| src.build(None).expect("snapshot"))
        });
        g.finish();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
