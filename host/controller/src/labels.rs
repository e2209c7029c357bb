//! Label, annotation and port constants shared by the rendered objects: the ones istiod and
//! ztunnel key on, with where Istio sets or reads them.

/// Pods and objects of one Gateway; istiod finds a waypoint's instances by it
/// (`waypoints.go` `gatewayToWaypointTransform`) and never gives such pods a waypoint.
pub const GATEWAY_NAME: &str = "gateway.networking.k8s.io/gateway-name";
/// The Gateway's class, as Istio's template labels its pods.
pub const GATEWAY_CLASS_NAME: &str = "gateway.networking.k8s.io/gateway-class-name";
/// Traffic a waypoint handles (`service`, `workload`, `all`, `none`); read from the class,
/// then the Gateway.
pub const WAYPOINT_FOR: &str = "istio.io/waypoint-for";
/// `none`: ztunnel does not capture the waypoint's own pods (Istio's waypoint template).
pub const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
/// No sidecar in a waypoint pod.
pub const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";
/// Istio's canonical service name for telemetry.
pub const CANONICAL_NAME: &str = "service.istio.io/canonical-name";
/// istiod never gives a Service with this label a waypoint (`fetchWaypointForService`), so
/// a namespace labelled `istio.io/use-waypoint` does not send the waypoint's own Service
/// through itself; ambient indices also skip such objects (`ambientindex.go`).
pub const MANAGED: &str = "gateway.istio.io/managed";
/// The value Istio's waypoint controller writes in [`MANAGED`].
pub const MANAGED_MESH: &str = "istio.io-mesh-controller";
/// Objects we apply are also labelled as ours (for `kubectl get -l`).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`] and the server-side apply field manager.
pub const FIELD_MANAGER: &str = "waypoint-controller";
/// Istio's waypoint Service annotation: prefer endpoints in the same zone.
pub const TRAFFIC_DISTRIBUTION: &str = "networking.istio.io/traffic-distribution";

/// HBONE port: ztunnel dials the waypoint's pods here (15008 is hard-coded in istiod's
/// `getGatewayAddress`; ztunnel requires the waypoint Service to expose it).
pub const HBONE_PORT: i32 = 15008;
/// Readiness (`/healthz/ready`), as Istio's status port.
pub const STATUS_PORT: i32 = 15021;
/// Prometheus metrics (`/stats/prometheus`).
pub const METRICS_PORT: i32 = 15020;
/// The ADS port `waypoint xds` serves Envoy on, inside the pod (Envoy mode).
pub const XDS_PORT: i32 = 15010;
/// Istio's proxy uid/gid (its waypoint template runs as 1337).
pub const PROXY_UID: i64 = 1337;

/// Where the projected token for Istio's CA is mounted (file `istio-token`).
pub const TOKEN_DIR: &str = "/var/run/secrets/tokens";
/// Audience of that token: istiod's TokenReview expects `istio-ca` (`TOKEN_AUDIENCES`).
pub const TOKEN_AUDIENCE: &str = "istio-ca";
/// Where the mesh root (ConfigMap [`ROOT_CONFIGMAP`], key `root-cert.pem`) is mounted.
pub const ROOT_DIR: &str = "/var/run/secrets/istio";
/// istiod writes the mesh root into this ConfigMap in every namespace.
pub const ROOT_CONFIGMAP: &str = "istio-ca-root-cert";
