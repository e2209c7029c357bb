//! Runs the bookinfo decision (reviews, jason) N times for instruction counting:
//! `valgrind --tool=callgrind target/release/examples/decide_loop N`; per decision =
//! (total at N − total at 0) / N (`benches/core-instructions.sh`). Reported, never asserted.

use std::hint::black_box;
use std::path::Path;

use waypoint_core::resource::parse_manifests;
use waypoint_core::{BuildOptions, Request, Snapshot, SplitMix64};

/// Every manifest under `dir`, concatenated as one multi-document YAML stream.
fn read_tree(dir: &Path, out: &mut String) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            read_tree(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml") {
            if let Ok(text) = std::fs::read_to_string(&p) {
                out.push_str("\n---\n");
                out.push_str(&text);
            }
        }
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bookinfo");
    let mut text = String::new();
    read_tree(&root, &mut text);
    let (resources, errors) = parse_manifests(&text, "bookinfo", "default", 0);
    assert!(errors.is_empty(), "{errors:?}");
    let (snap, diags) = Snapshot::build(&resources, &BuildOptions::default());
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
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
    let d = snap.decide(&req, &mut rng, false);
    assert!(
        d.forward.is_some(),
        "bookinfo jason must route: {:?}",
        d.action
    );
    for _ in 0..n {
        black_box(snap.decide(black_box(&req), &mut rng, false).action);
    }
}
