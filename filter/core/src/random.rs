//! Injected randomness for weighted splits and percentages.
//! Tests and `waypoint explain --seed` fix it; the data paths use a fast per-thread generator.

/// A source of uniformly distributed random numbers.
pub trait RandomSource {
    /// Next 64 random bits.
    fn next_u64(&mut self) -> u64;

    /// Uniform integer in `0..n` (`n > 0`); returns 0 for `n == 0`.
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift: unbiased enough for weights up to 2^32.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `percent / 100` (percent clamped to 0..=100).
    fn chance(&mut self, percent: f64) -> bool {
        if percent >= 100.0 {
            return true;
        }
        if percent <= 0.0 {
            return false;
        }
        // Resolution of 1e-6 percent, as Envoy's FractionalPercent MILLION.
        let threshold = (percent * 10_000.0) as u64;
        self.below(1_000_000) < threshold
    }
}

/// SplitMix64: tiny, fast, deterministic for a given seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl RandomSource for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_in_range_and_spread() {
        let mut r = SplitMix64(7);
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            let v = r.below(10);
            assert!(v < 10);
            counts[v as usize] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn chance_edges() {
        let mut r = SplitMix64(1);
        assert!(r.chance(100.0));
        assert!(!r.chance(0.0));
        let hits = (0..10_000).filter(|_| r.chance(10.0)).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }
}
