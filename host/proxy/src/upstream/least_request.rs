//! Envoy's LEAST_REQUEST balancing (power of two choices): of two random endpoints, the one
//! with fewer requests in flight goes first. Counts are kept per endpoint address.

// FxHash: keys are upstream addresses from config, not client input, and SipHash was
// ≈ 1 % of the instructions per request.
use rustc_hash::FxHashMap as HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use waypoint_core::RandomSource;

use crate::upstream::Target;

/// In-flight request counts per endpoint.
#[derive(Debug, Default)]
pub struct ActiveRequests {
    counts: Mutex<HashMap<SocketAddr, usize>>,
}

/// Decrements the endpoint's count when dropped.
#[derive(Debug)]
pub struct ActiveGuard {
    owner: Arc<ActiveRequests>,
    addr: SocketAddr,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut c = self.owner.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = c.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(&self.addr);
            }
        }
    }
}

impl ActiveRequests {
    /// Count one request to `addr` until the guard is dropped.
    pub fn start(self: &Arc<Self>, addr: SocketAddr) -> ActiveGuard {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(addr)
            .or_default() += 1;
        ActiveGuard {
            owner: self.clone(),
            addr,
        }
    }

    pub fn active(&self, addr: SocketAddr) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&addr)
            .copied()
            .unwrap_or(0)
    }

    /// Put the less loaded of two random candidates first (the rest keep their order).
    pub fn pick(&self, targets: &mut [Target], rng: &mut dyn RandomSource) {
        let n = targets.len();
        if n < 2 {
            return;
        }
        let a = rng.below(n as u64) as usize;
        let mut b = rng.below(n as u64 - 1) as usize;
        if b >= a {
            b += 1;
        }
        let best = if self.active(targets[b].addr) < self.active(targets[a].addr) {
            b
        } else {
            a
        };
        targets[..=best].rotate_right(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_core::SplitMix64;

    #[test]
    fn busy_endpoint_is_avoided() {
        let active = Arc::new(ActiveRequests::default());
        let a: SocketAddr = "10.0.0.1:80".parse().expect("addr");
        let b: SocketAddr = "10.0.0.2:80".parse().expect("addr");
        let guards: Vec<_> = (0..5).map(|_| active.start(a)).collect();
        let mut rng = SplitMix64(3);
        for _ in 0..20 {
            let mut ts = vec![Target::plain(a), Target::plain(b)];
            active.pick(&mut ts, &mut rng);
            assert_eq!(ts[0].addr, b);
            assert_eq!(ts.len(), 2);
        }
        drop(guards);
        assert_eq!(active.active(a), 0);
    }
}
