//! `waypoint xds`: serve the waypoint's Envoy resources over ADS (SotW and delta), watching
//! the config and certificates and pushing changes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use waypoint_envoy_config::xds::{server, Cache, Source};

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
    /// The waypoint's certificate files (read, watched and served over SDS).
    #[command(flatten)]
    pub certs: super::args::CertArgs,
    /// How often the config and certificates are checked for changes, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// Bind a listener elsewhere: NAME=ADDR (repeatable), e.g. connect_terminate=0.0.0.0:16008.
    #[arg(long = "bind", value_name = "NAME=ADDR")]
    pub bind: Vec<String>,
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
        inputs: args
            .generator
            .inputs(args.config, args.waypoint, args.certs.resolve()?)?,
        rebind,
        extra_listeners: Vec::new(),
    };
    // Fail fast on a config that cannot serve at all.
    source
        .build(source.inputs.waypoint.as_deref())
        .context("initial snapshot")?;
    let watched = source.watched();
    let cache = Cache::from_source(source);
    rt.block_on(async move {
        let running = server::start(
            cache,
            args.listen,
            watched,
            Duration::from_millis(args.poll_ms),
        )
        .await
        .with_context(|| format!("bind {}", args.listen))?;
        tracing::info!(addr = %running.addr, "waypoint xds serving");
        tokio::signal::ctrl_c().await?;
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
}
