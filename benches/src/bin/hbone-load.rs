//! hbone-load: drive an HBONE waypoint like ztunnel does (few connections, many CONNECT
//! streams, HTTP/1.1 keep-alive inside) and print one JSON line: req/s, latency, errors, CPU.
//!
//!   hbone-load --addr 127.0.0.1:15008 --cert-dir DIR --conns 1 --streams 64 --duration 10
//!   hbone-load ... --rate 1000 --streams 16            # open loop, latency from intended send
//! Pin it with `taskset`; it runs on one thread unless `--threads` says otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use waypoint_benches::hbone_load::{run, LoadConfig, Mode};
use waypoint_hbone::tls::{certs, CertPaths, CertStore, Identity};

#[derive(Debug, Parser)]
#[command(about = "HBONE load generator (closed-loop saturation or open-loop fixed rate)")]
struct Args {
    /// The waypoint's HBONE address.
    #[arg(long, default_value = "127.0.0.1:15008")]
    addr: SocketAddr,
    /// Directory with the client certificate: `<name>.crt`, `<name>.key` and `root.pem` (the
    /// shared harness's layout).
    #[arg(long)]
    cert_dir: PathBuf,
    /// Certificate name inside --cert-dir.
    #[arg(long, default_value = "client")]
    cert_name: String,
    /// SPIFFE identity the waypoint must present (default: any of our trust domain).
    #[arg(long)]
    expect: Option<String>,
    /// CONNECT authority (the service VIP).
    #[arg(long, default_value = "10.96.0.10:9080")]
    authority: String,
    /// HTTP Host header (default: the authority).
    #[arg(long)]
    host: Option<String>,
    #[arg(long, default_value = "/")]
    path: String,
    /// HBONE connections.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// CONNECT streams per connection (ztunnel: up to 100).
    #[arg(long, default_value_t = 64)]
    streams: usize,
    /// Open loop at this many requests per second (default: closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Closed loop until this many requests are answered (instead of --duration).
    #[arg(long)]
    requests: Option<u64>,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Worker threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Processes whose CPU share over the window is reported (the waypoint).
    #[arg(long, value_delimiter = ',')]
    watch_pid: Vec<u32>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let paths = CertPaths {
        cert: a.cert_dir.join(format!("{}.crt", a.cert_name)),
        key: a.cert_dir.join(format!("{}.key", a.cert_name)),
        roots: a.cert_dir.join("root.pem"),
    };
    let store = CertStore::new(certs::load(&paths)?)?;
    let expected = match &a.expect {
        Some(id) => vec![id
            .parse::<Identity>()
            .map_err(|e| anyhow::anyhow!("--expect {id}: {e}"))?],
        None => Vec::new(),
    };
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let mode = match (a.requests, a.rate) {
        (Some(total), _) => Mode::Count { total },
        (None, Some(rps)) => Mode::Rate {
            rps,
            warmup: secs(a.warmup),
            duration: secs(a.duration),
        },
        (None, None) => Mode::Saturate {
            warmup: secs(a.warmup),
            duration: secs(a.duration),
        },
    };
    let cfg = LoadConfig {
        addr: a.addr,
        store,
        expected,
        host: a.host.clone().unwrap_or_else(|| a.authority.clone()),
        authority: a.authority,
        path: a.path,
        conns: a.conns,
        streams: a.streams,
        mode,
    };
    let rt = match a.threads {
        0 | 1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .context("tokio runtime")?;
    let report = rt.block_on(run(&cfg, &a.watch_pid))?;
    println!("{}", report.to_json(&cfg));
    Ok(())
}
