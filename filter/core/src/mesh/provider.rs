//! Validated ext_authz providers (HTTP and gRPC) with Istio's defaults applied; what both data
//! paths (the host's client and Envoy's native ext_authz filter) read.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::spec::{GrpcProviderSpec, HttpProviderSpec};
use crate::istio::parse_duration;

/// Istio's ext_authz timeout when `timeout` is unset (builder/extauthz.go: 600s, "so that the
/// timeout in DestinationRule can be used to control the real timeout").
pub const DEFAULT_EXT_AUTHZ_TIMEOUT: Duration = Duration::from_secs(600);

/// Envoy's `status_on_error` default: 403 Forbidden.
pub const DEFAULT_STATUS_ON_ERROR: u16 = 403;

/// A header-name pattern of the provider's header lists: Istio turns `x-*` into a prefix,
/// `*-id` into a suffix and anything else into an exact match, all case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPattern {
    /// Lower-cased exact name.
    Exact(String),
    /// Lower-cased prefix.
    Prefix(String),
    /// Lower-cased suffix.
    Suffix(String),
    /// `*`: any header.
    Any,
}

impl HeaderPattern {
    pub fn parse(s: &str) -> HeaderPattern {
        let s = s.trim().to_ascii_lowercase();
        if s == "*" {
            HeaderPattern::Any
        } else if let Some(p) = s.strip_suffix('*') {
            HeaderPattern::Prefix(p.to_string())
        } else if let Some(p) = s.strip_prefix('*') {
            HeaderPattern::Suffix(p.to_string())
        } else {
            HeaderPattern::Exact(s)
        }
    }

    /// Does header `name` match (case-insensitively)?
    pub fn matches(&self, name: &str) -> bool {
        let n = name.as_bytes();
        match self {
            HeaderPattern::Exact(e) => name.eq_ignore_ascii_case(e),
            HeaderPattern::Prefix(p) => {
                n.len() >= p.len() && n[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            }
            HeaderPattern::Suffix(s) => {
                n.len() >= s.len() && n[n.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
            HeaderPattern::Any => true,
        }
    }

    /// Does any pattern of `list` match `name`?
    pub fn any(list: &[HeaderPattern], name: &str) -> bool {
        list.iter().any(|p| p.matches(name))
    }
}

/// `envoyExtAuthzHttp` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtAuthzHttp {
    /// Prepended to the original path of the check request (`""` when unset).
    pub path_prefix: String,
    /// Client request headers sent in the check (besides Host, Method, Path, Content-Length
    /// and Authorization, which Envoy always sends).
    pub include_request_headers: Vec<HeaderPattern>,
    /// Fixed headers added to the check request.
    pub additional_headers: Vec<(String, String)>,
    /// Check-response headers copied onto the upstream request on allow (none when empty).
    pub headers_to_upstream_on_allow: Vec<HeaderPattern>,
    /// Check-response headers sent to the client on deny (all but Host when empty).
    pub headers_to_downstream_on_deny: Vec<HeaderPattern>,
    /// Check-response headers added to the client response on allow (none when empty).
    pub headers_to_downstream_on_allow: Vec<HeaderPattern>,
}

/// `envoyExtAuthzGrpc` needs nothing beyond the common settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtAuthzGrpc {}

/// Which ext_authz protocol the provider speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtAuthzKind {
    Http(ExtAuthzHttp),
    Grpc(ExtAuthzGrpc),
}

/// One validated ext_authz provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtAuthzProvider {
    pub name: String,
    /// Position in `extensionProviders` (for error field paths).
    pub index: usize,
    /// `service` as written: `[<namespace>/]<hostname>`.
    pub service: String,
    /// The namespace part of `service`, if given.
    pub service_namespace: Option<String>,
    /// The hostname part of `service`.
    pub service_host: String,
    pub port: u16,
    pub timeout: Duration,
    /// On error or timeout: allow (`true`) or reply `status_on_error`.
    pub fail_open: bool,
    pub status_on_error: u16,
    pub kind: ExtAuthzKind,
}

impl ExtAuthzProvider {
    /// `envoyExtAuthzGrpc`?
    pub fn is_grpc(&self) -> bool {
        matches!(self.kind, ExtAuthzKind::Grpc(_))
    }

    /// The HTTP settings, for an HTTP provider.
    pub fn http(&self) -> Option<&ExtAuthzHttp> {
        match &self.kind {
            ExtAuthzKind::Http(h) => Some(h),
            ExtAuthzKind::Grpc(_) => None,
        }
    }
}

type FieldError = (String, String);

fn err(field: String, msg: impl Into<String>) -> FieldError {
    (field, msg.into())
}

/// Common fields of both provider kinds.
struct Common<'a> {
    service: &'a str,
    port: Option<u64>,
    timeout: Option<&'a str>,
    status_on_error: Option<u64>,
    body: bool,
}

/// The fields both provider kinds have (their spec structs cannot share them through
/// `#[serde(flatten)]`, which serde does not support with `deny_unknown_fields`).
macro_rules! common_of {
    ($p:expr) => {
        Common {
            service: &$p.service,
            port: $p.port,
            timeout: $p.timeout.as_deref(),
            status_on_error: $p.status_on_error,
            body: $p.include_request_body_in_check.is_some(),
        }
    };
}

struct CommonOut {
    service_namespace: Option<String>,
    service_host: String,
    port: u16,
    timeout: Duration,
    status_on_error: u16,
}

fn common(c: Common<'_>, base: &str) -> Result<CommonOut, FieldError> {
    if c.body {
        return Err(err(
            format!("{base}.includeRequestBodyInCheck"),
            "not supported by this waypoint: the check request never carries the body",
        ));
    }
    let service = c.service.trim();
    if service.is_empty() {
        return Err(err(format!("{base}.service"), "must not be empty"));
    }
    let (ns, host) = match service.split_once('/') {
        Some((ns, host)) if !ns.is_empty() && !host.is_empty() && !host.contains('/') => {
            (Some(ns.to_string()), host.to_string())
        }
        Some(_) => {
            return Err(err(
                format!("{base}.service"),
                format!("must be [<namespace>/]<hostname>, found {service:?}"),
            ))
        }
        None => (None, service.to_string()),
    };
    if host.contains('*') {
        return Err(err(
            format!("{base}.service"),
            format!("wildcard hostname {host:?} is not supported"),
        ));
    }
    let port = match c.port {
        Some(p @ 1..=65535) => p as u16,
        Some(p) => {
            return Err(err(
                format!("{base}.port"),
                format!("port must be in the range [1, 65535], found: {p}"),
            ))
        }
        None => {
            return Err(err(
                format!("{base}.port"),
                "port must be in the range [1, 65535], found: 0",
            ))
        }
    };
    let timeout = match c.timeout {
        None => DEFAULT_EXT_AUTHZ_TIMEOUT,
        Some(t) => match parse_duration(t) {
            Ok(d) if d.is_zero() => {
                return Err(err(format!("{base}.timeout"), "must be greater than 0"))
            }
            Ok(d) => d,
            Err(e) => return Err(err(format!("{base}.timeout"), e)),
        },
    };
    // Istio accepts the codes of envoy.type.v3.StatusCode; all are in [100, 599].
    let status_on_error = match c.status_on_error {
        None => DEFAULT_STATUS_ON_ERROR,
        Some(s @ 100..=599) => s as u16,
        Some(s) => {
            return Err(err(
                format!("{base}.statusOnError"),
                format!("invalid statusOnError {s}: must be an HTTP status code in [100, 599]"),
            ))
        }
    };
    Ok(CommonOut {
        service_namespace: ns,
        service_host: host,
        port,
        timeout,
        status_on_error,
    })
}

fn patterns(list: &[String]) -> Vec<HeaderPattern> {
    list.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| HeaderPattern::parse(s))
        .collect()
}

fn http(p: &HttpProviderSpec, base: &str) -> Result<(CommonOut, ExtAuthzKind), FieldError> {
    let c = common(common_of!(p), base)?;
    let path_prefix = p.path_prefix.clone().unwrap_or_default();
    if !path_prefix.is_empty() && !path_prefix.starts_with('/') {
        return Err(err(
            format!("{base}.pathPrefix"),
            format!("pathPrefix must begin with `/`, found: {path_prefix:?}"),
        ));
    }
    if path_prefix.contains(['?', '#', ' ']) {
        return Err(err(
            format!("{base}.pathPrefix"),
            format!("invalid pathPrefix {path_prefix:?}: must be a plain path"),
        ));
    }
    let mut include = p.include_request_headers_in_check.clone();
    include.extend(p.include_headers_in_check.iter().cloned());
    for k in p.include_additional_headers_in_check.keys() {
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(err(
                format!("{base}.includeAdditionalHeadersInCheck"),
                format!("invalid header name {k:?}"),
            ));
        }
    }
    Ok((
        c,
        ExtAuthzKind::Http(ExtAuthzHttp {
            path_prefix,
            include_request_headers: patterns(&include),
            additional_headers: p
                .include_additional_headers_in_check
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            headers_to_upstream_on_allow: patterns(&p.headers_to_upstream_on_allow),
            headers_to_downstream_on_deny: patterns(&p.headers_to_downstream_on_deny),
            headers_to_downstream_on_allow: patterns(&p.headers_to_downstream_on_allow),
        }),
    ))
}

fn grpc(p: &GrpcProviderSpec, base: &str) -> Result<(CommonOut, ExtAuthzKind), FieldError> {
    let c = common(common_of!(p), base)?;
    Ok((c, ExtAuthzKind::Grpc(ExtAuthzGrpc {})))
}

/// Strictly parse `value` as `T`, errors naming `field` and the path below it.
fn parse<T: DeserializeOwned>(value: &Value, field: &str) -> Result<T, FieldError> {
    let empty = Value::Object(Map::new());
    let v = if value.is_null() { &empty } else { value };
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let f = if path == "." || path.is_empty() {
            field.to_string()
        } else {
            format!("{field}.{path}")
        };
        err(f, e.inner().to_string())
    })
}

/// The provider's `name` (`""` when missing or not a string).
pub(crate) fn provider_name(p: &Map<String, Value>) -> &str {
    p.get("name").and_then(Value::as_str).unwrap_or("")
}

/// Compile one provider: `Ok(None)` for a provider that is not ext_authz.
pub(crate) fn compile_provider(
    p: &Map<String, Value>,
    index: usize,
    field: &str,
) -> Result<Option<ExtAuthzProvider>, FieldError> {
    let kinds: Vec<&String> = p.keys().filter(|k| *k != "name").collect();
    if kinds.len() != 1 {
        return Err(err(
            field.to_string(),
            format!(
                "exactly one provider kind must be set, found {}: {kinds:?}",
                kinds.len()
            ),
        ));
    }
    let name = provider_name(p).to_string();
    let (c, kind, fail_open) = match kinds[0].as_str() {
        "envoyExtAuthzHttp" => {
            let base = format!("{field}.envoyExtAuthzHttp");
            let spec: HttpProviderSpec = parse(&p["envoyExtAuthzHttp"], &base)?;
            let (c, k) = http(&spec, &base)?;
            (c, k, spec.fail_open)
        }
        "envoyExtAuthzGrpc" => {
            let base = format!("{field}.envoyExtAuthzGrpc");
            let spec: GrpcProviderSpec = parse(&p["envoyExtAuthzGrpc"], &base)?;
            let (c, k) = grpc(&spec, &base)?;
            (c, k, spec.fail_open)
        }
        _ => return Ok(None),
    };
    let service = match &c.service_namespace {
        Some(ns) => format!("{ns}/{}", c.service_host),
        None => c.service_host.clone(),
    };
    Ok(Some(ExtAuthzProvider {
        name,
        index,
        service,
        service_namespace: c.service_namespace,
        service_host: c.service_host,
        port: c.port,
        timeout: c.timeout,
        fail_open,
        status_on_error: c.status_on_error,
        kind,
    }))
}
