//! The compiled route model that VirtualService, HTTPRoute and GRPCRoute all compile into:
//! an ordered list of (match, rule) entries per service, first match wins.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use crate::matchers::StringMatch;

/// Where a rule came from: `Kind/namespace/name` plus the rule's index or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleId {
    /// `VirtualService`, `HTTPRoute`, `GRPCRoute`, or `default` (no route config).
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// Rule name (VirtualService `http[].name`, HTTPRoute `rules[].name`) or its index.
    pub rule: String,
}

impl RuleId {
    /// `Kind/namespace/name`.
    pub fn resource(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// A header condition. `matcher: None` means "present"; `invert` negates (withoutHeaders,
/// Gateway API has no negation).
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    /// Lower-case header name, or a JWT claim as `@request.auth.claims.a.b`
    /// ([`CLAIM_MATCH_PREFIX`]).
    pub name: String,
    pub matcher: Option<StringMatch>,
    pub invert: bool,
}

/// A [`HeaderMatch`] name with this prefix matches a claim of the request's verified JWT
/// (dot-separated nested names), not a header.
pub const CLAIM_MATCH_PREFIX: &str = "@request.auth.claims.";

/// A query parameter condition; `matcher: None` means "present".
#[derive(Debug, Clone)]
pub struct QueryMatch {
    pub name: String,
    pub matcher: Option<StringMatch>,
}

/// One match block: every present field must match (AND).
#[derive(Debug, Clone, Default)]
pub struct RequestMatch {
    /// Matches the path without the query string.
    pub path: Option<StringMatch>,
    /// VirtualService `ignoreUriCase`.
    pub ignore_uri_case: bool,
    pub method: Option<StringMatch>,
    pub scheme: Option<StringMatch>,
    pub authority: Option<StringMatch>,
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<QueryMatch>,
    /// Destination (service) port.
    pub port: Option<u16>,
    /// Only requests from this namespace's workloads (peer identity `.../ns/NS/...`): the
    /// consumer routes of GAMMA.
    pub source_namespace: Option<Arc<str>>,
}

/// One entry of a route table: one match of one rule.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub matcher: RequestMatch,
    pub rule: Arc<Rule>,
}

/// A rule: its identity and what to do.
#[derive(Debug)]
pub struct Rule {
    pub id: RuleId,
    pub action: RuleAction,
}

/// What a matched rule does. `Forward` is large but rules are built once and never moved
/// on the hot path, so boxing it would only add an indirection.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum RuleAction {
    Forward(Forward),
    Redirect(Redirect),
    DirectResponse(DirectResponse),
}

/// A service reference a route forwards or mirrors to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendRef {
    /// Service name (short) and namespace.
    pub name: String,
    pub namespace: String,
    /// Hostname (FQDN for Kubernetes services; the host for ServiceEntries).
    pub host: String,
    /// DestinationRule subset, if any.
    pub subset: Option<String>,
    /// Service port; `None` means "the port the request came in on".
    pub port: Option<u16>,
}

/// A weighted backend with its own header mutations.
#[derive(Debug, Clone)]
pub struct WeightedBackend {
    pub backend: BackendRef,
    pub weight: u32,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    /// Set when the reference could not be resolved (unknown service, bad kind...);
    /// a request that picks it gets 500, as Istio does for Gateway API invalid backends.
    pub invalid: Option<String>,
}

/// Header mutations: set overwrites, add appends, remove deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Rewrite of the path.
#[derive(Debug, Clone)]
pub enum PathRewrite {
    /// Replace the whole path (Gateway `ReplaceFullPath`).
    Full(String),
    /// Replace the matched prefix (VirtualService `rewrite.uri` after a prefix match, Gateway
    /// `ReplacePrefixMatch`). `prefix` is what the rule matched on.
    Prefix { prefix: String, replacement: String },
    /// VirtualService `uriRegexRewrite`: regex replace-all over the path. `substitution` is in
    /// the regex crate's syntax (`${1}`), converted once from Envoy's RE2 `\1` at compile time.
    Regex { regex: Regex, substitution: String },
}

/// URL rewrite applied before forwarding.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    pub path: Option<PathRewrite>,
    pub authority: Option<String>,
}

/// Retry policy handed to the data path.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    /// Envoy retry_on conditions, e.g. `connect-failure`, `5xx`.
    pub retry_on: Vec<String>,
    /// Retriable status codes.
    pub codes: Vec<u16>,
    pub backoff: Option<Duration>,
}

/// Fault injection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fault {
    /// Fixed delay and the percentage of requests it applies to.
    pub delay: Option<(Duration, f64)>,
    /// Abort status (HTTP) and percentage; gRPC aborts carry the grpc status.
    pub abort: Option<FaultAbort>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultAbort {
    pub http_status: u16,
    pub grpc_status: Option<String>,
    pub percent: f64,
}

/// A mirror target.
#[derive(Debug, Clone)]
pub struct Mirror {
    pub backend: BackendRef,
    /// 0..=100.
    pub percent: f64,
}

/// CORS policy (VirtualService corsPolicy / Gateway CORS filter).
#[derive(Debug, Clone, Default)]
pub struct Cors {
    pub allow_origins: Vec<StringMatch>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<Duration>,
    pub allow_credentials: Option<bool>,
}

/// Forward to one of the backends.
#[derive(Debug, Clone, Default)]
pub struct Forward {
    pub backends: Vec<WeightedBackend>,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    pub rewrite: Option<Rewrite>,
    /// Whole-request timeout (VS `timeout`, Gateway `timeouts.request`).
    pub timeout: Option<Duration>,
    /// Per-attempt timeout (Gateway `timeouts.backendRequest`).
    pub backend_timeout: Option<Duration>,
    pub retries: Option<RetryPolicy>,
    pub fault: Option<Fault>,
    pub mirrors: Vec<Mirror>,
    pub cors: Option<Cors>,
}

/// Port of a redirect's Location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectPort {
    /// Keep the request's port (if any).
    Keep,
    Set(u16),
    /// Istio `derivePort: FROM_PROTOCOL_DEFAULT` / Gateway default when scheme changes:
    /// omit the port (80 for http, 443 for https).
    ProtocolDefault,
}

/// Redirect response.
#[derive(Debug, Clone)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: RedirectPort,
    pub path: Option<PathRewrite>,
    pub status: u16,
    pub response_headers: HeaderOps,
}

/// Fixed response.
#[derive(Debug, Clone)]
pub struct DirectResponse {
    pub status: u16,
    pub body: Option<String>,
    pub response_headers: HeaderOps,
}

/// DestinationRule traffic policy carried to the data path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficPolicy {
    pub load_balancer: Option<LoadBalancer>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<OutlierDetection>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LoadBalancer {
    RoundRobin,
    LeastRequest,
    Random,
    Passthrough,
    /// Consistent hash on a header, cookie, source IP or query parameter: Envoy's ring hash
    /// (`consistentHash.ringHash`, Istio's default) ...
    ConsistentHash(HashKey),
    /// ... or Maglev (`consistentHash.maglev`).
    Maglev(HashKey),
}

impl LoadBalancer {
    /// The hash key of a consistent-hash balancer.
    pub fn hash_key(&self) -> Option<&HashKey> {
        match self {
            LoadBalancer::ConsistentHash(k) | LoadBalancer::Maglev(k) => Some(k),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HashKey {
    Header(String),
    Cookie(String),
    SourceIp,
    QueryParameter(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionPool {
    pub max_connections: Option<u32>,
    pub connect_timeout: Option<Duration>,
    pub http1_max_pending_requests: Option<u32>,
    pub http2_max_requests: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
    pub max_retries: Option<u32>,
    pub idle_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutlierDetection {
    pub consecutive_5xx_errors: Option<u32>,
    pub consecutive_gateway_errors: Option<u32>,
    pub interval: Option<Duration>,
    pub base_ejection_time: Option<Duration>,
    pub max_ejection_percent: Option<u32>,
}

/// A compiled DestinationRule for one host: subsets and policies.
#[derive(Debug, Clone, Default)]
pub struct DestinationPolicy {
    /// `DestinationRule/ns/name`.
    pub source: String,
    pub traffic_policy: TrafficPolicy,
    /// Per-port overrides (portLevelSettings).
    pub port_policies: BTreeMap<u16, TrafficPolicy>,
    pub subsets: BTreeMap<String, Subset>,
}

#[derive(Debug, Clone, Default)]
pub struct Subset {
    pub labels: BTreeMap<String, String>,
    /// The subset's own policy merged over the rule's top level; `None`: the rule's applies.
    pub traffic_policy: Option<TrafficPolicy>,
    /// Per-port policies of the subset: its own portLevelSettings, else the rule's
    /// port-level ones with the subset's fields over them (set with `traffic_policy`).
    pub port_policies: BTreeMap<u16, TrafficPolicy>,
}

impl DestinationPolicy {
    /// The traffic policy of the cluster for `subset` (`None`: the whole service) and service
    /// port `port`, as pilot `MergeTrafficPolicy` resolves it: port-level settings replace the
    /// top level, a subset's fields replace the rule's, a subset's port-level settings last.
    /// `None` when the subset is not defined.
    pub fn policy_for(&self, subset: Option<&str>, port: u16) -> Option<&TrafficPolicy> {
        let top = self
            .port_policies
            .get(&port)
            .unwrap_or(&self.traffic_policy);
        let Some(name) = subset else {
            return Some(top);
        };
        let s = self.subsets.get(name)?;
        Some(match &s.traffic_policy {
            Some(own) => s.port_policies.get(&port).unwrap_or(own),
            None => top,
        })
    }
}
