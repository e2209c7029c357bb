//! Strict serde input types for MeshConfig `extensionProviders` of the ext_authz kinds, as in
//! istio/api `mesh/v1alpha1/config.proto` (other MeshConfig fields are accepted and ignored).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// `MeshConfig`: only `extensionProviders` is read; every other field is left to istiod.
/// Providers stay raw here: each is parsed on its own so errors carry its index.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MeshConfigSpec {
    #[serde(default)]
    pub extension_providers: Vec<serde_json::Map<String, serde_json::Value>>,
    /// `pathNormalization` (`ProxyPathNormalization`).
    #[serde(default)]
    pub path_normalization: Option<PathNormalizationSpec>,
    /// `defaultProviders`: providers used when no Telemetry names one.
    #[serde(default)]
    pub default_providers: Option<DefaultProvidersSpec>,
    /// `accessLogFile`: the legacy switch for Envoy's file access log.
    #[serde(default)]
    pub access_log_file: Option<String>,
}

/// `MeshConfig.DefaultProviders` (`metrics` is Istio's concern, not the waypoint's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DefaultProvidersSpec {
    #[serde(default)]
    pub tracing: Vec<String>,
    #[serde(default)]
    pub access_logging: Vec<String>,
    /// Accepted; Istio's metrics are always emitted.
    #[serde(default)]
    #[allow(dead_code)]
    pub metrics: Vec<String>,
}

/// `ProxyPathNormalization`: `{normalization: NONE | BASE | MERGE_SLASHES |
/// DECODE_AND_MERGE_SLASHES | DEFAULT}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PathNormalizationSpec {
    #[serde(default)]
    pub normalization: Option<String>,
}

/// `EnvoyExternalAuthorizationHttpProvider`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HttpProviderSpec {
    #[serde(default)]
    pub service: String,
    #[serde(default, deserialize_with = "number_or_string")]
    pub port: Option<u64>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub fail_open: bool,
    #[serde(default, deserialize_with = "number_or_string")]
    pub status_on_error: Option<u64>,
    #[serde(default)]
    pub include_request_headers_in_check: Vec<String>,
    /// Deprecated spelling of `includeRequestHeadersInCheck`, still accepted by Istio.
    #[serde(default)]
    pub include_headers_in_check: Vec<String>,
    #[serde(default)]
    pub include_additional_headers_in_check: BTreeMap<String, String>,
    #[serde(default)]
    pub include_request_body_in_check: Option<serde_json::Value>,
    #[serde(default)]
    pub headers_to_upstream_on_allow: Vec<String>,
    #[serde(default)]
    pub headers_to_downstream_on_deny: Vec<String>,
    #[serde(default)]
    pub headers_to_downstream_on_allow: Vec<String>,
}

/// `EnvoyExternalAuthorizationGrpcProvider`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GrpcProviderSpec {
    #[serde(default)]
    pub service: String,
    #[serde(default, deserialize_with = "number_or_string")]
    pub port: Option<u64>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub fail_open: bool,
    #[serde(default, deserialize_with = "number_or_string")]
    pub status_on_error: Option<u64>,
    #[serde(default)]
    pub include_request_body_in_check: Option<serde_json::Value>,
}

/// `port` is a uint32 and `statusOnError` a string in the proto; users write both as YAML
/// numbers or quoted strings (`port: "9000"`), and protojson takes either.
fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(u64),
        Str(String),
    }
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrStr::Num(n)) => Ok(Some(n)),
        Some(NumOrStr::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(NumOrStr::Str(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("expected a number, found {s:?}"))),
    }
}
