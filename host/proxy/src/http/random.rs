//! Randomness for one request: weighted splits, fault percentages, load balancing and retry
//! jitter draw from a fresh, cheap source.

use waypoint_core::RandomSource;

/// A fresh random source per request.
pub fn rng() -> waypoint_core::SplitMix64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    waypoint_core::SplitMix64(nanos ^ COUNTER.fetch_add(0x9E37_79B9, Ordering::Relaxed))
}

/// A uniform draw in `[0, 1)`.
pub fn unit() -> f64 {
    (rng().next_u64() >> 11) as f64 / (1u64 << 53) as f64
}
