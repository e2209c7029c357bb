//! `waypoint demo`: the whole bookinfo mesh on loopback in one process (dev CA, backends
//! behind HBONE on their pod IPs, the waypoint, workload clients) with a per-phase summary.

mod backends;
mod traffic;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dev_ca::DevCa;
use anyhow::Context;
use http::Method;
use waypoint_hbone::tls::{certs, CertPaths, CertStore, Identity};
use waypoint_hbone::HboneClient;
use waypoint_proxy::run::{start, RunOptions};

use traffic::{Call, Caller, Tally};

const TRUST_DOMAIN: &str = "cluster.local";
const NAMESPACE: &str = "default";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bookinfo manifests (pods on 127.10.0.0/16).
    #[arg(
        long = "config",
        value_name = "PATH",
        default_value = "examples/bookinfo"
    )]
    config: Vec<PathBuf>,
    /// Requests productpage sends to reviews in the canary phase.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Requests sent as the user jason.
    #[arg(long, default_value_t = 20)]
    jason_requests: usize,
    /// Concurrent tunnels per phase.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Port the backends accept HBONE on at their pod IPs (15008 in a cluster).
    #[arg(long, default_value_t = 15008)]
    mesh_port: u16,
}

/// What to try after the demo (the README's "Try it" section).
const NEXT: &str = "\nnext:
  waypoint explain --config examples/bookinfo --request 'GET http://reviews:9080/reviews/1' -H 'end-user: jason' \\
      --source-principal spiffe://cluster.local/ns/default/sa/bookinfo-productpage   # one decision, explained
  waypoint dev-ca --out /tmp/mesh --workload default/waypoint
  waypoint run --config examples/bookinfo --certs /tmp/mesh/default.waypoint        # the waypoint alone
  waypoint curl --as default/notsleep http://productpage:9080/productpage           # a request through it (second terminal)
(`make install` puts `waypoint` on your PATH; docs/cli.md has every flag)";

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("waypoint-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One expected outcome, checked and printed.
#[derive(Default)]
struct Checks {
    failed: Vec<String>,
    passed: usize,
}

impl Checks {
    fn expect(&mut self, ok: bool, what: impl Into<String>) {
        if ok {
            self.passed += 1;
        } else {
            self.failed.push(what.into());
        }
    }
}

fn issue(ca: &DevCa, dir: &Path, sa: &str) -> anyhow::Result<(Identity, Arc<CertStore>)> {
    let id = Identity::new(TRUST_DOMAIN, NAMESPACE, sa);
    let wdir = ca.write_workload(dir, &id)?;
    let store = CertStore::new(certs::load(&CertPaths::from_dir(&wdir))?)?;
    Ok((id, store))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

pub fn main(args: Args) -> anyhow::Result<()> {
    // `waypoint=off`: the binary reports the demo's error itself on stderr (it was printed
    // twice, once as a log line). Colours only on a terminal.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,waypoint=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = rt.block_on(demo(args));
    // Tunnels still draining are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_secs(2));
    let checks = result?;
    if checks.failed.is_empty() {
        say(&format!(
            "demo: all {} expected outcomes seen; everything shut down cleanly",
            checks.passed
        ));
        say(NEXT);
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} expected outcomes not seen: {}",
            checks.failed.len(),
            checks.failed.len() + checks.passed,
            checks.failed.join("; ")
        )
    }
}

async fn demo(args: Args) -> anyhow::Result<Checks> {
    let t0 = Instant::now();
    let mut checks = Checks::default();

    // (1) A dev CA and the waypoint's certificate.
    let tmp = TempDir::new()?;
    let ca = DevCa::load_or_generate(&tmp.0, TRUST_DOMAIN)?;
    let (waypoint_id, _) = issue(&ca, &tmp.0, "waypoint")?;
    let waypoint_dir = tmp.0.join(format!("{NAMESPACE}.waypoint"));

    // (2) The waypoint, on ephemeral loopback ports, dialling pods on the mesh port.
    let mut opts = RunOptions::new(args.config.clone(), CertPaths::from_dir(&waypoint_dir));
    opts.hbone_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    opts.ready_addr = None;
    opts.stats_addr = None;
    opts.admin_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    opts.hbone_upstream_port = args.mesh_port;
    let running = start(opts).await?;
    let Some(state) = running.config.current() else {
        let errors = running.config.last_errors();
        anyhow::bail!(
            "the config in {:?} was rejected: {}",
            args.config,
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        );
    };
    let registry = &state.policy.snapshot.registry;
    say(&format!(
        "[1/6] dev CA in {}; waypoint {} on {} (admin {}), config {} ({} resources)",
        tmp.0.display(),
        waypoint_id,
        running.hbone_addr,
        running
            .admin_addr
            .map_or_else(|| "off".into(), |a| a.to_string()),
        args.config
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        state.resources.len()
    ));

    // (3) The bookinfo backends at their pod IPs.
    let mut backends = Vec::new();
    for pod in backends::pods(registry) {
        let (_, store) = issue(&ca, &tmp.0, &pod.service_account)?;
        backends.push(backends::start(pod, args.mesh_port, store).await?);
    }
    anyhow::ensure!(
        !backends.is_empty(),
        "the config has no mesh pods to run (see examples/bookinfo/base/services.yaml)"
    );
    say(&format!(
        "[2/6] {} backends behind HBONE: {}",
        backends.len(),
        backends
            .iter()
            .map(|b| format!("{} {}", b.pod.name, b.addr))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    // (4) Workload clients.
    let vip = |name: &str| -> anyhow::Result<(String, String)> {
        let svc = registry
            .services
            .iter()
            .find(|s| s.name == name && s.namespace == NAMESPACE)
            .with_context(|| format!("service {NAMESPACE}/{name} not in the config"))?;
        let ip = svc
            .vips
            .first()
            .with_context(|| format!("service {NAMESPACE}/{name} has no clusterIP"))?;
        let port = svc.ports.first().map_or(80, |p| p.port);
        Ok((
            SocketAddr::new(*ip, port).to_string(),
            format!("{name}:{port}"),
        ))
    };
    let caller = |sa: &str| -> anyhow::Result<Caller> {
        let (_, store) = issue(&ca, &tmp.0, sa)?;
        Ok(Caller {
            name: sa.to_string(),
            client: HboneClient::new(store),
            waypoint: running.hbone_addr,
            waypoint_id: waypoint_id.clone(),
        })
    };
    let call = |svc: &str, method: Method, path: &str| -> anyhow::Result<Call> {
        let (vip, host) = vip(svc)?;
        Ok(Call {
            vip,
            host,
            method,
            path: path.to_string(),
            headers: vec![],
        })
    };
    let productpage = caller("bookinfo-productpage")?;
    let reviews = caller("bookinfo-reviews")?;
    let curl = caller("curl")?;
    let notsleep = caller("notsleep")?;

    // jason's ratings call waits out a 7 s fault delay: start it now, read it in phase 5.
    let mut jason_ratings = call("ratings", Method::GET, "/ratings/0")?;
    jason_ratings.headers.push(("end-user", "jason"));
    let slow = {
        let reviews = reviews.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            (reviews.once(&jason_ratings).await, t.elapsed())
        })
    };

    // Phase: the 90/10 canary.
    let canary = call("reviews", Method::GET, "/reviews/0")?;
    let live = std::io::stdout().is_terminal();
    let n = args.requests;
    let t = burst_with_progress(&productpage, &canary, n, args.concurrency, live).await;
    say(&format!(
        "[3/6] reviews canary: {n} GET {} as {} -> {}",
        canary.vip,
        productpage.name,
        t.line()
    ));
    let (v1, v3) = (t.get("reviews-v1"), t.get("reviews-v3"));
    checks.expect(
        v1 + v3 == n,
        format!("canary: every answer from reviews-v1 or -v3 ({})", t.line()),
    );
    checks.expect(v1 > 0 && v3 > 0, "canary: both v1 and v3 served");
    let share = v1 as f64 * 100.0 / n.max(1) as f64;
    // Three standard deviations of a binomial share: 3 * sqrt(0.9 * 0.1 / n) * 100.
    let tolerance = 90.0 / (n.max(1) as f64).sqrt();
    checks.expect(
        (share - 90.0).abs() <= tolerance.max(2.0),
        format!("canary: v1 share {share:.1}% within {tolerance:.1} points of 90%"),
    );

    // Phase: jason gets v2.
    let mut as_jason = canary.clone();
    as_jason.headers.push(("end-user", "jason"));
    let j = traffic::burst(
        &productpage,
        &as_jason,
        args.jason_requests,
        args.concurrency,
        |_| {},
    )
    .await;
    say(&format!(
        "[4/6] reviews as jason: {} GET with end-user: jason -> {}",
        args.jason_requests,
        j.line()
    ));
    checks.expect(
        j.get("reviews-v2") == args.jason_requests,
        format!("jason: all to reviews-v2 ({})", j.line()),
    );

    // Phase: ratings, and jason's fault.
    let ok = reviews
        .once(&call("ratings", Method::GET, "/ratings/0")?)
        .await;
    let (faulted, took) = slow.await.context("the jason ratings task")?;
    let show = |a: &anyhow::Result<traffic::Answer>| match a {
        Ok(a) => format!(
            "{}{}",
            a.status,
            a.served_by
                .as_ref()
                .map_or_else(String::new, |s| format!(" from {s}"))
        ),
        Err(e) => format!("error: {e:#}"),
    };
    say(&format!(
        "[5/6] ratings as {}: GET -> {}; with end-user: jason -> {} after {:.1}s (fault: 7s delay + abort 500)",
        reviews.name,
        show(&ok),
        show(&faulted),
        took.as_secs_f64()
    ));
    checks.expect(
        matches!(&ok, Ok(a) if a.status == 200 && a.served_by.as_deref() == Some("ratings-v1")),
        "ratings: 200 from ratings-v1",
    );
    checks.expect(
        matches!(&faulted, Ok(a) if a.status == 500 && a.served_by.is_none()),
        "ratings: jason aborted with 500 by the waypoint",
    );
    checks.expect(took >= Duration::from_secs(6), "ratings: jason delayed ~7s");

    // Phase: authorization.
    let pp = |m: Method, path: &str| call("productpage", m, path);
    let cases: [(&Caller, Call, u16, &str); 4] = [
        (&curl, pp(Method::GET, "/productpage")?, 200, "allowed"),
        (
            &notsleep,
            pp(Method::GET, "/productpage")?,
            403,
            "denied: not a viewer",
        ),
        (
            &curl,
            pp(Method::POST, "/productpage")?,
            403,
            "denied: GET only",
        ),
        (&curl, pp(Method::GET, "/admin")?, 403, "denied: /admin"),
    ];
    let mut parts = Vec::new();
    for (who, c, want, why) in &cases {
        let a = who.once(c).await;
        let got = a.as_ref().map(|a| a.status).ok();
        parts.push(format!(
            "\n      {} {} {} -> {} ({why})",
            who.name,
            c.method,
            c.path,
            show(&a)
        ));
        checks.expect(
            got == Some(*want),
            format!(
                "productpage: {} {} {} is {want}",
                who.name, c.method, c.path
            ),
        );
    }
    say(&format!("[6/6] productpage policy:{}", parts.concat()));

    let peers: Vec<String> = backends
        .iter()
        .flat_map(|b| b.seen.peers.lock().map(|p| p.clone()).unwrap_or_default())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let served: usize = backends
        .iter()
        .map(|b| b.seen.requests.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    say(&format!(
        "backends served {served} requests, all from {} (the waypoint); {:.1}s in total",
        peers.join(", "),
        t0.elapsed().as_secs_f64()
    ));
    checks.expect(
        peers == vec![waypoint_id.to_string()],
        format!("backends only see the waypoint's identity ({peers:?})"),
    );

    // Shut down: backends first, then the waypoint; the temp dir goes last.
    for b in backends {
        b.stop().await;
    }
    drop(running);
    drop(tmp);
    Ok(checks)
}

/// The canary burst with a live `\r` progress line on a terminal.
async fn burst_with_progress(
    caller: &Caller,
    call: &Call,
    n: usize,
    concurrency: usize,
    live: bool,
) -> Tally {
    let step = (n / 20).max(1);
    let t = traffic::burst(caller, call, n, concurrency, move |t: &Tally| {
        if live && (t.total().is_multiple_of(step) || t.total() == n) {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r      {}/{n}: {}", t.total(), t.line());
            let _ = out.flush();
        }
    })
    .await;
    if live {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K");
        let _ = out.flush();
    }
    t
}
