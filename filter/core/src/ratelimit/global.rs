//! Global rate limiting: the `envoy.filters.http.ratelimit` typed config (Istio's
//! "Enabling Rate Limits using Envoy" task) read into a [`GlobalRateLimit`], and where its
//! rate limit service is.
//!
//! The service is named by a cluster: one a CLUSTER ADD patch defines (its endpoints), else
//! an `outbound|<port>||<host>` name of a service the registry knows ([`RlsTarget`]). The
//! request itself (descriptors from the route's `rate_limits`) is computed by
//! [`super::descriptors`]; the call is the runtime's.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::PatchRef;
use crate::istio::duration::parse_duration;
use crate::registry::Registry;

/// The filter's name in Envoy.
pub const GLOBAL_FILTER_NAME: &str = "envoy.filters.http.ratelimit";
/// Its config's type URL.
pub const GLOBAL_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit";
/// Envoy's default timeout of a rate limit service call.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(20);

/// One validated global rate limit filter config.
#[derive(Debug, Clone)]
pub struct GlobalRateLimit {
    pub domain: String,
    /// Only the route's `rate_limits` of this stage are sent.
    pub stage: u32,
    /// An error or timeout of the service denies (`status_on_error`, flag `RLSE`).
    pub failure_mode_deny: bool,
    /// How long to wait for the service (Envoy's default 20ms).
    pub timeout: Duration,
    /// `enable_x_ratelimit_headers: DRAFT_VERSION_03`.
    pub x_ratelimit_headers: bool,
    /// Leave out `x-envoy-ratelimited` on a limited response.
    pub disable_x_envoy_ratelimited_header: bool,
    /// Status of a limited request (429 unless set).
    pub rate_limited_status: u16,
    /// Status when the service fails and `failure_mode_deny` (500 unless set).
    pub status_on_error: u16,
    /// gRPC requests limited get RESOURCE_EXHAUSTED instead of UNAVAILABLE.
    pub grpc_resource_exhausted: bool,
    /// `rate_limit_service.grpc_service.envoy_grpc.cluster_name`.
    pub cluster: String,
    /// The config as Envoy gets it: a plain `RateLimit` with its `@type`.
    pub envoy_json: Value,
}

/// A global rate limit filter in the waypoint's chain (one per HTTP_FILTER patch).
#[derive(Debug, Clone)]
pub struct GlobalFilter {
    pub source: PatchRef,
    pub config: GlobalRateLimit,
    /// Where its service is (`None`: the cluster is unknown; every call fails).
    pub target: Option<RlsTarget>,
}

/// Where a rate limit service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RlsTarget {
    /// A CLUSTER patch's endpoints: `(address, port)`, the address an IP or a DNS name.
    Endpoints(Vec<(String, u16)>),
    /// A service of the registry (`outbound|<port>||<host>`): its index and port.
    Service { index: usize, port: u16 },
}

/// A cluster a CLUSTER ADD patch defines.
#[derive(Debug, Clone)]
pub struct ClusterAdd {
    pub source: PatchRef,
    pub name: String,
    pub endpoints: Vec<(String, u16)>,
    /// The cluster as written (Envoy mode adds it as is).
    pub envoy_json: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    domain: Option<String>,
    stage: Option<u32>,
    #[serde(alias = "requestType")]
    request_type: Option<String>,
    timeout: Option<String>,
    #[serde(default, alias = "failureModeDeny")]
    failure_mode_deny: bool,
    #[serde(default, alias = "rateLimitedAsResourceExhausted")]
    rate_limited_as_resource_exhausted: bool,
    #[serde(alias = "rateLimitService")]
    rate_limit_service: Option<RawService>,
    #[serde(alias = "enableXRatelimitHeaders")]
    enable_x_ratelimit_headers: Option<String>,
    #[serde(default, alias = "disableXEnvoyRatelimitedHeader")]
    disable_x_envoy_ratelimited_header: bool,
    #[serde(alias = "rateLimitedStatus")]
    rate_limited_status: Option<RawStatus>,
    #[serde(alias = "statusOnError")]
    status_on_error: Option<RawStatus>,
    #[serde(alias = "statPrefix")]
    #[allow(dead_code)]
    stat_prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    code: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(alias = "grpcService")]
    grpc_service: Option<RawGrpcService>,
    #[serde(alias = "transportApiVersion")]
    transport_api_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrpcService {
    #[serde(alias = "envoyGrpc")]
    envoy_grpc: Option<RawEnvoyGrpc>,
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvoyGrpc {
    #[serde(alias = "clusterName")]
    cluster_name: String,
    #[allow(dead_code)]
    authority: Option<String>,
}

/// Read one `RateLimit` config (already unwrapped from its `TypedStruct`). Errors are
/// `(field path inside the config, message)`.
pub fn compile(v: &Value) -> Result<GlobalRateLimit, (String, String)> {
    let raw: RawRateLimit = serde_path_to_error::deserialize(v).map_err(|e| {
        let p = e.path().to_string();
        (
            if p == "." { String::new() } else { p },
            e.inner().to_string(),
        )
    })?;
    let err = |f: &str, m: String| (f.to_string(), m);
    let domain = match raw.domain {
        Some(d) if !d.is_empty() => d,
        _ => return Err(err("domain", "is required".into())),
    };
    let stage = raw.stage.unwrap_or(0);
    if stage > 10 {
        return Err(err(
            "stage",
            format!("{stage} is over 10 (Envoy's range 0-10)"),
        ));
    }
    if let Some(t) = raw.request_type.as_deref() {
        if !matches!(t, "internal" | "external" | "both") {
            return Err(err(
                "request_type",
                format!("{t:?} is not one of internal, external, both"),
            ));
        }
    }
    let timeout = match raw.timeout.as_deref() {
        None => DEFAULT_TIMEOUT,
        Some(t) => parse_duration(t).map_err(|m| err("timeout", m))?,
    };
    let Some(service) = raw.rate_limit_service else {
        return Err(err("rate_limit_service", "is required".into()));
    };
    if let Some(v) = service.transport_api_version.as_deref() {
        if v != "V3" {
            return Err(err(
                "rate_limit_service.transport_api_version",
                format!("{v:?}: Envoy 1.40 speaks only V3"),
            ));
        }
    }
    let grpc = service.grpc_service.ok_or_else(|| {
        err(
            "rate_limit_service.grpc_service",
            "is required (envoy_grpc.cluster_name)".into(),
        )
    })?;
    if let Some(t) = grpc.timeout.as_deref() {
        parse_duration(t).map_err(|m| err("rate_limit_service.grpc_service.timeout", m))?;
    }
    let cluster = match grpc.envoy_grpc {
        Some(e) if !e.cluster_name.is_empty() => e.cluster_name,
        _ => {
            return Err(err(
                "rate_limit_service.grpc_service.envoy_grpc.cluster_name",
                "is required (the waypoint reaches the service through envoy_grpc only)".into(),
            ))
        }
    };
    let x_ratelimit_headers = match raw.enable_x_ratelimit_headers.as_deref() {
        None | Some("OFF") => false,
        Some("DRAFT_VERSION_03") => true,
        Some(other) => {
            return Err(err(
                "enable_x_ratelimit_headers",
                format!("{other:?} is not one of OFF, DRAFT_VERSION_03"),
            ))
        }
    };
    let status = |s: Option<RawStatus>, field: &str, default: u16| match s {
        None => Ok(default),
        Some(s) => match super::config::http_status(&s.code) {
            // Envoy uses the default for a code under 400.
            Some(c) if c >= 400 => Ok(c),
            Some(_) => Ok(default),
            None => Err(err(
                &format!("{field}.code"),
                format!("{} is no HTTP status", s.code),
            )),
        },
    };
    let rate_limited_status = status(raw.rate_limited_status, "rate_limited_status", 429)?;
    let status_on_error = status(raw.status_on_error, "status_on_error", 500)?;
    let mut envoy_json = v.clone();
    if let Value::Object(m) = &mut envoy_json {
        m.insert("@type".into(), Value::String(GLOBAL_TYPE_URL.into()));
        // Envoy reads a protobuf Duration only as seconds ("0.5s"); Istio's durations may be
        // written "500ms".
        if m.contains_key("timeout") {
            m.insert("timeout".into(), Value::String(proto_duration(timeout)));
        }
    }
    Ok(GlobalRateLimit {
        domain,
        stage,
        failure_mode_deny: raw.failure_mode_deny,
        timeout,
        x_ratelimit_headers,
        disable_x_envoy_ratelimited_header: raw.disable_x_envoy_ratelimited_header,
        rate_limited_status,
        status_on_error,
        grpc_resource_exhausted: raw.rate_limited_as_resource_exhausted,
        cluster,
        envoy_json,
    })
}

/// A duration as protobuf JSON writes it: seconds with up to nine decimals and `s`.
fn proto_duration(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return format!("{}s", d.as_secs());
    }
    let frac = format!("{nanos:09}");
    format!("{}.{}s", d.as_secs(), frac.trim_end_matches('0'))
}

/// Read a CLUSTER ADD patch's value: its name and its `load_assignment` endpoints. Errors
/// are `(field path inside the value, message)`.
pub fn cluster(source: PatchRef, v: &Value) -> Result<ClusterAdd, (String, String)> {
    let name = match v.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => return Err(("name".into(), "is required".into())),
    };
    let la = v
        .get("load_assignment")
        .or_else(|| v.get("loadAssignment"))
        .ok_or_else(|| {
            (
                "load_assignment".to_string(),
                "is required (the waypoint reaches the cluster's listed endpoints)".to_string(),
            )
        })?;
    let mut endpoints = Vec::new();
    let groups = la.get("endpoints").and_then(Value::as_array);
    for (i, g) in groups.into_iter().flatten().enumerate() {
        let lbs = g
            .get("lb_endpoints")
            .or_else(|| g.get("lbEndpoints"))
            .and_then(Value::as_array);
        for (j, e) in lbs.into_iter().flatten().enumerate() {
            let at = format!(
                "load_assignment.endpoints[{i}].lb_endpoints[{j}].endpoint.address.socket_address"
            );
            let sa = e
                .get("endpoint")
                .and_then(|e| e.get("address"))
                .and_then(|a| a.get("socket_address").or_else(|| a.get("socketAddress")))
                .ok_or_else(|| (at.clone(), "is required".to_string()))?;
            let addr = sa.get("address").and_then(Value::as_str).unwrap_or("");
            let port = sa
                .get("port_value")
                .or_else(|| sa.get("portValue"))
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok());
            match (addr, port) {
                ("", _) => return Err((format!("{at}.address"), "is required".into())),
                (_, None) => {
                    return Err((format!("{at}.port_value"), "must be a port number".into()))
                }
                (a, Some(p)) => endpoints.push((a.to_string(), p)),
            }
        }
    }
    if endpoints.is_empty() {
        return Err((
            "load_assignment.endpoints".into(),
            "lists no endpoint".into(),
        ));
    }
    Ok(ClusterAdd {
        source,
        name,
        endpoints,
        envoy_json: v.clone(),
    })
}

/// Where cluster `name` is: a CLUSTER patch's endpoints (an address that is a service's
/// hostname becomes that service), else the registry's service for `outbound|port||host`.
pub fn resolve(name: &str, clusters: &[ClusterAdd], registry: &Registry) -> Option<RlsTarget> {
    if let Some(c) = clusters.iter().rev().find(|c| c.name == name) {
        // Istio's task defines the cluster STRICT_DNS on the service's hostname: the registry
        // already knows its endpoints, so no DNS is needed for it.
        if let [(host, port)] = c.endpoints.as_slice() {
            if host.parse::<std::net::IpAddr>().is_err() {
                if let Some(index) = registry.index_by_host(host, "default") {
                    return Some(RlsTarget::Service { index, port: *port });
                }
            }
        }
        return Some(RlsTarget::Endpoints(c.endpoints.clone()));
    }
    let rest = name.strip_prefix("outbound|")?;
    let mut parts = rest.splitn(3, '|');
    let port: u16 = parts.next()?.parse().ok()?;
    let subset = parts.next()?;
    let host = parts.next()?;
    if !subset.is_empty() {
        return None;
    }
    let index = registry.index_by_host(host, "default")?;
    registry.services[index].port(port)?;
    Some(RlsTarget::Service { index, port })
}
