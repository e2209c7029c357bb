//! `waypoint list`: the waypoints (Gateways of our class and Istio's `istio-waypoint`) with
//! their class, revision, traffic type and Programmed status, from the API or `--config`.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use waypoint_ops::{cluster, offline, render, summary, Selection};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub cluster: super::Cluster,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Read manifest files or directories instead of the API server (repeatable).
    #[arg(long, value_name = "PATH", conflicts_with = "kubeconfig")]
    pub config: Vec<PathBuf>,
    /// `text` (a table) or `json`.
    #[arg(long, short = 'o', default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    super::block_on(async move {
        let mut sel = Selection {
            classes: args.cluster.classes.clone(),
            ..Default::default()
        };
        let rows = if args.config.is_empty() {
            let (client, ns) = super::connect(&args.cluster).await?;
            sel.namespace = (!args.all_namespaces).then_some(ns);
            cluster::list(&client, &sel).await?
        } else {
            let ns = args.cluster.namespace.as_deref().unwrap_or("default");
            let inv = offline::inventory(&args.config, ns)?;
            sel.namespace = (!args.all_namespaces).then(|| ns.to_string());
            summary::list(&inv, &sel)
        };
        if args.output == "json" {
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            print!("{}", render::list(&rows, args.all_namespaces));
        }
        Ok(())
    })
}
