//! `waypoint controller`: run the Gateway controller that deploys waypoints for Gateways of
//! our GatewayClass and writes the status istiod reads (`waypoint-controller`).

use anyhow::Context;
use clap::Args as ClapArgs;
use waypoint_controller::{options::DEFAULT_CONTROLLER_NAME, Mode, Options};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Image of the waypoint pods.
    #[arg(long)]
    pub image: String,
    /// Kubeconfig file (default: in-cluster config, then `KUBECONFIG`), as `run --kube`.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Data plane of the waypoint pods: `host` (waypoint run) or `envoy` (Envoy + module,
    /// fed by waypoint xds).
    #[arg(long, default_value = "host", value_parser = mode)]
    pub mode: Mode,
    /// `imagePullPolicy` of the waypoint containers (default: Kubernetes').
    #[arg(long, default_value = "")]
    pub image_pull_policy: String,
    /// GatewayClass `spec.controllerName` this controller owns.
    #[arg(long, default_value = DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
    /// Cluster DNS domain: the Gateway's address is `<gw>.<ns>.svc.<domain>`.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// SPIFFE trust domain, passed to the waypoint pods (`TRUST_DOMAIN` env).
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
    /// Istio's CA address, passed to the waypoint pods (`CA_ADDR`).
    #[arg(long, default_value = "istiod.istio-system.svc:15012")]
    pub ca_address: String,
    /// Istio's namespace (mesh config ConfigMap `istio`).
    #[arg(long, default_value = "istio-system")]
    pub istio_namespace: String,
    /// Cluster id, passed to the waypoint pods (`CLUSTER_ID`).
    #[arg(long, default_value = "Kubernetes")]
    pub cluster_id: String,
    /// Extra argument for the waypoint command (repeatable), e.g. `--waypoint-arg=--cert-ttl=12h`.
    #[arg(long = "waypoint-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub waypoint_args: Vec<String>,
}

fn mode(s: &str) -> Result<Mode, String> {
    match s {
        "host" => Ok(Mode::Host),
        "envoy" => Ok(Mode::Envoy),
        _ => Err(format!("{s:?}: expected host or envoy")),
    }
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let options = Options {
        controller_name: args.controller_name,
        image: args.image,
        image_pull_policy: args.image_pull_policy,
        mode: args.mode,
        cluster_domain: args.cluster_domain,
        trust_domain: args.trust_domain,
        ca_address: args.ca_address,
        istio_namespace: args.istio_namespace,
        cluster_id: args.cluster_id,
        extra_args: args.waypoint_args,
    };
    tracing::info!(controller = %options.controller_name, image = %options.image, mode = ?options.mode, "waypoint controller starting");
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let client = waypoint_kube::client::client(args.kubeconfig.as_deref())
            .await
            .context("API server")?;
        waypoint_controller::run::run(client, options)
            .await
            .context("controller")
    })
}
