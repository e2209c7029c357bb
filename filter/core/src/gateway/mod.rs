//! Gateway API HTTPRoute and GRPCRoute compiled into the shared route model, ordered by
//! the Gateway API precedence rules (GAMMA mesh semantics as Istio implements them).
//!
//! Use:
//! - `compile_http_route` / `compile_grpc_route` (or the `_with_grants` variants, given the
//!   ReferenceGrants) turn one resource into a `CompiledRoute`: its parents, hostnames and one
//!   `CompiledEntry` per (rule, match).
//! - For each parent (a Service / ServiceEntry for GAMMA, or a Gateway), collect the routes that
//!   name it and call `ordered_entries_for_parent` (adds the parentRef `port` restriction as
//!   Istio's `augmentPortMatch` does) or `ordered_entries` (no port handling); first match wins.
//!   If `routes_apply_to_port` is false for the request's port, use the service default route;
//!   if it is true and nothing matches, answer 404 (mesh conformance tests expect both).
//! - Mesh parents (`ParentRef::is_mesh`): Istio ignores `hostnames`. Gateway parents: pick the
//!   routes for the request host with `routes_for_host` (most specific hostname wins, as
//!   Envoy's virtual host choice) before ordering; a listener `hostname` on the Gateway must
//!   also be intersected with the route hostnames (not modelled here).
//! - Consumer routes (route namespace != parent Service namespace): GAMMA says they affect only
//!   clients in the route's namespace; the snapshot puts them first in the service's table,
//!   each entry restricted to that namespace (`RequestMatch::source_namespace`).

mod backends;
mod compile;
mod filters;
mod hostnames;
mod matches;
mod parents;
mod precedence;

#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod tests;

pub use backends::ReferenceGrants;
pub use hostnames::{host_matches, routes_for_host};
pub use parents::{ParentKey, ParentRef};
pub use precedence::{
    ordered_entries, ordered_entries_for_parent, routes_apply_to_port, MatchRank,
};

use crate::error::{Diagnostics, ResourceId};
use crate::resource::RawResource;
use crate::route::RouteEntry;
use crate::service::ServiceLookup;

/// The API group of Gateway API resources.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// One compiled HTTPRoute or GRPCRoute.
#[derive(Debug, Clone)]
pub struct CompiledRoute {
    pub id: ResourceId,
    /// parentRefs with defaults applied (group `gateway.networking.k8s.io`, kind `Gateway`,
    /// namespace = the route's namespace).
    pub parents: Vec<ParentRef>,
    /// `spec.hostnames` as written (ignored for mesh parents, as Istio does).
    pub hostnames: Vec<String>,
    /// `metadata.creationTimestamp` (RFC 3339), for "oldest route wins".
    pub creation_timestamp: Option<String>,
    /// Read order; stands in for the creation time when the timestamp is absent.
    pub seq: usize,
    /// One entry per (rule, match), in rule order.
    pub entries: Vec<CompiledEntry>,
}

/// One match of one rule, with what precedence needs.
#[derive(Debug, Clone)]
pub struct CompiledEntry {
    pub entry: RouteEntry,
    pub rule_index: usize,
    pub match_index: usize,
    pub rank: MatchRank,
}

/// Compile an HTTPRoute (gateway.networking.k8s.io v1, v1beta1). Cross-namespace backendRefs
/// of routes with only Gateway parents need a ReferenceGrant; none are known here.
pub fn compile_http_route(
    raw: &RawResource,
    services: &dyn ServiceLookup,
) -> (Option<CompiledRoute>, Diagnostics) {
    compile_http_route_with_grants(raw, services, &ReferenceGrants::default())
}

/// Compile a GRPCRoute (gateway.networking.k8s.io v1, v1alpha2).
pub fn compile_grpc_route(
    raw: &RawResource,
    services: &dyn ServiceLookup,
) -> (Option<CompiledRoute>, Diagnostics) {
    compile_grpc_route_with_grants(raw, services, &ReferenceGrants::default())
}

/// `compile_http_route` with the ReferenceGrants of the cluster.
pub fn compile_http_route_with_grants(
    raw: &RawResource,
    services: &dyn ServiceLookup,
    grants: &ReferenceGrants,
) -> (Option<CompiledRoute>, Diagnostics) {
    compile::compile_route(raw, services, grants, compile::RouteKind::Http)
}

/// `compile_grpc_route` with the ReferenceGrants of the cluster.
pub fn compile_grpc_route_with_grants(
    raw: &RawResource,
    services: &dyn ServiceLookup,
    grants: &ReferenceGrants,
) -> (Option<CompiledRoute>, Diagnostics) {
    compile::compile_route(raw, services, grants, compile::RouteKind::Grpc)
}
