//! `waypoint delete`: delete named waypoints (or `--all` in the namespace) and remove the
//! `istio.io/use-waypoint` label of Namespaces that pointed at them.

use clap::Args as ClapArgs;
use waypoint_ops::cluster::{self, DeleteRequest};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub cluster: super::Cluster,
    /// Waypoints to delete (Gateways of a waypoint class).
    #[arg(
        value_name = "NAME",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub names: Vec<String>,
    /// Delete every waypoint in the namespace.
    #[arg(long)]
    pub all: bool,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    super::block_on(async move {
        let (client, namespace) = super::connect(&args.cluster).await?;
        let req = DeleteRequest {
            namespace,
            names: args.names,
            all: args.all,
            classes: args.cluster.classes,
        };
        let report = cluster::delete(&client, &req).await?;
        for line in report.lines() {
            println!("{line}");
        }
        Ok(())
    })
}
