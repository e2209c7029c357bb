//! The global rate limit filter's counters under Envoy's names: `cluster.<route's cluster>.
//! ratelimit.{ok,over_limit,error,failure_mode_allowed}`, in Prometheus as Envoy 1.40 writes
//! them (see [`prometheus_name`]).

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
        // One family per metric name, each sample under it.
        let mut families: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
        for (cluster, c) in m.iter() {
            for (i, name) in NAMES.iter().enumerate() {
                let (metric, tag) = prometheus_name(cluster, name);
                families.entry(metric).or_default().push((tag, c[i]));
            }
        }
        for (metric, samples) in families {
            let _ = writeln!(out, "# TYPE {metric} counter");
            for (tag, v) in samples {
                let t = tag.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(out, "{metric}{{envoy_cluster_name=\"{t}\"}} {v}");
            }
        }
        out
    }
}

/// Envoy's Prometheus name and `envoy_cluster_name` tag of `cluster.<cluster>.ratelimit.<name>`:
/// its tag extractor takes the cluster name up to its first dot, so the rest of an Istio
/// cluster name (`outbound|80||front.default.svc.cluster.local`) lands in the metric name,
/// non-alphanumerics as `_` (measured on Envoy 1.40: `envoy_cluster_default_svc_cluster_local_
/// ratelimit_ok{envoy_cluster_name="outbound|80||front"}`).
pub fn prometheus_name(cluster: &str, name: &str) -> (String, String) {
    let (tag, rest) = match cluster.split_once('.') {
        Some((t, r)) => (t, format!("{r}.ratelimit.{name}")),
        None => (cluster, format!("ratelimit.{name}")),
    };
    let metric: String = format!("envoy_cluster_{rest}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    (metric, tag.to_string())
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
        s.record(
            "outbound|80||front.default.svc.cluster.local",
            RlsResult::Ok,
        );
        assert!(s.encode().contains(
            "envoy_cluster_default_svc_cluster_local_ratelimit_ok{envoy_cluster_name=\"outbound|80||front\"} 1"
        ));
    }
}
