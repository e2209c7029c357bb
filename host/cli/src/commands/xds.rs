//! `waypoint xds`: serve the waypoint's Envoy resources over ADS (SotW and delta), watching
//! the config and certificates and pushing changes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use waypoint_envoy_config::xds::{jwks, server, Cache, JwksInliner, Source};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Manifest file or directory (repeatable); watched for changes. Exactly one of
    /// `--config` and `--kube`.
    #[arg(
        long = "config",
        required_unless_present = "kube",
        conflicts_with = "kube"
    )]
    pub config: Vec<PathBuf>,
    /// Read the config from the Kubernetes API server (as `waypoint run --kube`). The resource
    /// set is written to `--kube-state-dir` and served from there like a config file.
    #[arg(long)]
    pub kube: bool,
    /// Kubeconfig file for `--kube` (default: in-cluster config, then `KUBECONFIG`).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the mesh config ConfigMap `istio` (`--kube`).
    #[arg(long, value_name = "NS", default_value = "istio-system")]
    pub mesh_namespace: String,
    /// Writable directory where `--kube` keeps the resource set (`resources.json`).
    #[arg(long, value_name = "DIR", default_value = "/tmp/waypoint-kube")]
    pub kube_state_dir: PathBuf,
    /// Address of the ADS gRPC server.
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub listen: SocketAddr,
    /// Default waypoint NS/NAME for nodes that do not name one (node metadata WAYPOINT).
    #[arg(long, value_name = "NS/NAME", value_parser = super::args::waypoint_name)]
    pub waypoint: Option<String>,
    /// The waypoint's certificate files (read, watched and served over SDS); required unless
    /// the certificate comes from Istio's CA (`--ca`).
    #[command(flatten)]
    pub certs: super::args::CertArgs,
    #[command(flatten)]
    pub ca: super::ca_args::CaFlags,
    /// With the CA: the writable directory its certificate is written to (Istio's names) and
    /// renewed in at half-life, served to Envoy over SDS from there.
    #[arg(long, value_name = "DIR", default_value = "/tmp/waypoint-certs")]
    pub ca_cert_dir: PathBuf,
    /// How often the config and certificates are checked for changes: a duration (`500ms`,
    /// `2s`) or seconds, as `run --watch-interval`.
    #[arg(long, value_name = "DURATION", value_parser = super::args::interval, default_value = "500ms")]
    pub watch_interval: Duration,
    /// Deprecated: `--watch-interval` in milliseconds (kept for existing scripts).
    #[arg(
        long,
        hide = true,
        value_name = "MS",
        conflicts_with = "watch_interval"
    )]
    pub poll_ms: Option<u64>,
    /// Bind a listener elsewhere: NAME=ADDR (repeatable), e.g. connect_terminate=0.0.0.0:16008.
    #[arg(long = "bind", value_name = "NAME=ADDR")]
    pub bind: Vec<String>,
    /// How often each RequestAuthentication `jwksUri` key set is fetched again (Istio's
    /// `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`). As istiod, `xds` fetches the sets itself and
    /// inlines them in the pushed config; a changed set is pushed at once.
    #[arg(long, value_name = "DURATION", value_parser = super::run::jwks_refresh, default_value = "20m")]
    pub jwks_refresh: Duration,
    #[command(flatten)]
    pub generator: super::bootstrap::GeneratorArgs,
}

/// With `--kube`: watch the API server, keep the resource set in `--kube-state-dir`, and
/// return that file once every kind is listed (the snapshot poller rebuilds on its changes).
fn kube_config(
    args: &Args,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<(PathBuf, waypoint_kube::KubeSource)> {
    std::fs::create_dir_all(&args.kube_state_dir)
        .with_context(|| format!("--kube-state-dir {}", args.kube_state_dir.display()))?;
    let file = args.kube_state_dir.join("resources.json");
    let options = waypoint_kube::KubeOptions {
        mesh_namespace: args.mesh_namespace.clone(),
        ..Default::default()
    };
    tracing::info!("waiting for the first full list of every kind");
    let source = rt.block_on(async {
        let client = waypoint_kube::client(args.kubeconfig.as_deref()).await?;
        waypoint_kube::file::mirror_to_file(client, options, file.clone())
            .await
            .context("the Kubernetes source stopped before its first list")
    })?;
    Ok((file, source))
}

pub fn main(mut args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    // Certificate files, unless Istio's CA issues the certificate: then it is written to
    // --ca-cert-dir before the first snapshot and renewed there (the watcher re-serves it).
    let (certs, _rotation) = if args.ca.enabled(args.certs.given())? {
        let dir = args.ca_cert_dir.clone();
        let task = rt.block_on(args.ca.start_to_dir(
            &args.generator.trust_domain,
            dir.clone(),
            Default::default(),
        ))?;
        (
            waypoint_hbone::tls::layout::CertPaths::from_dir(&dir),
            Some(task),
        )
    } else if args.certs.given() {
        (args.certs.resolve()?, None)
    } else {
        bail!("certificates: give --certs DIR (or --cert/--key/--roots), or --ca for Istio's CA");
    };
    let _kube = if args.kube {
        let (file, source) = kube_config(&args, &rt)?;
        args.config = vec![file];
        Some(source)
    } else {
        None
    };
    let mut rebind = BTreeMap::new();
    for b in &args.bind {
        let Some((name, addr)) = b.split_once('=') else {
            bail!("--bind {b:?}: expected NAME=ADDR");
        };
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("--bind {b:?}: bad address"))?;
        rebind.insert(name.to_string(), addr);
    }
    let source = Source {
        inputs: args.generator.inputs(args.config, args.waypoint, certs)?,
        rebind,
        extra_listeners: Vec::new(),
    };
    // Fail fast on a config that cannot serve at all; this build also names the key sets to
    // fetch, so the first push already carries them (istiod fetches on first use too).
    let jwks = JwksInliner::new(args.jwks_refresh);
    source
        .build_with(source.inputs.waypoint.as_deref(), Some(&jwks))
        .context("initial snapshot")?;
    rt.block_on(jwks.refresh());
    let watched = source.watched();
    let cache = Cache::from_source_with_jwks(source, Arc::clone(&jwks));
    let interval = args
        .poll_ms
        .map(Duration::from_millis)
        .unwrap_or(args.watch_interval);
    rt.block_on(async move {
        let running = server::start(cache, args.listen, watched, interval)
            .await
            .with_context(|| format!("bind {}", args.listen))?;
        let refresher = jwks::spawn_refresher(
            jwks,
            Arc::clone(&running.cache),
            interval.min(args.jwks_refresh),
        );
        tracing::info!(addr = %running.addr, "waypoint xds serving");
        tokio::signal::ctrl_c().await?;
        refresher.abort();
        drop(running);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        xds: super::Args,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let base = ["xds", "--certs", "c"];
        Cli::try_parse_from(base.iter().chain(args).copied())
    }

    #[test]
    fn exactly_one_of_config_and_kube() {
        assert!(parse(&["--config", "a.yaml"]).is_ok());
        let k = parse(&["--kube", "--kube-state-dir", "/run/wp"]).expect("--kube");
        assert!(k.xds.kube && k.xds.config.is_empty());
        assert!(parse(&[]).is_err(), "neither");
        assert!(parse(&["--kube", "--config", "a.yaml"]).is_err(), "both");
        assert!(
            parse(&["--kubeconfig", "kc"]).is_err(),
            "--kubeconfig alone"
        );
    }

    #[test]
    fn certificates_from_files_or_the_ca() {
        let no_certs = |a: &[&str]| {
            Cli::try_parse_from(["xds", "--config", "a.yaml"].iter().chain(a).copied())
        };
        let neither = no_certs(&[]).expect("parses");
        assert!(!neither
            .xds
            .ca
            .enabled(neither.xds.certs.given())
            .expect("ok"));
        let ca = no_certs(&["--ca", "--ca-cert-dir", "/run/certs"]).expect("--ca");
        assert!(ca.xds.ca.enabled(ca.xds.certs.given()).expect("ok"));
        let by_address = no_certs(&["--ca-address", "istiod:15012"]).expect("address");
        assert!(by_address.xds.ca.enabled(false).expect("ok"));
        let both = parse(&["--config", "a.yaml", "--ca"]).expect("parses");
        assert!(
            both.xds.ca.enabled(both.xds.certs.given()).is_err(),
            "--ca with --certs"
        );
        // The identity's trust domain is the generator's.
        let td = no_certs(&[
            "--ca",
            "--trust-domain",
            "td.example",
            "--pod-namespace",
            "n",
            "--service-account",
            "s",
        ])
        .expect("td");
        let opts = td
            .xds
            .ca
            .options(&td.xds.generator.trust_domain)
            .expect("options");
        assert_eq!(opts.identity.to_string(), "spiffe://td.example/ns/n/sa/s");
    }
}
