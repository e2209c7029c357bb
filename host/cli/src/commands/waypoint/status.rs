//! `waypoint status`: per waypoint its readiness, the Namespaces and Services bound to it,
//! the routes and policies attached, and its certificate's expiry (from `--admin`).

use std::path::PathBuf;

use clap::Args as ClapArgs;
use waypoint_ops::{cluster, offline, render, summary, Selection};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub cluster: super::Cluster,
    /// Only this waypoint (default: every waypoint in the namespace).
    #[arg(long)]
    pub name: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Read manifest files or directories instead of the API server (repeatable).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["kubeconfig", "admin"])]
    pub config: Vec<PathBuf>,
    /// The waypoint's admin (HOST:PORT, e.g. after `kubectl port-forward deploy/NAME
    /// 15000`): its certificate's expiry is read from `/config_dump`. Needs `--name`.
    #[arg(long, value_name = "HOST:PORT", requires = "name")]
    pub admin: Option<String>,
    /// `text` or `json`.
    #[arg(long, short = 'o', default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    super::block_on(async move {
        let mut sel = Selection {
            classes: args.cluster.classes.clone(),
            name: args.name.clone(),
            ..Default::default()
        };
        let all = if args.config.is_empty() {
            let (client, ns) = super::connect(&args.cluster).await?;
            sel.namespace = (!args.all_namespaces).then_some(ns);
            cluster::status(&client, &sel, args.admin.as_deref()).await?
        } else {
            let ns = args.cluster.namespace.as_deref().unwrap_or("default");
            let inv = offline::inventory(&args.config, ns)?;
            sel.namespace = (!args.all_namespaces).then(|| ns.to_string());
            summary::status(&inv, &sel, "offline: no waypoint to ask")
        };
        if let (Some(name), true) = (&args.name, all.is_empty()) {
            let ns = sel.namespace.as_deref().unwrap_or("any namespace");
            anyhow::bail!("waypoint {name} not found in {ns}");
        }
        if args.output == "json" {
            println!("{}", serde_json::to_string_pretty(&all)?);
        } else {
            print!("{}", render::status(&all));
        }
        Ok(())
    })
}
