//! Istio networking resources: VirtualService and DestinationRule compiled into the shared
//! route model and destination policies.

mod context;
mod delegate;
pub mod destination_rule;
pub mod duration;
pub mod hosts;
pub(crate) mod http_match;
mod http_rule;
pub mod types;
pub mod virtual_service;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests_dr;
#[cfg(test)]
mod tests_fixtures;
#[cfg(test)]
mod tests_vs;

pub use delegate::merge_delegates;
pub use destination_rule::{
    compile_destination_rule, merge_destination_rules, CompiledDestinationRule,
};
pub use duration::parse_duration;
pub use http_match::MESH_GATEWAY;
pub use http_rule::{default_retry_policy, is_default_retry_policy};
pub use virtual_service::{
    compile_virtual_service, merge_for_host, merge_for_host_at, CompiledVirtualService,
};
