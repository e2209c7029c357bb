//! Loopback benchmark of the standalone host: requests/s and p50/p99 latency of HTTP/1.1 GETs
//! over HBONE through the waypoint, next to the same load straight to the upstream (the
//! ceiling), plus the process's peak RSS. Usage: `wp-hbone-bench [SECONDS] [CONCURRENCY]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use waypoint_hbone::HboneClient;
use waypoint_tests::echo::http_echo;
use waypoint_tests::hbone_client::{collect, get, http1_over, tunnel};
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::TestWaypoint;

type Sender = hyper::client::conn::http1::SendRequest<waypoint_tests::echo::Body>;

/// Run `conc` keep-alive senders for `secs`; return latencies in microseconds.
async fn load(senders: Vec<Sender>, secs: u64) -> Vec<u64> {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for mut s in senders {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < end {
                let t = Instant::now();
                let Ok(resp) = s.send_request(get("echo", "/bench")).await else {
                    break;
                };
                if collect(resp).await.map(|r| r.status).ok() != Some(200) {
                    break;
                }
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all.sort_unstable();
    all
}

fn report(name: &str, lat: &[u64], secs: u64) -> f64 {
    let rps = lat.len() as f64 / secs as f64;
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{name:<8} {:>9.0} req/s  p50 {:>6} us  p99 {:>6} us  ({} requests)",
        rps,
        pct(0.50),
        pct(0.99),
        lat.len()
    );
    rps
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let conc: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let pki = Pki::new("cluster.local");
    let echo = http_echo("127.0.0.1:0".parse()?, "echo").await;
    let wp = TestWaypoint::start(&pki, "", 15008).await;
    let rss_before = peak_rss_kib();

    let mut direct = Vec::new();
    for _ in 0..conc {
        let tcp = tokio::net::TcpStream::connect(echo.addr).await?;
        let (s, c) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(c);
        direct.push(s);
    }
    let base = report("direct", &load(direct, secs).await, secs);

    let client: Arc<HboneClient> = HboneClient::new(pki.store("default", "sleep"));
    let mut via = Vec::new();
    for _ in 0..conc {
        let s = tunnel(&client, wp.running.hbone_addr, &[], &echo.addr.to_string()).await?;
        via.push(http1_over(s).await?);
    }
    let hbone = report("waypoint", &load(via, secs).await, secs);
    println!(
        "ratio    {:.2} of direct; peak RSS {} KiB (client, waypoint and upstream in one process; {} KiB before load); {conc} streams on {} HBONE connection(s)",
        if base > 0.0 { hbone / base } else { 0.0 },
        peak_rss_kib(),
        rss_before,
        client.connections_opened()
    );
    Ok(())
}
