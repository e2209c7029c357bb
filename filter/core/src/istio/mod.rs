//! Istio networking resources: VirtualService and DestinationRule compiled into the shared
//! route model and destination policies.

// TEMPORARY STUB (lead): replaced by the istio branch.
use crate::error::{Diagnostics, ResourceId};
use crate::resource::RawResource;
use crate::route::{DestinationPolicy, RouteEntry};
use crate::service::ServiceLookup;
#[derive(Debug)]
pub struct CompiledVirtualService {
    pub id: ResourceId,
    pub hosts: Vec<String>,
    pub gateways: Vec<String>,
    pub entries: Vec<RouteEntry>,
    pub creation_timestamp: Option<String>,
    pub seq: usize,
}
pub fn compile_virtual_service(
    _raw: &RawResource,
    _s: &dyn ServiceLookup,
) -> (Option<CompiledVirtualService>, Diagnostics) {
    (None, Diagnostics::default())
}
pub fn merge_for_host(vss: &[&CompiledVirtualService]) -> Vec<RouteEntry> {
    vss.iter().flat_map(|v| v.entries.iter().cloned()).collect()
}
#[derive(Debug)]
pub struct CompiledDestinationRule {
    pub id: ResourceId,
    pub host: String,
    pub policy: DestinationPolicy,
    pub creation_timestamp: Option<String>,
    pub seq: usize,
}
pub fn compile_destination_rule(
    _raw: &RawResource,
    _s: &dyn ServiceLookup,
) -> (Option<CompiledDestinationRule>, Diagnostics) {
    (None, Diagnostics::default())
}
