//! The compiled, immutable config snapshot a waypoint decides with: bound services, their
//! route tables, destination policies and authorization policies, all indexed once.

mod build;
mod decide;
mod inputs;
mod rewrite;

pub use decide::{DecideError, ResolvedService, RBAC_DENIED_BODY};
pub use inputs::ConnectionInputs;
pub use rewrite::{apply_header_ops, rewrite_path};

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use crate::authz::CompiledPolicy;
use crate::error::Diagnostics;
use crate::mesh::{ExtAuthzProvider, MeshConfig};
use crate::registry::{Registry, Waypoint, WaypointRef};
use crate::route::{DestinationPolicy, RouteEntry, Rule};
use crate::service::ServiceInfo;

/// Options for building a snapshot.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Which waypoint this is; `None` = the only waypoint Gateway in the config.
    pub waypoint: Option<WaypointRef>,
    /// Names of CUSTOM authorization providers the data path can call.
    pub custom_providers: Vec<String>,
    /// Istio's root namespace (mesh-wide policies).
    pub root_namespace: String,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            waypoint: None,
            custom_providers: Vec::new(),
            root_namespace: "istio-system".to_string(),
        }
    }
}

/// Where a service's route table came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSource {
    /// HTTPRoute/GRPCRoute attached to the Service (GAMMA) or to the waypoint Gateway.
    GatewayApi,
    VirtualService,
    /// No route config: forward to the service itself.
    Default,
}

/// Routes of one bound service.
#[derive(Debug)]
pub struct ServiceRoutes {
    pub source: RouteSource,
    pub entries: Vec<RouteEntry>,
    /// Used when `source == Default`.
    pub default_rule: Arc<Rule>,
}

/// The immutable snapshot. Build once, share (`Arc`), swap atomically.
#[derive(Debug)]
pub struct Snapshot {
    pub waypoint: Option<Waypoint>,
    pub registry: Registry,
    /// Per service index: its routes when bound to this waypoint.
    pub(crate) routes: Vec<Option<ServiceRoutes>>,
    /// DestinationRules by service hostname.
    pub(crate) destination_policies: HashMap<String, usize>,
    /// The merged DestinationRule policies (indexed by `destination_policies`).
    pub(crate) destination_list: Vec<DestinationPolicy>,
    /// Backend reference address → (service index, destination policy index), for every
    /// backend of every route table; saves two string-hash look-ups per request.
    pub(crate) backend_cache: HashMap<usize, (Option<usize>, Option<usize>)>,
    /// (service address, subset address) → indexes of the service's endpoints in the subset.
    pub(crate) subset_endpoints: HashMap<(usize, usize), Box<[u32]>>,
    pub(crate) policies: Vec<CompiledPolicy>,
    /// Per service index: every policy that applies (waypoint-wide and service-specific),
    /// in evaluation order (CUSTOM, DENY, ALLOW, AUDIT), computed once at build time.
    pub(crate) policy_order: Vec<Box<[usize]>>,
    /// RequestAuthentication rules and where they apply.
    pub(crate) jwt: crate::authn::RuleSelection,
    /// MeshConfig from the `istio` ConfigMap (ext_authz providers).
    pub(crate) mesh: MeshConfig,
    /// The Telemetry API for this waypoint (access logging, tracing).
    pub telemetry: crate::telemetry::TelemetryPolicy,
    /// Istio's root namespace the snapshot was built with.
    pub(crate) root_namespace: String,
    /// Local rate limits from EnvoyFilters attached to the waypoint.
    pub rate_limits: crate::ratelimit::RateLimits,
    /// Everything compiling found.
    pub diagnostics: Diagnostics,
}

impl Snapshot {
    /// Indexes of services bound to this waypoint.
    pub fn bound_services(&self) -> impl Iterator<Item = usize> + '_ {
        self.routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|_| i))
    }

    /// Routes of a bound service.
    pub fn service_routes(&self, idx: usize) -> Option<&ServiceRoutes> {
        self.routes.get(idx).and_then(Option::as_ref)
    }

    /// DestinationRule policy for a hostname.
    pub fn destination_policy(&self, host: &str) -> Option<&DestinationPolicy> {
        self.destination_policies
            .get(host)
            .map(|&i| &self.destination_list[i])
    }

    /// The MeshConfig in force (empty when no mesh ConfigMap was given).
    pub fn mesh(&self) -> &MeshConfig {
        &self.mesh
    }

    /// Every valid ext_authz provider (what adapters build clients / filters for).
    pub fn ext_authz_providers(&self) -> &[ExtAuthzProvider] {
        &self.mesh.ext_authz
    }

    /// The ext_authz provider a `Decision::ext_authz` names.
    pub fn ext_authz_provider(&self, name: &str) -> Option<&ExtAuthzProvider> {
        self.mesh.ext_authz_provider(name)
    }

    /// The service implementing `provider` (`[<namespace>/]<hostname>`; a hostname without
    /// namespace resolves from the root namespace).
    pub fn ext_authz_service(&self, provider: &ExtAuthzProvider) -> Option<&ServiceInfo> {
        let ns = provider
            .service_namespace
            .as_deref()
            .unwrap_or(&self.root_namespace);
        self.registry
            .index_by_host(&provider.service_host, ns)
            .map(|i| &self.registry.services[i])
    }

    /// All compiled policies.
    pub fn policies(&self) -> &[CompiledPolicy] {
        &self.policies
    }
}
