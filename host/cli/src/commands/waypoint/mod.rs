//! The istioctl-like verbs (`apply`, `delete`, `list`, `status`): their shared flags (API
//! server, namespace, classes) and the runtime; the work is in `waypoint-ops`.

pub mod apply;
pub mod delete;
pub mod list;
pub mod status;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args as ClapArgs;
use waypoint_ops::names::DEFAULT_CLASS;

/// How to reach the API server and which waypoints are ours.
#[derive(ClapArgs, Debug, Clone)]
pub struct Cluster {
    /// Kubeconfig file (default: in-cluster config, then `KUBECONFIG` / ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Our GatewayClass (repeatable for `list`, `status`, `delete`); Istio's `istio-waypoint`
    /// always counts as a waypoint class too.
    #[arg(long = "class", value_name = "NAME", default_value = DEFAULT_CLASS)]
    pub classes: Vec<String>,
}

/// A client from `--kubeconfig` (or in-cluster / `KUBECONFIG`) and the namespace to use.
pub async fn connect(c: &Cluster) -> anyhow::Result<(waypoint_kube::Client, String)> {
    let client = waypoint_kube::client(c.kubeconfig.as_deref())
        .await
        .context("API server")?;
    let ns = c
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    Ok((client, ns))
}

/// Run `f` on a fresh runtime (the verbs are one-shot).
pub fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(f)
}

/// `--timeout` values: Go durations (`90s`, `2m`).
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    waypoint_core::istio::duration::parse_duration(s)
}
