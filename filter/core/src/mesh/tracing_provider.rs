//! MeshConfig `extensionProviders` of kind `opentelemetry`: the OTLP/gRPC collector a
//! Telemetry resource's tracing names, validated with Istio's rules.

use serde::Deserialize;
use serde_json::{Map, Value};

/// `MeshConfig.ExtensionProvider.OpenTelemetryTracingProvider` (istio/api
/// `mesh/v1alpha1/config.proto`). Unknown fields are errors; `http`, `resourceDetectors` and
/// `dynatraceSampler` are accepted and reported as not supported.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OtelSpec {
    #[serde(default)]
    service: String,
    #[serde(default)]
    port: Option<u64>,
    #[serde(default)]
    max_tag_length: Option<u64>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    http: Option<Value>,
    #[serde(default)]
    resource_detectors: Option<Value>,
    #[serde(default)]
    dynatrace_sampler: Option<Value>,
}

/// One validated `opentelemetry` provider: spans go to `host:port` over OTLP/gRPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracingProvider {
    pub name: String,
    /// Position in `extensionProviders` (for error field paths).
    pub index: usize,
    /// `service` as written: `[<namespace>/]<hostname>`.
    pub service: String,
    /// The hostname part of `service` (what is dialled).
    pub host: String,
    pub port: u16,
    /// Longest tag value kept (Istio's default: 256).
    pub max_tag_length: u32,
}

/// Istio's `maxTagLength` default.
pub const DEFAULT_MAX_TAG_LENGTH: u32 = 256;

/// Compile an `opentelemetry` provider. Errors are `(field, message)`; `notes` collects
/// accepted-but-ignored settings as `(field, message)` warnings.
pub(crate) fn compile_otel(
    p: &Map<String, Value>,
    name: &str,
    index: usize,
    field: &str,
    notes: &mut Vec<(String, String)>,
) -> Result<TracingProvider, (String, String)> {
    let base = format!("{field}.opentelemetry");
    let raw = p.get("opentelemetry").cloned().unwrap_or(Value::Null);
    let raw = if raw.is_null() {
        Value::Object(Map::new())
    } else {
        raw
    };
    let spec: OtelSpec = serde_path_to_error::deserialize(&raw).map_err(|e| {
        let path = e.path().to_string();
        let f = if path == "." || path.is_empty() {
            base.clone()
        } else {
            format!("{base}.{path}")
        };
        (f, e.inner().to_string())
    })?;
    let service = spec.service.trim().to_string();
    if service.is_empty() {
        return Err((format!("{base}.service"), "must not be empty".into()));
    }
    let host = match service.split_once('/') {
        Some((ns, h)) if !ns.is_empty() && !h.is_empty() && !h.contains('/') => h.to_string(),
        Some(_) => {
            return Err((
                format!("{base}.service"),
                format!("must be [<namespace>/]<hostname>, found {service:?}"),
            ))
        }
        None => service.clone(),
    };
    let port = match spec.port {
        Some(p @ 1..=65535) => p as u16,
        other => {
            return Err((
                format!("{base}.port"),
                format!(
                    "port must be in the range [1, 65535], found: {}",
                    other.unwrap_or(0)
                ),
            ))
        }
    };
    for (set, f) in [
        (spec.http.is_some(), "http"),
        (spec.resource_detectors.is_some(), "resourceDetectors"),
        (spec.dynatrace_sampler.is_some(), "dynatraceSampler"),
        (spec.timeout.is_some(), "timeout"),
    ] {
        if set {
            notes.push((
                format!("{base}.{f}"),
                "not supported by this waypoint; ignored (spans go over OTLP/gRPC)".into(),
            ));
        }
    }
    let max_tag_length = spec
        .max_tag_length
        .filter(|n| *n > 0)
        .map_or(DEFAULT_MAX_TAG_LENGTH, |n| {
            n.min(u64::from(u32::MAX)) as u32
        });
    Ok(TracingProvider {
        name: name.to_string(),
        index,
        service,
        host,
        port,
        max_tag_length,
    })
}
