//! `waypoint run`: the standalone HBONE waypoint (HBONE in on :15008, readiness :15021, stats
//! :15020, admin 127.0.0.1:15000) until SIGINT or SIGTERM, then a drain and exit 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use waypoint_hbone::tls::LayoutError;
use waypoint_proxy::run::{start, CertSource, RunOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Manifest files or directories (repeatable); watched for changes. Exactly one of
    /// `--config` and `--kube`.
    #[arg(
        long = "config",
        value_name = "PATH",
        required_unless_present = "kube",
        conflicts_with = "kube"
    )]
    config: Vec<PathBuf>,
    /// Read the config from the Kubernetes API server (watches; in-cluster config, or
    /// `--kubeconfig`, or `KUBECONFIG`). Ready after every kind's first full list.
    #[arg(long)]
    kube: bool,
    /// Kubeconfig file for `--kube` (default: in-cluster config, then `KUBECONFIG`).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the mesh config ConfigMap `istio` (`--kube`; Istio's root namespace).
    #[arg(long, value_name = "NS", default_value = "istio-system")]
    mesh_namespace: String,
    /// The waypoint Gateway this host serves, `namespace/name`.
    #[arg(long, value_name = "NS/NAME", value_parser = super::args::waypoint_name)]
    waypoint: Option<String>,
    #[command(flatten)]
    certs: super::args::CertArgs,
    /// Namespace for resources without one.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// HBONE listener (mTLS, HTTP/2 CONNECT), where ztunnel sends traffic for the waypoint.
    #[arg(long, default_value = "0.0.0.0:15008")]
    hbone_addr: SocketAddr,
    /// Readiness: serves only `GET /healthz/ready` (503 while draining).
    #[arg(long, default_value = "0.0.0.0:15021")]
    ready_addr: SocketAddr,
    /// Metrics: serves only `GET /stats/prometheus`.
    #[arg(long, default_value = "0.0.0.0:15020")]
    stats_addr: SocketAddr,
    /// Admin (`/config_dump`, readiness, stats): loopback only by default, as Envoy's admin in
    /// an Istio proxy.
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin_addr: SocketAddr,
    /// Port mesh endpoints accept HBONE on.
    #[arg(long, default_value_t = 15008)]
    hbone_upstream_port: u16,
    /// How often config and certificate files are checked for changes: a duration (`500ms`,
    /// `2s`) or plain seconds.
    #[arg(long, value_name = "DURATION", value_parser = super::args::interval, default_value = "1s")]
    watch_interval: Duration,
    /// How often a RequestAuthentication `jwksUri` key set is fetched again (Istio's
    /// `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`).
    #[arg(long, value_name = "DURATION", value_parser = jwks_refresh, default_value = "20m")]
    jwks_refresh: Duration,
    /// Worker threads (like Envoy's `--concurrency`); 1 runs everything on one thread.
    /// Default: the CPUs this process may run on.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Log every request (tracing target `access`): off by default, as in Istio. A Telemetry
    /// resource's `accessLogging` (or MeshConfig `accessLogFile`) decides instead when set.
    #[arg(long)]
    pub access_log: bool,
    /// On SIGTERM/SIGINT: stop accepting, report not ready, send GOAWAY, and let in-flight
    /// streams finish for this long before exiting (Istio's `terminationDrainDuration`, 5s).
    /// A second signal exits at once.
    #[arg(long, value_name = "DURATION", value_parser = drain_duration, default_value = "5s")]
    drain_duration: Duration,
    #[command(flatten)]
    timeouts: waypoint_hbone::timeouts::Timeouts,
    #[command(flatten)]
    ca: super::ca_args::CaArgs,
    /// `Upgrade` type forwarded inside tunnels (repeatable; Envoy `upgrade_configs`). Others
    /// get 403; `h2c` is always stripped.
    #[arg(long = "upgrade", value_name = "TYPE", default_values_t = ["websocket".to_string()])]
    upgrades: Vec<String>,
}

fn drain_duration(s: &str) -> Result<Duration, String> {
    waypoint_core::istio::parse_duration(s)
}

/// The run options for `args`, with the certificate from `certs`.
fn run_options(args: &Args, certs: CertSource) -> RunOptions {
    let mut opts = RunOptions::new(args.config.clone(), certs);
    opts.waypoint = args.waypoint.clone();
    opts.timeouts = args.timeouts;
    opts.upgrades = args.upgrades.clone();
    opts.default_namespace = args.namespace.clone();
    opts.hbone_addr = args.hbone_addr;
    opts.ready_addr = Some(args.ready_addr);
    opts.stats_addr = Some(args.stats_addr);
    opts.admin_addr = Some(args.admin_addr);
    opts.hbone_upstream_port = args.hbone_upstream_port;
    opts.watch_interval = args.watch_interval;
    opts.jwks_refresh = args.jwks_refresh;
    opts.access_log = args.access_log;
    opts
}

pub fn main(args: Args) -> anyhow::Result<()> {
    // Certificate files, unless Istio's CA issues the certificate (ca_args.rs).
    let files = match args.ca.enabled(args.certs.given())? {
        true => None,
        false => Some(args.certs.resolve().map_err(|e| match e {
            LayoutError::NotGiven { .. } => {
                anyhow::anyhow!("{e}, or --ca for a certificate from Istio's CA")
            }
            other => other.into(),
        })?),
    };
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    let rt = match threads {
        0 => anyhow::bail!("--threads must be at least 1"),
        // One thread: no work stealing and no cross-thread wake-ups.
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let (certs, _rotation) = match files {
            Some(paths) => (CertSource::Files(paths), None),
            None => {
                let (store, rotation) = args.ca.start().await?;
                (CertSource::Store(store), Some(rotation))
            }
        };
        let running = start(run_options(&args, certs)).await?;
        tracing::info!(hbone = %running.hbone_addr, "waypoint running");
        let _kube = match args.kube {
            false => None,
            true => {
                let client = waypoint_kube::client(args.kubeconfig.as_deref()).await?;
                let (config, policy) = (running.config.clone(), running.policy_options.clone());
                let options = waypoint_kube::KubeOptions {
                    mesh_namespace: args.mesh_namespace.clone(),
                    ..Default::default()
                };
                tracing::info!(
                    "watching the Kubernetes API server; ready after the first full list"
                );
                Some(waypoint_kube::KubeSource::start(
                    client,
                    options,
                    move |set| {
                        config.reload_resources(set, &policy);
                    },
                ))
            }
        };
        wait_for_signal().await;
        tracing::info!(drain = ?args.drain_duration, "signal received; draining");
        tokio::select! {
            _ = running.shutdown(args.drain_duration) => {}
            _ = wait_for_signal() => tracing::warn!("second signal; exiting without draining"),
        }
        tracing::info!("stopped");
        Ok(())
    })
}

pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `--jwks-refresh`: a Go duration (`30s`, `20m`, `1h`), at least 1 s.
pub(crate) fn jwks_refresh(s: &str) -> Result<Duration, String> {
    let d = waypoint_core::istio::parse_duration(s.trim())?;
    if d < Duration::from_secs(1) {
        return Err(format!("{s:?}: must be at least 1s"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        run: super::Args,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
    }

    #[test]
    fn exactly_one_of_config_and_kube() {
        assert!(parse(&["--config", "a.yaml"]).is_ok());
        let k = parse(&["--kube", "--kubeconfig", "kc"]).expect("--kube");
        assert!(k.run.kube && k.run.config.is_empty());
        assert_eq!(k.run.mesh_namespace, "istio-system");
        assert!(parse(&[]).is_err(), "neither");
        assert!(parse(&["--kube", "--config", "a.yaml"]).is_err(), "both");
        assert!(
            parse(&["--config", "a.yaml", "--kubeconfig", "kc"]).is_err(),
            "--kubeconfig needs --kube"
        );
    }
}
