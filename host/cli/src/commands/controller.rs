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

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde::Deserialize;

    /// Every `waypoint` container the controller renders (its golden files, both modes) starts
    /// with arguments this binary accepts: a flag renamed here would crash-loop the pods.
    #[test]
    fn rendered_pods_args_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../controller/tests/golden/expected");
        let mut checked = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("golden dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("golden file");
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v = serde_json::Value::deserialize(doc).expect("yaml");
                if v["kind"] != "Deployment" {
                    continue;
                }
                let containers = v["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for c in containers {
                    // Envoy's own container runs /usr/local/bin/envoy.
                    if c.get("command").is_some() {
                        continue;
                    }
                    let args: Vec<String> = c["args"]
                        .as_array()
                        .expect("args")
                        .iter()
                        .map(|a| a.as_str().expect("string arg").to_string())
                        .collect();
                    let parsed = crate::Cli::try_parse_from(
                        std::iter::once("waypoint".to_string()).chain(args.iter().cloned()),
                    );
                    assert!(
                        parsed.is_ok(),
                        "{}: container {}: {args:?}: {}",
                        path.display(),
                        c["name"],
                        parsed.err().map(|e| e.to_string()).unwrap_or_default()
                    );
                    checked.push(format!("{}:{}", c["name"], args[0]));
                }
            }
        }
        assert!(checked.iter().any(|c| c.ends_with(":run")), "{checked:?}");
        assert!(checked.iter().any(|c| c.ends_with(":xds")), "{checked:?}");
    }
}
