//! Envoy's token bucket as pure arithmetic: a bucket's state and the time in, allow or deny
//! and what the x-ratelimit headers report out. The caller owns the state and the clock.

use std::time::Duration;

/// A token bucket's shape (`type.v3.TokenBucket`): starts full, holds at most `max_tokens`,
/// refills `tokens_per_fill` every `fill_interval`, continuously (Envoy's atomic bucket: a
/// token comes back every `fill_interval / tokens_per_fill`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenBucket {
    pub max_tokens: u32,
    pub tokens_per_fill: u32,
    pub fill_interval: Duration,
}

/// The mutable state of one bucket. Levels are in token·nanoseconds-of-interval units so the
/// arithmetic is exact: one token is `fill_interval` (in ns) units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    level: u128,
    /// The time of the last update (the caller's clock, from any fixed origin).
    last: Duration,
}

/// What one request got from a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Whole tokens left after this request.
    pub remaining: u32,
    /// Seconds until the next token comes back (0 when the bucket is full), rounded up.
    pub reset_seconds: u64,
}

impl TokenBucket {
    fn unit(&self) -> u128 {
        self.fill_interval.as_nanos().max(1)
    }

    fn capacity(&self) -> u128 {
        u128::from(self.max_tokens) * self.unit()
    }

    /// A full bucket at time `now`.
    pub fn full(&self, now: Duration) -> BucketState {
        BucketState {
            level: self.capacity(),
            last: now,
        }
    }

    /// Refill `state` up to `now` (a clock going backwards refills nothing).
    fn refill(&self, state: &mut BucketState, now: Duration) {
        if now > state.last {
            let elapsed = (now - state.last).as_nanos();
            let added = elapsed.saturating_mul(u128::from(self.tokens_per_fill));
            state.level = state.level.saturating_add(added).min(self.capacity());
            state.last = now;
        }
    }

    /// Take one token at `now` if there is one.
    pub fn consume(&self, state: &mut BucketState, now: Duration) -> Verdict {
        self.refill(state, now);
        let allowed = state.level >= self.unit();
        if allowed {
            state.level -= self.unit();
        }
        self.report(state, allowed)
    }

    /// What the bucket holds at `now`, without taking a token.
    pub fn peek(&self, state: &mut BucketState, now: Duration) -> Verdict {
        self.refill(state, now);
        let allowed = state.level >= self.unit();
        self.report(state, allowed)
    }

    fn report(&self, state: &BucketState, allowed: bool) -> Verdict {
        let unit = self.unit();
        let remaining = u32::try_from(state.level / unit).unwrap_or(u32::MAX);
        let reset_seconds = if state.level >= self.capacity() || self.tokens_per_fill == 0 {
            0
        } else {
            // Time until the level reaches the next whole token.
            let next = (state.level / unit + 1) * unit;
            let ns = (next - state.level).div_ceil(u128::from(self.tokens_per_fill));
            u64::try_from(ns.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
        };
        Verdict {
            allowed,
            remaining,
            reset_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn bucket(max: u32, per_fill: u32, interval_ms: u64) -> TokenBucket {
        TokenBucket {
            max_tokens: max,
            tokens_per_fill: per_fill,
            fill_interval: Duration::from_millis(interval_ms),
        }
    }

    #[test]
    fn a_full_bucket_allows_max_tokens_then_denies() {
        let b = bucket(3, 3, 1000);
        let mut s = b.full(Duration::ZERO);
        let got: Vec<(bool, u32)> = (0..4)
            .map(|_| {
                let v = b.consume(&mut s, Duration::ZERO);
                (v.allowed, v.remaining)
            })
            .collect();
        assert_eq!(got, [(true, 2), (true, 1), (true, 0), (false, 0)]);
    }

    #[test]
    fn tokens_come_back_at_the_fill_rate_and_never_above_max() {
        let b = bucket(2, 2, 1000);
        let mut s = b.full(Duration::ZERO);
        assert!(b.consume(&mut s, Duration::ZERO).allowed);
        assert!(b.consume(&mut s, Duration::ZERO).allowed);
        let denied = b.consume(&mut s, 100 * MS);
        assert!(!denied.allowed);
        // One token every 500 ms: 400 ms more to go, rounded up to a second.
        assert_eq!(denied.reset_seconds, 1);
        assert!(!b.consume(&mut s, 499 * MS).allowed);
        assert!(b.consume(&mut s, 500 * MS).allowed);
        assert!(!b.consume(&mut s, 500 * MS).allowed);
        // A long pause refills to max_tokens, not beyond.
        let v = b.peek(&mut s, Duration::from_secs(60));
        assert_eq!((v.remaining, v.reset_seconds), (2, 0));
        assert!(b.consume(&mut s, Duration::from_secs(60)).allowed);
        assert!(b.consume(&mut s, Duration::from_secs(60)).allowed);
        assert!(!b.consume(&mut s, Duration::from_secs(60)).allowed);
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() {
        let b = bucket(1, 1, 1000);
        let mut s = b.full(Duration::from_secs(10));
        assert!(b.consume(&mut s, Duration::from_secs(10)).allowed);
        assert!(!b.consume(&mut s, Duration::from_secs(5)).allowed);
        assert!(!b.consume(&mut s, Duration::from_millis(10_999)).allowed);
        assert!(b.consume(&mut s, Duration::from_secs(11)).allowed);
    }

    #[test]
    fn reset_counts_whole_seconds_up_to_the_next_token() {
        let b = bucket(10, 1, 60_000);
        let mut s = b.full(Duration::ZERO);
        for _ in 0..10 {
            assert!(b.consume(&mut s, Duration::ZERO).allowed);
        }
        let v = b.consume(&mut s, Duration::from_secs(1));
        assert_eq!((v.allowed, v.remaining, v.reset_seconds), (false, 0, 59));
    }
}
