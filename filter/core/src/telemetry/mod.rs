//! The Telemetry API (`telemetry.istio.io` Telemetry) as it applies to one waypoint: access
//! logging on/off and tracing (provider, sampling, custom tags), merged as istiod merges them.

mod merge;
mod select;
mod spec;

#[cfg(test)]
mod tests;

use crate::error::{Diagnostics, ResourceId};
use crate::mesh::{MeshConfig, TracingProvider};
use crate::registry::Waypoint;
use crate::resource::RawResource;

/// Istio's sampling when nothing sets `randomSamplingPercentage` (istiod's
/// `PILOT_TRACE_SAMPLING` / ProxyConfig `tracing.sampling` default: 1 %).
pub const DEFAULT_SAMPLING_PERCENT: f64 = 1.0;

/// What the Telemetry API decides for this waypoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryPolicy {
    /// `Some(on)` when a Telemetry (or `defaultProviders.accessLogging`) decides access
    /// logging; `None` = the legacy switch (`accessLogFile`, the `--access-log` flag).
    pub access_log: Option<bool>,
    /// Span reporting, when a provider is in force and not disabled.
    pub tracing: Option<TracingPolicy>,
    /// The Telemetry resources that applied, least specific first (mesh, namespace, waypoint).
    pub applied: Vec<ResourceId>,
}

impl TelemetryPolicy {
    /// Access logging on, given the legacy switch for when no Telemetry decides.
    pub fn access_log_on(&self, legacy: bool) -> bool {
        self.access_log.unwrap_or(legacy)
    }
}

/// Tracing in force: where spans go, how many requests start a trace, what tags spans carry.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingPolicy {
    pub provider: TracingProvider,
    /// Percentage of requests without a sampling decision that are traced, in [0, 100].
    pub sampling_percent: f64,
    /// `customTags`, sorted by tag name.
    pub custom_tags: Vec<CustomTag>,
}

/// One `customTags` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomTag {
    pub tag: String,
    pub value: TagValue,
}

/// Where a custom tag's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagValue {
    Literal(String),
    /// A request header (lower-case name); the default when absent (no tag without one).
    Header {
        name: String,
        default: Option<String>,
    },
    /// An environment variable of the proxy; the default when unset.
    Environment {
        name: String,
        default: Option<String>,
    },
}

/// Compile every Telemetry of `resources` that applies to `waypoint` (root namespace without
/// selector or targetRefs = mesh-wide; the waypoint's namespace without them = namespace-wide;
/// `targetRefs` naming the waypoint Gateway = the waypoint), with `mesh`'s providers. A bad
/// Telemetry is reported and left out; it never affects the others.
pub fn compile(
    resources: &[RawResource],
    waypoint: Option<&Waypoint>,
    mesh: &MeshConfig,
    root_namespace: &str,
    diags: &mut Diagnostics,
) -> TelemetryPolicy {
    let levels = select::applicable(resources, waypoint, root_namespace, diags);
    let applied = levels.iter().map(|l| l.id.clone()).collect();
    TelemetryPolicy {
        access_log: merge::access_log(&levels, mesh, diags),
        tracing: merge::tracing(&levels, mesh, diags),
        applied,
    }
}

/// Is `r` a Telemetry resource?
pub fn is_telemetry(r: &RawResource) -> bool {
    r.group() == "telemetry.istio.io" && r.kind == "Telemetry"
}
