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
    /// Manifest file or directory (repeatable); watched for changes.
    #[arg(long = "config", required = true)]
    pub config: Vec<PathBuf>,
    /// Address of the ADS gRPC server.
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub listen: SocketAddr,
    /// Default waypoint NS/NAME for nodes that do not name one (node metadata WAYPOINT).
    #[arg(long, value_name = "NS/NAME", value_parser = super::args::waypoint_name)]
    pub waypoint: Option<String>,
    /// Directory with waypoint.pem, waypoint-key.pem and ca.pem (read and served over SDS).
    #[arg(long)]
    pub certs: String,
    /// How often the config and certificates are checked for changes, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// Bind a listener elsewhere: NAME=ADDR (repeatable), e.g. connect_terminate=0.0.0.0:16008.
    #[arg(long = "bind", value_name = "NAME=ADDR")]
    pub bind: Vec<String>,
    #[command(flatten)]
    pub generator: super::bootstrap::GeneratorArgs,
}

pub fn main(args: Args) -> anyhow::Result<()> {
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
            .inputs(args.config, args.waypoint, args.certs)?,
        rebind,
        extra_listeners: Vec::new(),
    };
    // Fail fast on a config that cannot serve at all.
    source
        .build(source.inputs.waypoint.as_deref())
        .context("initial snapshot")?;
    let watched = source.watched();
    let cache = Cache::from_source(source);
    let rt = tokio::runtime::Runtime::new()?;
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
