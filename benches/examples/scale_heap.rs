//! Where the host's memory goes for N services of the scale mesh (`scale_heap N`, default
//! 10000): live heap bytes (a counting allocator) after each step of a config load.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use waypoint_core::{BuildOptions, Snapshot};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn mb(b: usize) -> String {
    format!("{:.1} MB", b as f64 / 1048576.0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let text = waypoint_benches::scale_mesh::manifests(n);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let loaded = waypoint_loader::load_text(&text, "mesh.yaml", "default");
    let parsed = LIVE.load(Ordering::Relaxed) - base;
    let parse_peak = PEAK.load(Ordering::Relaxed) - base;
    let (snap, _) = Snapshot::build(&loaded.resources, &BuildOptions::default());
    let both = LIVE.load(Ordering::Relaxed) - base;
    let build_peak = PEAK.load(Ordering::Relaxed) - base;
    let resources = loaded.resources.len();
    drop(loaded);
    let snap_only = LIVE.load(Ordering::Relaxed) - base;
    println!(
        "n={n} ({} of YAML, {resources} resources): raw resources {} ({} B each; parse peak {}), \
         snapshot {} ({} B per service; build peak {})",
        mb(text.len()),
        mb(parsed),
        parsed / resources.max(1),
        mb(parse_peak),
        mb(snap_only),
        snap_only / n.max(1),
        mb(build_peak),
    );
    let _ = (both, snap);
    // The snapshot's share of each kind: built again with the kinds added one by one.
    let loaded = waypoint_loader::load_text(&text, "mesh.yaml", "default");
    let mut kinds = vec!["Gateway"];
    let mut before = 0;
    for k in ["Service", "Pod", "HTTPRoute", "AuthorizationPolicy"] {
        kinds.push(k);
        let subset: Vec<_> = loaded
            .resources
            .iter()
            .filter(|r| kinds.contains(&r.kind.as_str()))
            .cloned()
            .collect();
        let start = LIVE.load(Ordering::Relaxed);
        let (snap, _) = Snapshot::build(&subset, &BuildOptions::default());
        let size = LIVE.load(Ordering::Relaxed) - start;
        println!(
            "  snapshot with {k}s added: {} (+{} B per service)",
            mb(size),
            size.saturating_sub(before) / n.max(1)
        );
        before = size;
        drop(snap);
    }
}
