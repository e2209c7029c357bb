//! `waypoint proxy-config`: the routes, clusters, endpoints, policies and certificates a
//! running waypoint serves (host or Envoy with the module), as a table, JSON or YAML.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use waypoint_proxy::admin::proxy_config::{self, Format, Section};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum What {
    Routes,
    Clusters,
    Endpoints,
    Policies,
    Secrets,
    All,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Output {
    Short,
    Json,
    Yaml,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to show.
    #[arg(value_enum)]
    what: What,
    /// The waypoint's admin address (the host's `--admin-addr`, or Envoy's admin).
    #[arg(long, default_value = "127.0.0.1:15000", value_name = "ADDR")]
    admin: String,
    /// Output format: a table, or the machine-readable document.
    #[arg(short = 'o', long = "output", value_enum, default_value = "short")]
    output: Output,
    /// Envoy's working directory: relative `config_paths` of the module resolve against it.
    #[arg(long, value_name = "DIR", default_value = ".")]
    envoy_workdir: PathBuf,
    /// How long to wait for each admin answer (Go duration).
    #[arg(long, default_value = "5s", value_parser = duration)]
    timeout: Duration,
}

fn duration(s: &str) -> Result<Duration, String> {
    waypoint_core::istio::parse_duration(s)
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let doc = rt.block_on(proxy_config::fetch(
        &args.admin,
        &args.envoy_workdir,
        args.timeout,
    ))?;
    let section = match args.what {
        What::Routes => Section::Routes,
        What::Clusters => Section::Clusters,
        What::Endpoints => Section::Endpoints,
        What::Policies => Section::Policies,
        What::Secrets => Section::Secrets,
        What::All => Section::All,
    };
    let format = match args.output {
        Output::Short => Format::Short,
        Output::Json => Format::Json,
        Output::Yaml => Format::Yaml,
    };
    // Tables carry no warnings column: say them on stderr (JSON/YAML include them).
    if matches!(format, Format::Short) {
        for w in &doc.warnings {
            eprintln!("warning: {w}");
        }
    }
    print!("{}", proxy_config::render(&doc, section, format)?);
    Ok(())
}
