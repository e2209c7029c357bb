//! The global rate limit filter's counters under Envoy's names: `cluster.<route's cluster>.
//! ratelimit.{ok,over_limit,error,failure_mode_allowed}`, in Prometheus
//! `envoy_cluster_ratelimit_<name>{envoy_cluster_name="..."}`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// One counter of a service call's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlsResult {
    Ok = 0,
    OverLimit = 1,
    Error = 2,
    /// An error let through (`failure_mode_deny: false`); counted with [`RlsResult::Error`].
    FailureModeAllowed = 3,
}

const NAMES: [&str; 4] = ["ok", "over_limit", "error", "failure_mode_allowed"];
/// Cluster names come from config; more than this many and new ones are not counted.
const MAX_CLUSTERS: usize = 1024;

/// Counters by the route's cluster.
#[derive(Debug, Default)]
pub struct GlobalRateLimitStats(Mutex<BTreeMap<String, [u64; 4]>>);

impl GlobalRateLimitStats {
    /// Count one result for `cluster`.
    pub fn record(&self, cluster: &str, r: RlsResult) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_CLUSTERS && !m.contains_key(cluster) {
            return;
        }
        m.entry(cluster.to_string()).or_default()[r as usize] += 1;
    }

    /// One counter's value (0 when never counted).
    pub fn get(&self, cluster: &str, name: &str) -> u64 {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match (m.get(cluster), NAMES.iter().position(|n| *n == name)) {
            (Some(c), Some(i)) => c[i],
            _ => 0,
        }
    }

    /// Prometheus text, as Envoy exposes these counters.
    pub fn encode(&self) -> String {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if m.is_empty() {
            return out;
        }
        for (i, name) in NAMES.iter().enumerate() {
            let _ = writeln!(out, "# TYPE envoy_cluster_ratelimit_{name} counter");
            for (cluster, c) in m.iter() {
                let cl = cluster.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(
                    out,
                    "envoy_cluster_ratelimit_{name}{{envoy_cluster_name=\"{cl}\"}} {}",
                    c[i]
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_count_under_envoy_names() {
        let s = GlobalRateLimitStats::default();
        s.record("outbound|80||a", RlsResult::Ok);
        s.record("outbound|80||a", RlsResult::OverLimit);
        s.record("outbound|80||a", RlsResult::Error);
        s.record("outbound|80||a", RlsResult::FailureModeAllowed);
        s.record("outbound|80||a", RlsResult::Ok);
        assert_eq!(NAMES.map(|n| s.get("outbound|80||a", n)), [2, 1, 1, 1]);
        assert!(s
            .encode()
            .contains("envoy_cluster_ratelimit_ok{envoy_cluster_name=\"outbound|80||a\"} 2"));
    }
}
