//! Decision time of the policy core: bookinfo, and synthetic meshes with 1k and 10k routes
//! plus 1k policies. Reported by criterion, never asserted.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use waypoint_core::resource::parse_manifests;
use waypoint_core::{BuildOptions, Request, Snapshot, SplitMix64};

fn snapshot_from(text: &str) -> Snapshot {
    let (resources, errors) = parse_manifests(text, "bench", "default", 0);
    assert!(errors.is_empty(), "{errors:?}");
    let (snap, diags) = Snapshot::build(&resources, &BuildOptions::default());
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
    snap
}

fn bookinfo() -> Snapshot {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/bookinfo");
    let loaded = waypoint_loader::load_paths(&[root], "default");
    let (snap, diags) = Snapshot::build(&loaded.resources, &BuildOptions::default());
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
    snap
}

fn bench(c: &mut Criterion) {
    let snap = bookinfo();
    let headers = [("end-user", "jason"), ("user-agent", "bench")];
    let req = Request {
        method: "GET",
        scheme: "http",
        authority: "reviews:9080",
        path: "/reviews/1",
        headers: &headers,
        source_principal: Some("spiffe://cluster.local/ns/default/sa/bookinfo-productpage"),
        source_ip: None,
        destination: "10.96.0.12:9080",
        sni: None,
    };
    let mut rng = SplitMix64(1);
    c.bench_function("decide/bookinfo reviews jason", |b| {
        b.iter(|| black_box(snap.decide(black_box(&req), &mut rng, false).action))
    });
    let plain = [("user-agent", "bench")];
    let req_split = Request {
        headers: &plain,
        ..req
    };
    c.bench_function("decide/bookinfo reviews 90-10", |b| {
        b.iter(|| black_box(snap.decide(black_box(&req_split), &mut rng, false).action))
    });

    for (services, rules) in [(100usize, 10usize), (1000, 10)] {
        let snap = snapshot_from(&waypoint_benches::synthetic_mesh(services, rules, 1000));
        let headers = [("x-tenant", "t8")];
        let dest = format!(
            "10.100.{}.{}:80",
            (services / 2) / 256,
            (services / 2) % 256
        );
        let req = Request {
            method: "GET",
            scheme: "http",
            authority: "svc:80",
            path: "/r8/items",
            headers: &headers,
            source_principal: Some("spiffe://cluster.local/ns/bench/sa/client"),
            source_ip: None,
            destination: &dest,
            sni: None,
        };
        let name = format!(
            "decide/{} routes + {} policies",
            services * rules,
            services.min(1000)
        );
        c.bench_function(&name, |b| {
            b.iter(|| black_box(snap.decide(black_box(&req), &mut rng, false).action))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
