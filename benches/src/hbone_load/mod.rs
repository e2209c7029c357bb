//! An HBONE load generator, shaped like ztunnel's traffic: a few mutual-TLS HTTP/2 connections,
//! many CONNECT streams on each, HTTP/1.1 keep-alive requests inside every stream.
//!
//! Modes: closed loop (each stream sends its next request when the previous one is answered,
//! for a duration or a request count) and open loop (a fixed request rate on one shared
//! schedule; latency runs from each request's *intended* send time, so a waypoint that falls
//! behind shows it in the latency instead of hiding it: no coordinated omission, as wrk2).

mod conn;
mod cpu;
mod http1;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::time::Instant;
use waypoint_hbone::tls::{CertStore, Identity};

pub use conn::Tunnel;
pub use cpu::CpuSample;

/// What to load and how.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The waypoint's HBONE address.
    pub addr: SocketAddr,
    /// Our identity (certificate, key, mesh roots).
    pub store: Arc<CertStore>,
    /// Identities the waypoint may present (empty: any of our trust domain).
    pub expected: Vec<Identity>,
    /// CONNECT `:authority` (the service VIP, `ip:port`).
    pub authority: String,
    /// HTTP/1.1 `Host` and path of every request.
    pub host: String,
    pub path: String,
    /// HBONE connections, and CONNECT streams on each.
    pub conns: usize,
    pub streams: usize,
    pub mode: Mode,
}

/// How requests are paced.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Closed loop until `total` requests were answered (a bounded run, as in tests).
    Count { total: u64 },
    /// Closed loop for `duration` after `warmup` (saturation).
    Saturate {
        warmup: Duration,
        duration: Duration,
    },
    /// Open loop: `rps` requests per second on one schedule shared by every stream.
    Rate {
        rps: f64,
        warmup: Duration,
        duration: Duration,
    },
}

/// Counts and latencies of one run (the measured window only).
#[derive(Debug)]
pub struct Report {
    /// Responses 200 in the window.
    pub ok: u64,
    /// Responses with another status.
    pub non_200: u64,
    /// Failed exchanges: stream resets, I/O errors, malformed responses, refused CONNECTs.
    pub errors: u64,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Latency in µs (open loop: from the intended send time).
    pub latency: Histogram<u64>,
    /// Open loop: how late requests left against their schedule, µs.
    pub send_lag: Option<Histogram<u64>>,
    /// CPU over the window: this process, and the watched processes / CPUs.
    pub cpu: CpuSample,
}

impl Report {
    /// Requests per second answered (any status) in the window.
    pub fn rps(&self) -> f64 {
        (self.ok + self.non_200) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The one-line JSON summary.
    pub fn to_json(&self, cfg: &LoadConfig) -> serde_json::Value {
        let q = |h: &Histogram<u64>| {
            let ms = |v: u64| v as f64 / 1000.0;
            json!({
                "p50": ms(h.value_at_quantile(0.50)),
                "p90": ms(h.value_at_quantile(0.90)),
                "p99": ms(h.value_at_quantile(0.99)),
                "p999": ms(h.value_at_quantile(0.999)),
                "max": ms(h.max()),
                "mean": (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
            })
        };
        let (mode, target) = match cfg.mode {
            Mode::Count { .. } => ("count", None),
            Mode::Saturate { .. } => ("sat", None),
            Mode::Rate { rps, .. } => ("rate", Some(rps)),
        };
        json!({
            "mode": mode,
            "target_rps": target,
            "conns": cfg.conns,
            "streams_per_conn": cfg.streams,
            "seconds": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "requests": self.ok + self.non_200,
            "rps": self.rps().round(),
            "ok": self.ok,
            "non_200": self.non_200,
            "errors": self.errors,
            "latency_ms": q(&self.latency),
            "send_lag_ms": self.send_lag.as_ref().map(q),
            "cpu": self.cpu.to_json(),
        })
    }
}

/// One histogram in µs, up to 60 s, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// What every stream shares.
struct Shared {
    start: Instant,
    /// Responses after this count; the run ends at `end`.
    measure_from: Instant,
    end: Option<Instant>,
    /// Count mode: requests still to send. Rate mode: the next schedule slot.
    next: AtomicU64,
    total: u64,
    interval: Option<Duration>,
    ok: AtomicU64,
    non_200: AtomicU64,
    errors: AtomicU64,
}

/// Per-stream results, merged at the end.
struct StreamResult {
    latency: Histogram<u64>,
    send_lag: Histogram<u64>,
}

/// Run the load described by `cfg`; `watch` are processes whose CPU is sampled over the
/// measured window (the waypoint), besides this process and every CPU.
pub async fn run(cfg: &LoadConfig, watch: &[u32]) -> anyhow::Result<Report> {
    let request = Bytes::from(format!(
        "GET {} HTTP/1.1\r\nhost: {}\r\nuser-agent: hbone-load\r\n\r\n",
        cfg.path, cfg.host
    ));
    // Every connection and stream is up before the clock starts.
    let mut tunnels = Vec::with_capacity(cfg.conns * cfg.streams);
    let mut drivers = Vec::new();
    for _ in 0..cfg.conns {
        let (sender, driver) =
            conn::dial(cfg.addr, cfg.store.clone(), cfg.expected.clone()).await?;
        drivers.push(driver);
        for _ in 0..cfg.streams {
            tunnels.push(Tunnel::open(sender.clone(), &cfg.authority).await?);
        }
    }
    let now = Instant::now();
    let (warmup, duration, interval, total) = match cfg.mode {
        Mode::Count { total } => (Duration::ZERO, None, None, total),
        Mode::Saturate { warmup, duration } => (warmup, Some(duration), None, 0),
        Mode::Rate {
            rps,
            warmup,
            duration,
        } => {
            anyhow::ensure!(rps > 0.0, "the rate must be positive");
            (
                warmup,
                Some(duration),
                Some(Duration::from_secs_f64(1.0 / rps)),
                0,
            )
        }
    };
    let shared = Arc::new(Shared {
        start: now,
        measure_from: now + warmup,
        end: duration.map(|d| now + warmup + d),
        next: AtomicU64::new(0),
        total,
        interval,
        ok: AtomicU64::new(0),
        non_200: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let tasks: Vec<_> = tunnels
        .into_iter()
        .map(|t| tokio::spawn(stream_loop(t, request.clone(), shared.clone())))
        .collect();
    tokio::time::sleep_until(shared.measure_from).await;
    let before = CpuSample::take(watch);
    let t0 = Instant::now();
    let mut latency = histogram();
    let mut send_lag = histogram();
    for t in tasks {
        let r = t.await?;
        latency.add(&r.latency).ok();
        send_lag.add(&r.send_lag).ok();
    }
    let elapsed = t0.elapsed();
    let cpu = CpuSample::take(watch).since(&before, elapsed);
    drop(drivers);
    Ok(Report {
        ok: shared.ok.load(Ordering::Relaxed),
        non_200: shared.non_200.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
        elapsed,
        latency,
        send_lag: interval.map(|_| send_lag),
        cpu,
    })
}

/// One CONNECT stream: request, response, next request, until the run ends.
async fn stream_loop(mut tunnel: Tunnel, request: Bytes, s: Arc<Shared>) -> StreamResult {
    let mut res = StreamResult {
        latency: histogram(),
        send_lag: histogram(),
    };
    loop {
        // When this request should leave (open loop), or now (closed loop).
        let intended = match s.interval {
            Some(iv) => {
                let slot = s.next.fetch_add(1, Ordering::Relaxed);
                let at = s.start + iv.mul_f64(slot as f64);
                if s.end.is_some_and(|end| at >= end) {
                    break;
                }
                pace(at).await;
                at
            }
            None => {
                if s.total > 0 && s.next.fetch_add(1, Ordering::Relaxed) >= s.total {
                    break;
                }
                let now = Instant::now();
                if s.end.is_some_and(|end| now >= end) {
                    break;
                }
                now
            }
        };
        let sent = Instant::now();
        let r = tunnel.exchange(&request).await;
        let done = Instant::now();
        if intended < s.measure_from {
            if r.is_err() && !tunnel.reopen().await {
                break;
            }
            continue;
        }
        match r {
            Ok(200) => {
                s.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                s.non_200.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                s.errors.fetch_add(1, Ordering::Relaxed);
                tracing_free_log(&e);
                if !tunnel.reopen().await {
                    break;
                }
                continue;
            }
        }
        let us = |d: Duration| (d.as_micros() as u64).max(1);
        res.latency.saturating_record(us(done - intended));
        res.send_lag
            .saturating_record(us(sent.saturating_duration_since(intended)));
    }
    res
}

/// Wait until `at`: the timer for all but the last millisecond (tokio's timer has
/// millisecond granularity and fires late), then yield until the instant passes.
async fn pace(at: Instant) {
    let margin = Duration::from_millis(1);
    if at > Instant::now() + margin {
        tokio::time::sleep_until(at - margin).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// The first few errors go to stderr (the counts are in the report).
fn tracing_free_log(e: &anyhow::Error) {
    static SHOWN: AtomicU64 = AtomicU64::new(0);
    if SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("hbone-load: {e:#}");
    }
}
