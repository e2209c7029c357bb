//! The `proxy-config` document, one shape for both runtimes: every field always serialized
//! (`null` when absent) so JSON and YAML readers can rely on the keys; never key material.

use serde::{Deserialize, Serialize};

/// Which runtime answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The standalone host (`waypoint run`), read from its admin's `/proxy_config`.
    Host,
    /// Envoy with `libwaypoint.so`, read from Envoy's admin and the module's `filter_config`.
    Envoy,
}

/// The whole view of one waypoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyConfig {
    pub mode: Mode,
    /// `namespace/name` of the waypoint the config was compiled for.
    pub waypoint: Option<String>,
    /// The host's config generation (`null` for Envoy).
    pub generation: Option<u64>,
    pub routes: Vec<RouteView>,
    pub clusters: Vec<ClusterView>,
    pub endpoints: Vec<EndpointView>,
    pub policies: Vec<PolicyView>,
    pub secrets: Vec<SecretView>,
    /// Config errors and warnings in force, and what could not be read (e.g. the module's
    /// manifests in Envoy mode).
    pub warnings: Vec<String>,
}

/// One route entry: one match of one rule of a service's route table, or one route of
/// Envoy's own route configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteView {
    /// `waypoint`: the policy core's table (what decides, in both modes); `envoy`: a route
    /// of Envoy's `route_config` (Envoy mode only).
    pub table: String,
    /// The bound service's hostname; for `envoy` rows the route config and virtual host.
    pub service: String,
    /// Names requests reach it by: hostname, aliases, VIPs (virtual host domains for `envoy`).
    pub domains: Vec<String>,
    /// Service port the entry is limited to (`null`: every port).
    pub port: Option<u16>,
    /// The match, as text (`*` matches every request).
    #[serde(rename = "match")]
    pub matcher: String,
    /// `forward`, `redirect` or `direct_response`.
    pub action: String,
    /// Where forwarded requests go, each with its weight.
    pub backends: Vec<BackendView>,
    /// `Kind/namespace/name` of the route resource (`null` for `envoy` rows).
    pub resource: Option<String>,
    /// Rule name or index inside the resource.
    pub rule: Option<String>,
    /// `VirtualService`, `GatewayApi`, `Default` (no route config: the service itself) or
    /// `envoy`.
    pub source: String,
    pub timeout_ms: Option<u64>,
    /// Retry attempts of the rule (`null`: the runtime's default policy).
    pub retries: Option<u32>,
    /// Fault injection, as text (`delay 7000ms 100%, abort 500 100%`).
    pub fault: Option<String>,
    /// Mirror targets, as `host[:port][/subset] percent%`.
    pub mirrors: Vec<String>,
}

/// A weighted backend of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendView {
    /// Service hostname (`null` for Envoy clusters that are no service).
    pub host: Option<String>,
    pub namespace: Option<String>,
    pub subset: Option<String>,
    /// Service port (`null`: the port the request came in on).
    pub port: Option<u16>,
    pub weight: u32,
    /// Istio cluster name (`outbound|port|subset|host`) when the port is known.
    pub cluster: Option<String>,
    /// Envoy `cluster_header`: the cluster is read from this request header.
    pub cluster_header: Option<String>,
    /// Why the reference is invalid (requests that pick it get 500).
    pub invalid: Option<String>,
}

/// One upstream cluster (Istio naming `outbound|port|subset|host`; Envoy's other clusters
/// keep their names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub name: String,
    /// Service FQDN of an outbound cluster.
    pub service: Option<String>,
    pub port: Option<u16>,
    pub subset: Option<String>,
    /// `outbound` for Istio-named clusters.
    pub direction: Option<String>,
    /// Envoy's cluster discovery type (`STATIC`, `EDS`...); `null` on the host.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Service port protocol (`http`, `grpc`, `tcp`...), when known.
    pub protocol: Option<String>,
    /// `DestinationRule/namespace/name` whose subsets and policies apply.
    pub destination_rule: Option<String>,
    /// Number of endpoints.
    pub endpoints: usize,
}

/// One endpoint of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointView {
    pub cluster: String,
    /// `ip:port` of the workload (the target port), or Envoy's address as text.
    pub address: String,
    /// Reached over HBONE (a mesh pod's port 15008, `CONNECT address`).
    pub hbone: bool,
    /// Reached with Istio mTLS straight to `address` (a sidecar pod without HBONE).
    #[serde(default)]
    pub istio_mtls: bool,
    /// SPIFFE identity the pod must present (mesh endpoints).
    pub identity: Option<String>,
    /// Envoy's health status (`null` on the host, which has no health checks).
    pub health: Option<String>,
}

/// One compiled AuthorizationPolicy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyView {
    pub name: String,
    pub namespace: String,
    /// `ALLOW`, `DENY`, `AUDIT` or `CUSTOM` (the effective action).
    pub action: String,
    /// `istio.io/dry-run`: reported, never enforced.
    pub dry_run: bool,
    /// `Kind/namespace/name` of each target, or `selector` / `namespace` / `unknown`.
    pub targets: Vec<String>,
    /// Rules that survived compilation.
    pub rules: usize,
    /// CUSTOM provider.
    pub provider: Option<String>,
    /// The spec could not be read: compiled as a DENY of everything.
    pub fail_closed: bool,
}

/// One certificate the waypoint presents or trusts. Never key material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretView {
    /// `default` (the workload certificate) or `ROOTCA` on the host, as Istio's SDS names
    /// them; the certificate file in Envoy mode.
    pub name: String,
    /// `cert_chain` (what the waypoint presents) or `root` (a trust anchor).
    #[serde(rename = "type")]
    pub kind: String,
    /// The SPIFFE URI SAN (`spiffe://td/ns/NS/sa/SA`), when there is one.
    pub identity: Option<String>,
    /// Every subject alternative name, as text.
    pub sans: Vec<String>,
    /// Serial number, lower-case hex.
    pub serial: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    /// Certificates in the chain (leaf first); 1 for a root.
    pub chain_length: usize,
}
