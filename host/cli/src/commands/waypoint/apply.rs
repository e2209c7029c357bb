//! `waypoint apply`: create a waypoint Gateway of our class (as `istioctl waypoint apply`),
//! optionally wait for it to be Programmed and label its namespace to use it.

use std::time::Duration;

use clap::Args as ClapArgs;
use waypoint_ops::cluster::{self, ApplyRequest};
use waypoint_ops::names::DEFAULT_NAME;
use waypoint_ops::{TrafficType, WaypointSpec};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub cluster: super::Cluster,
    /// Name of the waypoint (its Gateway, Service and Deployment).
    #[arg(long, default_value = DEFAULT_NAME, value_parser = name)]
    pub name: String,
    /// Traffic it handles (label `istio.io/waypoint-for`; default: the class's, else service).
    #[arg(long = "for", value_name = "service|workload|all|none")]
    pub traffic: Option<TrafficType>,
    /// Label the waypoint with this `istio.io/rev`.
    #[arg(long, short = 'r')]
    pub revision: Option<String>,
    /// Label the namespace `istio.io/use-waypoint=<name>`: its services use the waypoint.
    #[arg(long)]
    pub enroll_namespace: bool,
    /// Replace an existing waypoint Gateway of that name (never a Gateway of another class),
    /// and a namespace label naming another waypoint.
    #[arg(long)]
    pub overwrite: bool,
    /// Wait until the Gateway is Programmed (its pods are ready), for at most `--timeout`.
    #[arg(long, short = 'w')]
    pub wait: bool,
    /// How long `--wait` waits (Go duration).
    #[arg(long, value_name = "DURATION", default_value = "90s", value_parser = super::duration)]
    pub timeout: Duration,
}

/// `--name`: refused before anything is asked of the API server.
fn name(s: &str) -> Result<String, String> {
    waypoint_ops::names::check_name(s).map(|()| s.to_string())
}

pub fn main(args: Args) -> anyhow::Result<()> {
    super::block_on(async move {
        let (client, namespace) = super::connect(&args.cluster).await?;
        let class = args
            .cluster
            .classes
            .first()
            .cloned()
            .unwrap_or_else(|| waypoint_ops::names::DEFAULT_CLASS.to_string());
        let req = ApplyRequest {
            spec: WaypointSpec {
                namespace,
                name: args.name,
                class,
                traffic: args.traffic,
                revision: args.revision,
            },
            enroll_namespace: args.enroll_namespace,
            overwrite: args.overwrite,
            wait: args.wait.then_some(args.timeout),
            poll: Duration::from_secs(1),
        };
        let report = cluster::apply(&client, &req).await?;
        for line in report.lines(&req) {
            println!("{line}");
        }
        Ok(())
    })
}
