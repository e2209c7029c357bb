//! VirtualService spec as written (camelCase JSON/YAML), field for field with the CRD schema of
//! istio/api `networking/v1alpha3/virtual_service.proto`; no defaults or validation here.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `spec` of a VirtualService.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualServiceSpec {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub http: Vec<HttpRouteIn>,
    /// TLS routes: accepted, ignored by the waypoint (it only sees HTTP).
    #[serde(default)]
    pub tls: Vec<Value>,
    /// TCP routes: accepted, ignored by the waypoint's HTTP routing.
    #[serde(default)]
    pub tcp: Vec<Value>,
    #[serde(default)]
    pub export_to: Vec<String>,
}

/// `http[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteIn {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matches: Option<Vec<MatchIn>>,
    pub route: Option<Vec<RouteDestinationIn>>,
    pub redirect: Option<RedirectIn>,
    pub direct_response: Option<DirectResponseIn>,
    pub delegate: Option<Value>,
    pub rewrite: Option<RewriteIn>,
    pub timeout: Option<String>,
    pub retries: Option<RetryIn>,
    pub fault: Option<FaultIn>,
    pub mirror: Option<DestinationIn>,
    pub mirrors: Option<Vec<MirrorPolicyIn>>,
    /// Deprecated integer percentage.
    pub mirror_percent: Option<i64>,
    /// The CRD also lists the snake_case spelling.
    #[serde(rename = "mirror_percent")]
    pub mirror_percent_snake: Option<i64>,
    pub mirror_percentage: Option<PercentIn>,
    pub cors_policy: Option<CorsPolicyIn>,
    pub headers: Option<HeadersIn>,
}

/// `StringMatch`: a oneof of exact / prefix / regex; `{}` means "present" where allowed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringMatchIn {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
}

/// `http[].match[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchIn {
    pub name: Option<String>,
    pub uri: Option<StringMatchIn>,
    pub scheme: Option<StringMatchIn>,
    pub method: Option<StringMatchIn>,
    pub authority: Option<StringMatchIn>,
    #[serde(default)]
    pub headers: BTreeMap<String, Option<StringMatchIn>>,
    pub port: Option<u64>,
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub query_params: BTreeMap<String, Option<StringMatchIn>>,
    #[serde(default)]
    pub ignore_uri_case: bool,
    #[serde(default)]
    pub without_headers: BTreeMap<String, Option<StringMatchIn>>,
    pub source_namespace: Option<String>,
    pub stat_prefix: Option<String>,
}

/// `Destination`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationIn {
    #[serde(default)]
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<PortSelectorIn>,
}

/// `PortSelector`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSelectorIn {
    pub number: Option<u64>,
}

/// `http[].route[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDestinationIn {
    pub destination: Option<DestinationIn>,
    pub weight: Option<i64>,
    pub headers: Option<HeadersIn>,
}

/// `Headers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersIn {
    pub request: Option<HeaderOperationsIn>,
    pub response: Option<HeaderOperationsIn>,
}

/// `Headers.HeaderOperations`; maps are ordered by name, as Istio sorts them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOperationsIn {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `HTTPRedirect`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedirectIn {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub port: Option<u64>,
    pub derive_port: Option<String>,
    pub scheme: Option<String>,
    pub redirect_code: Option<u64>,
    pub prefix_rewrite: Option<String>,
}

/// `HTTPDirectResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponseIn {
    pub status: Option<u64>,
    pub body: Option<BodyIn>,
}

/// `HTTPBody`: `string` or base64 `bytes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyIn {
    pub string: Option<String>,
    pub bytes: Option<String>,
}

/// `HTTPRewrite`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewriteIn {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub uri_regex_rewrite: Option<RegexRewriteIn>,
}

/// `RegexRewrite`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexRewriteIn {
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    pub rewrite: Option<String>,
}

/// `HTTPRetry`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryIn {
    pub attempts: Option<i64>,
    pub per_try_timeout: Option<String>,
    pub retry_on: Option<String>,
    pub retry_remote_localities: Option<bool>,
    pub retry_ignore_previous_hosts: Option<bool>,
    pub backoff: Option<String>,
}

/// `HTTPFaultInjection`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultIn {
    pub delay: Option<DelayIn>,
    pub abort: Option<AbortIn>,
}

/// `HTTPFaultInjection.Delay` (`percent` is the deprecated integer form).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DelayIn {
    pub percent: Option<i64>,
    pub fixed_delay: Option<String>,
    pub exponential_delay: Option<String>,
    pub percentage: Option<PercentIn>,
}

/// `HTTPFaultInjection.Abort` (the proto reserves `percent`; the CRD has no such field).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbortIn {
    pub http_status: Option<i64>,
    pub grpc_status: Option<String>,
    pub http2_error: Option<String>,
    pub percentage: Option<PercentIn>,
}

/// `HTTPMirrorPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorPolicyIn {
    pub destination: Option<DestinationIn>,
    pub percentage: Option<PercentIn>,
}

/// `Percent`: `{value: <double>}`; a missing value is 0.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PercentIn {
    #[serde(default)]
    pub value: f64,
}

/// `CorsPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsPolicyIn {
    /// Deprecated exact-match origins.
    pub allow_origin: Option<Vec<String>>,
    pub allow_origins: Option<Vec<StringMatchIn>>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    pub max_age: Option<String>,
    pub allow_credentials: Option<bool>,
    pub unmatched_preflights: Option<String>,
}
