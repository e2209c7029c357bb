//! The local rate limit filter's counters under Envoy's names
//! (`envoy_http_local_rate_limit_{enabled,enforced,rate_limited,ok}` by stat prefix).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use waypoint_core::ratelimit::LimitOutcome;

/// Counters of one stat prefix: enabled, enforced, rate_limited, ok.
type Counts = [u64; 4];
const NAMES: [&str; 4] = ["enabled", "enforced", "rate_limited", "ok"];
/// Stat prefixes come from config; more than this many and new ones are not counted.
const MAX_PREFIXES: usize = 256;

/// Counters by stat prefix.
#[derive(Debug, Default)]
pub struct RateLimitStats(Mutex<BTreeMap<String, Counts>>);

impl RateLimitStats {
    /// Count one filter's outcome for a request.
    pub fn record(&self, prefix: &str, o: &LimitOutcome) {
        if !o.enabled {
            return;
        }
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_PREFIXES && !m.contains_key(prefix) {
            return;
        }
        let c = m.entry(prefix.to_string()).or_default();
        c[0] += 1;
        if o.enforced {
            c[1] += 1;
        }
        if o.limited {
            c[2] += 1;
        } else {
            c[3] += 1;
        }
    }

    /// One counter's value (0 when never counted).
    pub fn get(&self, prefix: &str, name: &str) -> u64 {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let i = NAMES.iter().position(|n| *n == name);
        match (m.get(prefix), i) {
            (Some(c), Some(i)) => c[i],
            _ => 0,
        }
    }

    /// Prometheus text, as Envoy exposes these counters (the prefix as a tag).
    pub fn encode(&self) -> String {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if m.is_empty() {
            return out;
        }
        for (i, name) in NAMES.iter().enumerate() {
            let _ = writeln!(out, "# TYPE envoy_http_local_rate_limit_{name} counter");
            for (prefix, c) in m.iter() {
                let p = prefix.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(
                    out,
                    "envoy_http_local_rate_limit_{name}{{envoy_local_http_ratelimit_prefix=\"{p}\"}} {}",
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
    fn outcomes_count_under_envoy_names() {
        let s = RateLimitStats::default();
        let o = |enabled, limited, enforced| LimitOutcome {
            enabled,
            limited,
            enforced,
            x_ratelimit: None,
        };
        s.record("p", &o(true, false, false));
        s.record("p", &o(true, true, true));
        s.record("p", &o(false, false, false));
        assert_eq!(
            NAMES.map(|n| s.get("p", n)),
            [2, 1, 1, 1],
            "enabled, enforced, rate_limited, ok"
        );
        let text = s.encode();
        assert!(text.contains(
            "envoy_http_local_rate_limit_rate_limited{envoy_local_http_ratelimit_prefix=\"p\"} 1"
        ));
    }
}
