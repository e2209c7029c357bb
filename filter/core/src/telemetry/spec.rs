//! Strict serde input types for `telemetry.istio.io` Telemetry (istio/api
//! `telemetry/v1/telemetry.proto`): the tracing and access-logging parts a waypoint applies.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::authz::spec::PolicyTargetReference;

/// `Telemetry.spec`. `metrics` is accepted and left to the metrics pipeline (not applied).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TelemetrySpec {
    #[serde(default)]
    pub selector: Option<SelectorSpec>,
    #[serde(default)]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default)]
    pub target_refs: Option<Vec<PolicyTargetReference>>,
    #[serde(default)]
    pub tracing: Vec<TracingSpec>,
    #[serde(default)]
    pub access_logging: Vec<AccessLoggingSpec>,
    #[serde(default)]
    pub metrics: Vec<Value>,
}

/// `istio.type.v1beta1.WorkloadSelector`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SelectorSpec {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// `ProviderRef`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderRef {
    #[serde(default)]
    pub name: String,
}

/// `WorkloadMode` selector (`match: {mode: CLIENT | SERVER | CLIENT_AND_SERVER}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModeSelector {
    #[serde(default)]
    pub mode: Option<String>,
}

/// `Tracing`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TracingSpec {
    #[serde(default, rename = "match")]
    pub matches: Option<ModeSelector>,
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    #[serde(default)]
    pub random_sampling_percentage: Option<f64>,
    #[serde(default)]
    pub disable_span_reporting: Option<bool>,
    #[serde(default)]
    pub custom_tags: Option<BTreeMap<String, CustomTagSpec>>,
    /// Accepted; the waypoint samples by the incoming `traceparent` and the percentage.
    #[serde(default)]
    #[allow(dead_code)]
    pub use_request_id_for_trace_sampling: Option<bool>,
    /// Accepted; spans carry the waypoint's own attributes either way.
    #[serde(default)]
    #[allow(dead_code)]
    pub enable_istio_tags: Option<bool>,
}

/// `Tracing.CustomTag`: exactly one of the three.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CustomTagSpec {
    #[serde(default)]
    pub literal: Option<LiteralSpec>,
    #[serde(default)]
    pub environment: Option<NamedSpec>,
    #[serde(default)]
    pub header: Option<NamedSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LiteralSpec {
    #[serde(default)]
    pub value: String,
}

/// `Tracing.Environment` / `Tracing.RequestHeader`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct NamedSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub default_value: Option<String>,
}

/// `AccessLogging`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AccessLoggingSpec {
    #[serde(default, rename = "match")]
    pub matches: Option<ModeSelector>,
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub filter: Option<Value>,
}
