//! Outlier detection as Envoy does it for a DestinationRule's `outlierDetection`: count
//! consecutive 5xx / gateway errors per endpoint, eject for `baseEjectionTime × times
//! ejected`, only while the ejected stay within `maxEjectionPercent` of the endpoints.

// FxHash: keys are upstream addresses from config, not client input, and SipHash was
// ≈ 1 % of the instructions per request.
use rustc_hash::FxHashMap as HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use waypoint_core::route::OutlierDetection;

use crate::upstream::Target;

/// Istio's defaults when `outlierDetection` is present but a field is not.
const DEFAULT_CONSECUTIVE_5XX: u32 = 5;
const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(30);
const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;

#[derive(Debug, Default, Clone)]
struct HostState {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    ejected_until: Option<Instant>,
    times_ejected: u32,
}

/// What one attempt ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Status(u16),
    /// Connect failure, reset or timeout (a locally originated gateway error).
    LocalFailure,
}

/// Per-endpoint outlier state, shared by all requests.
#[derive(Debug, Default)]
pub struct Outliers {
    hosts: Mutex<HashMap<SocketAddr, HostState>>,
}

impl Outliers {
    pub fn new() -> Self {
        Self::default()
    }

    fn is_ejected(state: Option<&HostState>, now: Instant) -> bool {
        state
            .and_then(|s| s.ejected_until)
            .is_some_and(|until| until > now)
    }

    /// Move ejected endpoints to the back (Envoy's panic mode keeps them if all are out).
    pub fn order(&self, targets: &mut [Target]) {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        targets.sort_by_key(|t| Self::is_ejected(hosts.get(&t.addr), now));
    }

    /// Whether `addr` is ejected now.
    pub fn ejected(&self, addr: SocketAddr) -> bool {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        Self::is_ejected(hosts.get(&addr), Instant::now())
    }

    /// Record an attempt on `addr`, one of `peers` (the service's endpoints), under `od`.
    pub fn record(
        &self,
        od: &OutlierDetection,
        addr: SocketAddr,
        peers: &[SocketAddr],
        result: AttemptResult,
    ) {
        let now = Instant::now();
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let (is_5xx, is_gateway) = match result {
            AttemptResult::Status(s) => (s >= 500, matches!(s, 502..=504)),
            AttemptResult::LocalFailure => (true, true),
        };
        let ejected_now = peers
            .iter()
            .filter(|p| **p != addr && Self::is_ejected(hosts.get(p), now))
            .count();
        let state = hosts.entry(addr).or_default();
        if !is_5xx {
            state.consecutive_5xx = 0;
            state.consecutive_gateway = 0;
            return;
        }
        state.consecutive_5xx += 1;
        if is_gateway {
            state.consecutive_gateway += 1;
        } else {
            state.consecutive_gateway = 0;
        }
        let limit_5xx = od.consecutive_5xx_errors.unwrap_or(DEFAULT_CONSECUTIVE_5XX);
        let trip = (limit_5xx > 0 && state.consecutive_5xx >= limit_5xx)
            || od
                .consecutive_gateway_errors
                .is_some_and(|g| g > 0 && state.consecutive_gateway >= g);
        if !trip || Self::is_ejected(Some(state), now) {
            return;
        }
        let max_pct = od
            .max_ejection_percent
            .unwrap_or(DEFAULT_MAX_EJECTION_PERCENT);
        // Envoy `ejectHost`: only if the ejected, this one included, stay within the percent.
        if 100 * (ejected_now as u64 + 1) > u64::from(max_pct) * peers.len().max(1) as u64 {
            return;
        }
        state.times_ejected += 1;
        let base = od.base_ejection_time.unwrap_or(DEFAULT_BASE_EJECTION);
        state.ejected_until = Some(now + base.saturating_mul(state.times_ejected));
        state.consecutive_5xx = 0;
        state.consecutive_gateway = 0;
        tracing::info!(endpoint = %addr, for_ms = (base.saturating_mul(state.times_ejected)).as_millis() as u64, "outlier detection: endpoint ejected");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn od(c5: Option<u32>, gw: Option<u32>, pct: Option<u32>) -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx_errors: c5,
            consecutive_gateway_errors: gw,
            interval: None,
            base_ejection_time: Some(Duration::from_secs(60)),
            max_ejection_percent: pct,
        }
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn ejects_after_consecutive_errors_and_resets_on_success() {
        let o = Outliers::new();
        let peers = [a("10.0.0.1:80"), a("10.0.0.2:80")];
        let p = od(Some(2), None, Some(100));
        o.record(&p, peers[0], &peers, AttemptResult::Status(500));
        o.record(&p, peers[0], &peers, AttemptResult::Status(200));
        o.record(&p, peers[0], &peers, AttemptResult::Status(500));
        assert!(
            !o.ejected(peers[0]),
            "a success in between resets the count"
        );
        o.record(&p, peers[0], &peers, AttemptResult::LocalFailure);
        assert!(o.ejected(peers[0]));
        let mut ts = vec![Target::plain(peers[0]), Target::plain(peers[1])];
        o.order(&mut ts);
        assert_eq!(ts[0].addr, peers[1], "ejected endpoint goes last");
    }

    #[test]
    fn gateway_errors_and_ejection_cap() {
        let o = Outliers::new();
        let peers = [a("10.0.0.1:80"), a("10.0.0.2:80"), a("10.0.0.3:80")];
        // Only gateway errors count; 5xx limit disabled with 0.
        let p = od(Some(0), Some(1), Some(34));
        o.record(&p, peers[0], &peers, AttemptResult::Status(500));
        assert!(!o.ejected(peers[0]), "500 is not a gateway error");
        o.record(&p, peers[0], &peers, AttemptResult::Status(503));
        assert!(o.ejected(peers[0]));
        // Envoy: one of three is 33 % > 10 %: never ejected.
        let p10 = od(Some(0), Some(1), Some(10));
        o.record(&p10, peers[1], &peers, AttemptResult::Status(502));
        assert!(!o.ejected(peers[1]));
        // 40 %: one (33 %) may be, a second (67 %) not.
        let p40 = od(Some(0), Some(1), Some(40));
        o.record(&p40, peers[2], &peers, AttemptResult::Status(502));
        assert!(!o.ejected(peers[2]), "peers[0] is already out");
    }
}
