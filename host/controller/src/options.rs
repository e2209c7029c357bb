//! What the controller is told at start-up: our class and controller name, the image and
//! mode the waypoints run, and the cluster's names (domain, trust domain, istiod).

/// The controller name a GatewayClass must carry for us to reconcile it.
pub const DEFAULT_CONTROLLER_NAME: &str = "waypoint.dev/gateway-controller";

/// Which data plane the waypoint pods run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `waypoint run --kube`: the standalone HBONE host.
    Host,
    /// Stock Envoy with `libwaypoint.so`, fed by `waypoint xds --kube` in the same pod.
    Envoy,
}

/// Rendering options, fixed for the controller's lifetime.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Options {
    /// `spec.controllerName` of the classes we own.
    pub controller_name: String,
    /// Image of the waypoint pods (for both containers in Envoy mode).
    pub image: String,
    /// `imagePullPolicy` of the waypoint containers (empty: Kubernetes' default).
    pub image_pull_policy: String,
    pub mode: Mode,
    /// Suffix of Service host names: `<gw>.<ns>.svc.<cluster domain>`.
    pub cluster_domain: String,
    /// SPIFFE trust domain of the mesh.
    pub trust_domain: String,
    /// Istio's CA (istiod's gRPC port), as Istio's `CA_ADDR`.
    pub ca_address: String,
    /// Istio's namespace (its mesh config ConfigMap `istio` lives there).
    pub istio_namespace: String,
    /// Cluster id sent to the CA (`clusterid` header), env `CLUSTER_ID` of the pods.
    pub cluster_id: String,
    /// Extra arguments appended to the waypoint command (e.g. `--cert-ttl 12h`).
    pub extra_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            controller_name: DEFAULT_CONTROLLER_NAME.to_string(),
            image: "ghcr.io/waypoint-dev/waypoint:latest".to_string(),
            image_pull_policy: String::new(),
            mode: Mode::Host,
            cluster_domain: "cluster.local".to_string(),
            trust_domain: "cluster.local".to_string(),
            ca_address: "istiod.istio-system.svc:15012".to_string(),
            istio_namespace: "istio-system".to_string(),
            cluster_id: "Kubernetes".to_string(),
            extra_args: Vec::new(),
        }
    }
}
