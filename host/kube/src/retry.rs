//! How long a failed list or watch waits before relisting: 0.5 s doubling to 10 s, each delay
//! shortened by up to 20 % so replicas do not relist in step; back to 0.5 s after any event.
//!
//! Not kube's `DefaultBackoff` (client-go's 0.8 s → 30 s): its jitter *adds* up to the whole
//! delay, so after an API server outage a watcher could wait a minute before noticing it was
//! back, and the waypoint served stale config that long. A waypoint lists ~15 kinds: at the
//! 10 s cap that is 1.5 requests per second per replica against a struggling API server.

use std::time::Duration;

/// The first delay.
pub const BASE: Duration = Duration::from_millis(500);
/// The longest delay.
pub const CAP: Duration = Duration::from_secs(10);
const JITTER: f64 = 0.2;

/// Exponential backoff with downward jitter.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The delay before the next attempt; `r` in `[0, 1)` picks the jitter.
    pub fn next_with(&mut self, r: f64) -> Duration {
        let full = BASE
            .saturating_mul(2u32.saturating_pow(self.attempt.min(16)))
            .min(CAP);
        self.attempt = self.attempt.saturating_add(1);
        full.mul_f64(1.0 - JITTER * r.clamp(0.0, 1.0))
    }

    /// The delay before the next attempt, with random jitter.
    pub fn next_delay(&mut self) -> Duration {
        use std::hash::{BuildHasher, Hasher};
        // std's per-process random hash keys: enough randomness for jitter.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(u64::from(self.attempt));
        self.next_with((h.finish() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// Back to [`BASE`] (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let full: Vec<_> = (0..8).map(|_| b.next_with(0.0).as_millis()).collect();
        assert_eq!(full, [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
        b.reset();
        assert_eq!(b.next_with(0.0), BASE);
        // Jitter only shortens, by at most 20 %.
        let mut b = Backoff::default();
        for _ in 0..40 {
            let d = b.next_delay();
            assert!(d <= CAP && d >= BASE.mul_f64(0.8), "{d:?}");
        }
        assert_eq!(Backoff::default().next_with(0.999_9).as_millis(), 400);
    }
}
