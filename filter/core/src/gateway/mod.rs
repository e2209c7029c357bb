//! Gateway API HTTPRoute and GRPCRoute compiled into the shared route model, ordered by
//! the Gateway API precedence rules.

// TEMPORARY STUB (lead): replaced by the gateway branch.
use crate::error::{Diagnostics, ResourceId};
use crate::resource::RawResource;
use crate::route::RouteEntry;
use crate::service::ServiceLookup;
#[derive(Debug, Clone)]
pub struct ParentRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub port: Option<u16>,
    pub section_name: Option<String>,
}
#[derive(Debug)]
pub struct CompiledRoute {
    pub id: ResourceId,
    pub parents: Vec<ParentRef>,
    pub hostnames: Vec<String>,
    pub creation_timestamp: Option<String>,
    pub seq: usize,
}
pub fn compile_http_route(
    _raw: &RawResource,
    _s: &dyn ServiceLookup,
) -> (Option<CompiledRoute>, Diagnostics) {
    (None, Diagnostics::default())
}
pub fn compile_grpc_route(
    _raw: &RawResource,
    _s: &dyn ServiceLookup,
) -> (Option<CompiledRoute>, Diagnostics) {
    (None, Diagnostics::default())
}
pub fn ordered_entries(_routes: &[&CompiledRoute]) -> Vec<RouteEntry> {
    vec![]
}
