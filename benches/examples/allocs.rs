//! Counts heap allocations per decision on the bookinfo example (reported, not asserted):
//! `cargo run --release -p waypoint-benches --example allocs`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use waypoint_core::{BuildOptions, Request, Snapshot, SplitMix64};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/bookinfo");
    let loaded = waypoint_loader::load_paths(&[root], "default");
    let (snap, _) = Snapshot::build(&loaded.resources, &BuildOptions::default());
    let mut rng = SplitMix64(1);
    for (name, headers) in [
        ("reviews jason", &[("end-user", "jason")][..]),
        ("reviews 90-10", &[][..]),
    ] {
        let req = Request {
            method: "GET",
            scheme: "http",
            authority: "reviews:9080",
            path: "/reviews/1",
            headers,
            source_principal: Some("spiffe://cluster.local/ns/default/sa/bookinfo-productpage"),
            source_ip: None,
            destination: "10.96.0.12:9080",
            sni: None,
        };
        let _ = snap.decide(&req, &mut rng, false);
        let before = ALLOCS.load(Ordering::Relaxed);
        let n = 10_000;
        for _ in 0..n {
            std::hint::black_box(snap.decide(&req, &mut rng, false).action);
        }
        let per = (ALLOCS.load(Ordering::Relaxed) - before) as f64 / n as f64;
        println!("{name}: {per:.2} allocations per decision");
    }
}
