//! CPU over a window: processes' user+system time from `/proc/PID/stat` (all threads; 10 ms
//! ticks) and every CPU's busy share from `/proc/stat`.

use std::time::Duration;

use serde_json::{json, Value};

/// Clock ticks per second of `/proc` times (`USER_HZ`, 100 on Linux).
const HZ: f64 = 100.0;

/// A snapshot, or (after [`CpuSample::since`]) the differences over a window.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    /// This process's CPU seconds (window: share of one core).
    pub own: f64,
    /// Watched processes: pid, CPU seconds (window: share of one core).
    pub pids: Vec<(u32, f64)>,
    /// Per CPU: (busy, total) ticks (window: busy share).
    pub cpus: Vec<(f64, f64)>,
}

fn proc_seconds(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / HZ)
}

fn cpu_ticks() -> Vec<(f64, f64)> {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    s.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<f64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: f64 = v.iter().take(8).sum();
            // idle + iowait are not busy.
            let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
            (total - idle, total)
        })
        .collect()
}

impl CpuSample {
    pub fn take(pids: &[u32]) -> Self {
        CpuSample {
            own: proc_seconds("self").unwrap_or(0.0),
            pids: pids
                .iter()
                .map(|p| (*p, proc_seconds(&p.to_string()).unwrap_or(0.0)))
                .collect(),
            cpus: cpu_ticks(),
        }
    }

    /// The window from `before` to this sample, `wall` long, as shares of one core.
    pub fn since(&self, before: &CpuSample, wall: Duration) -> CpuSample {
        let w = wall.as_secs_f64().max(1e-9);
        CpuSample {
            own: (self.own - before.own) / w,
            pids: self
                .pids
                .iter()
                .zip(&before.pids)
                .map(|((p, a), (_, b))| (*p, (a - b) / w))
                .collect(),
            cpus: self
                .cpus
                .iter()
                .zip(&before.cpus)
                .map(|((b1, t1), (b0, t0))| ((b1 - b0) / (t1 - t0).max(1.0), 1.0))
                .collect(),
        }
    }

    pub fn to_json(&self) -> Value {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        json!({
            "self": r(self.own),
            "pids": self.pids.iter().map(|(p, v)| (p.to_string(), json!(r(*v)))).collect::<serde_json::Map<_, _>>(),
            "cpu_busy": self.cpus.iter().map(|(b, _)| r(*b)).collect::<Vec<_>>(),
        })
    }
}
