//! The `envoy.filters.http.local_ratelimit` typed config (`LocalRateLimit` v3, plain or in a
//! `TypedStruct`) read strictly into a validated [`LocalRateLimit`]; errors name the field.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::actions::{compile_rate_limits, RateLimitRule, RawRateLimit};
use super::bucket::TokenBucket;
use crate::istio::duration::parse_duration;

/// The filter's name in Envoy (and the `typed_per_filter_config` key).
pub const FILTER_NAME: &str = "envoy.filters.http.local_ratelimit";
/// The config's type URL.
pub const TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";
const TYPED_STRUCTS: [&str; 2] = [
    "type.googleapis.com/udpa.type.v1.TypedStruct",
    "type.googleapis.com/xds.type.v3.TypedStruct",
];
/// Envoy's lower bound on `fill_interval`.
const MIN_FILL_INTERVAL: Duration = Duration::from_millis(50);

/// One validated local rate limit config (filter level or per route).
#[derive(Debug, Clone)]
pub struct LocalRateLimit {
    pub stat_prefix: String,
    /// Status of a limited request (429 unless set to 400 or more).
    pub status: u16,
    /// The default bucket (required per route; optional at filter level).
    pub token_bucket: Option<TokenBucket>,
    /// `filter_enabled` / `filter_enforced` default values in parts per million (default 0).
    pub enabled_ppm: u32,
    pub enforced_ppm: u32,
    pub response_headers: Vec<HeaderAdd>,
    pub request_headers_when_not_enforced: Vec<HeaderAdd>,
    pub descriptors: Vec<Descriptor>,
    /// `enable_x_ratelimit_headers: DRAFT_VERSION_03`.
    pub x_ratelimit_headers: bool,
    pub per_connection: bool,
    pub always_consume_default: bool,
    pub stage: u32,
    /// `rate_limits` of the config itself (they replace the route's when set).
    pub rate_limits: Vec<RateLimitRule>,
    /// gRPC requests limited get RESOURCE_EXHAUSTED instead of UNAVAILABLE.
    pub grpc_resource_exhausted: bool,
    /// The config as Envoy gets it: a plain `LocalRateLimit` with its `@type`.
    pub envoy_json: Value,
}

/// A header a limited response (or request) gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderAdd {
    pub name: String,
    pub value: String,
    /// Replace an existing value (`append: false`, `OVERWRITE_IF_EXISTS_OR_ADD`); else add.
    pub overwrite: bool,
    /// `ADD_IF_ABSENT`: only when the header is not there.
    pub if_absent: bool,
}

/// A configured descriptor: its entries and its own bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub entries: Vec<(String, String)>,
    pub bucket: TokenBucket,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocalRateLimit {
    #[serde(alias = "statPrefix")]
    stat_prefix: Option<String>,
    status: Option<RawStatus>,
    #[serde(alias = "tokenBucket")]
    token_bucket: Option<RawTokenBucket>,
    #[serde(alias = "filterEnabled")]
    filter_enabled: Option<RawRuntimeFraction>,
    #[serde(alias = "filterEnforced")]
    filter_enforced: Option<RawRuntimeFraction>,
    #[serde(default, alias = "requestHeadersToAddWhenNotEnforced")]
    request_headers_to_add_when_not_enforced: Vec<RawHeaderValueOption>,
    #[serde(default, alias = "responseHeadersToAdd")]
    response_headers_to_add: Vec<RawHeaderValueOption>,
    #[serde(default)]
    descriptors: Vec<RawDescriptor>,
    stage: Option<u32>,
    #[serde(default, alias = "localRateLimitPerDownstreamConnection")]
    local_rate_limit_per_downstream_connection: bool,
    #[serde(alias = "enableXRatelimitHeaders")]
    enable_x_ratelimit_headers: Option<String>,
    #[serde(alias = "vhRateLimits")]
    vh_rate_limits: Option<String>,
    #[serde(alias = "alwaysConsumeDefaultTokenBucket")]
    always_consume_default_token_bucket: Option<bool>,
    #[serde(default, alias = "rateLimitedAsResourceExhausted")]
    rate_limited_as_resource_exhausted: bool,
    #[serde(default, alias = "rateLimits")]
    rate_limits: Vec<RawRateLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    code: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokenBucket {
    #[serde(alias = "maxTokens")]
    max_tokens: Option<u32>,
    #[serde(alias = "tokensPerFill")]
    tokens_per_fill: Option<u32>,
    #[serde(alias = "fillInterval")]
    fill_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntimeFraction {
    #[serde(alias = "runtimeKey")]
    #[allow(dead_code)]
    runtime_key: Option<String>,
    #[serde(alias = "defaultValue")]
    default_value: RawFraction,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFraction {
    #[serde(default)]
    numerator: u32,
    denominator: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderValueOption {
    header: RawHeader,
    append: Option<bool>,
    #[serde(alias = "appendAction")]
    append_action: Option<String>,
    #[serde(default, alias = "keepEmptyValue")]
    #[allow(dead_code)]
    keep_empty_value: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    key: String,
    #[serde(default)]
    value: String,
    #[serde(alias = "rawValue")]
    raw_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDescriptor {
    entries: Vec<RawEntry>,
    #[serde(alias = "tokenBucket")]
    token_bucket: Option<RawTokenBucket>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    key: String,
    value: Option<String>,
}

/// The `LocalRateLimit` inside a `typed_config` (or `typed_per_filter_config` entry): plain
/// with `@type`, or wrapped in a `TypedStruct` (`type_url` + `value`), as Istio's task writes
/// it. Errors are `(field under value, message)`.
pub fn unwrap_typed(v: &Value) -> Result<(Value, &'static str), (String, String)> {
    unwrap_typed_as(v, TYPE_URL)
}

/// [`unwrap_typed`] for the config of type `type_url`.
pub fn unwrap_typed_as(
    v: &Value,
    type_url: &str,
) -> Result<(Value, &'static str), (String, String)> {
    let Some(obj) = v.as_object() else {
        return Err((String::new(), "must be an object with \"@type\"".into()));
    };
    let ty = obj.get("@type").and_then(Value::as_str).unwrap_or("");
    if ty == type_url {
        let mut plain = obj.clone();
        plain.remove("@type");
        return Ok((Value::Object(plain), ""));
    }
    if TYPED_STRUCTS.contains(&ty) {
        let url = obj
            .get("type_url")
            .or_else(|| obj.get("typeUrl"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if url != type_url {
            return Err((
                "type_url".into(),
                format!("is {url:?}; the waypoint applies only {type_url}"),
            ));
        }
        let inner = obj.get("value").cloned().unwrap_or(Value::Null);
        let inner = if inner.is_null() {
            Value::Object(Default::default())
        } else {
            inner
        };
        return Ok((inner, "value."));
    }
    Err((
        "@type".into(),
        format!("is {ty:?}; the waypoint applies only {type_url} (plain or in a TypedStruct)"),
    ))
}

/// Read one `LocalRateLimit` (already unwrapped from its `TypedStruct`). `per_route`: the
/// token bucket is required (Envoy rejects a per-route config without one). Errors are
/// `(field path inside the config, message)`.
pub fn compile(v: &Value, per_route: bool) -> Result<LocalRateLimit, (String, String)> {
    let raw: RawLocalRateLimit = serde_path_to_error::deserialize(v).map_err(|e| {
        let p = e.path().to_string();
        (
            if p == "." { String::new() } else { p },
            e.inner().to_string(),
        )
    })?;
    let err = |f: &str, m: String| (f.to_string(), m);
    let stat_prefix = match raw.stat_prefix {
        Some(s) if !s.is_empty() => s,
        _ => return Err(err("stat_prefix", "is required".into())),
    };
    let status = match raw.status {
        None => 429,
        Some(s) => match http_status(&s.code) {
            Some(c) if c >= 400 => c,
            Some(_) => 429,
            None => return Err(err("status.code", format!("{} is no HTTP status", s.code))),
        },
    };
    let token_bucket = match raw.token_bucket {
        None if per_route => {
            return Err(err(
                "token_bucket",
                "is required in a route's config (Envoy rejects it without one)".into(),
            ))
        }
        None => None,
        Some(b) => Some(bucket(b).map_err(|(f, m)| err(&format!("token_bucket.{f}"), m))?),
    };
    let enabled_ppm = fraction(raw.filter_enabled).map_err(|m| err("filter_enabled", m))?;
    let enforced_ppm = fraction(raw.filter_enforced).map_err(|m| err("filter_enforced", m))?;
    let response_headers = headers(raw.response_headers_to_add)
        .map_err(|(i, m)| err(&format!("response_headers_to_add[{i}]"), m))?;
    let request_headers_when_not_enforced =
        headers(raw.request_headers_to_add_when_not_enforced)
            .map_err(|(i, m)| err(&format!("request_headers_to_add_when_not_enforced[{i}]"), m))?;
    let mut descriptors = Vec::new();
    for (i, d) in raw.descriptors.into_iter().enumerate() {
        let f = format!("descriptors[{i}]");
        if d.entries.is_empty() {
            return Err(err(&format!("{f}.entries"), "must not be empty".into()));
        }
        let mut entries = Vec::new();
        for (j, e) in d.entries.into_iter().enumerate() {
            match e.value {
                Some(v) if !v.is_empty() => entries.push((e.key, v)),
                _ => {
                    return Err(err(
                        &format!("{f}.entries[{j}].value"),
                        "a wildcard entry (no value) is not supported by the waypoint".into(),
                    ))
                }
            }
        }
        let Some(b) = d.token_bucket else {
            return Err(err(&format!("{f}.token_bucket"), "is required".into()));
        };
        let bucket = bucket(b).map_err(|(g, m)| err(&format!("{f}.token_bucket.{g}"), m))?;
        descriptors.push(Descriptor { entries, bucket });
    }
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
    if let Some(v) = raw.vh_rate_limits.as_deref() {
        if !matches!(v, "OVERRIDE" | "INCLUDE" | "IGNORE") {
            return Err(err(
                "vh_rate_limits",
                format!("{v:?} is not one of OVERRIDE, INCLUDE, IGNORE"),
            ));
        }
    }
    let stage = raw.stage.unwrap_or(0);
    if stage > 10 {
        return Err(err(
            "stage",
            format!("{stage} is over 10 (Envoy's range 0-10)"),
        ));
    }
    let rate_limits = compile_rate_limits(raw.rate_limits).map_err(|(f, m)| {
        let f = if f.is_empty() {
            "rate_limits".to_string()
        } else {
            format!("rate_limits{f}")
        };
        (f, m)
    })?;
    let mut envoy_json = v.clone();
    if let Value::Object(m) = &mut envoy_json {
        m.insert("@type".into(), Value::String(TYPE_URL.into()));
    }
    Ok(LocalRateLimit {
        stat_prefix,
        status,
        token_bucket,
        enabled_ppm,
        enforced_ppm,
        response_headers,
        request_headers_when_not_enforced,
        descriptors,
        x_ratelimit_headers,
        per_connection: raw.local_rate_limit_per_downstream_connection,
        always_consume_default: raw.always_consume_default_token_bucket.unwrap_or(true),
        stage,
        rate_limits,
        grpc_resource_exhausted: raw.rate_limited_as_resource_exhausted,
        envoy_json,
    })
}

pub(super) fn http_status(v: &Value) -> Option<u16> {
    if let Some(n) = v.as_u64() {
        return u16::try_from(n).ok().filter(|c| (100..600).contains(c));
    }
    // Protobuf JSON names the enum (`TooManyRequests`); the common ones.
    match v.as_str()? {
        "TooManyRequests" => Some(429),
        "ServiceUnavailable" => Some(503),
        "Forbidden" => Some(403),
        "BadRequest" => Some(400),
        s => s.parse().ok().filter(|c| (100..600).contains(c)),
    }
}

fn bucket(b: RawTokenBucket) -> Result<TokenBucket, (String, String)> {
    let max_tokens = match b.max_tokens {
        Some(n) if n > 0 => n,
        _ => return Err(("max_tokens".into(), "must be greater than 0".into())),
    };
    let tokens_per_fill = match b.tokens_per_fill {
        None => 1,
        Some(0) => return Err(("tokens_per_fill".into(), "must be greater than 0".into())),
        Some(n) => n,
    };
    let Some(text) = b.fill_interval else {
        return Err(("fill_interval".into(), "is required".into()));
    };
    let fill_interval = parse_duration(&text).map_err(|m| ("fill_interval".to_string(), m))?;
    if fill_interval < MIN_FILL_INTERVAL {
        return Err((
            "fill_interval".into(),
            format!("{text:?} is under 50ms (Envoy's minimum)"),
        ));
    }
    Ok(TokenBucket {
        max_tokens,
        tokens_per_fill,
        fill_interval,
    })
}

/// A runtime fractional percent's default value in parts per million (absent: 0%).
fn fraction(f: Option<RawRuntimeFraction>) -> Result<u32, String> {
    let Some(f) = f else { return Ok(0) };
    let scale = match f.default_value.denominator.as_deref() {
        None | Some("HUNDRED") => 10_000,
        Some("TEN_THOUSAND") => 100,
        Some("MILLION") => 1,
        Some(other) => {
            return Err(format!(
                "default_value.denominator {other:?} is not one of HUNDRED, TEN_THOUSAND, MILLION"
            ))
        }
    };
    // Envoy caps a numerator above the denominator at 100%.
    Ok(f.default_value
        .numerator
        .saturating_mul(scale)
        .min(1_000_000))
}

fn headers(list: Vec<RawHeaderValueOption>) -> Result<Vec<HeaderAdd>, (usize, String)> {
    let mut out = Vec::new();
    for (i, h) in list.into_iter().enumerate() {
        let name = h.header.key.to_ascii_lowercase();
        if name.is_empty() || http_header_name_bad(&name) {
            return Err((
                i,
                format!("header.key {:?} is no header name", h.header.key),
            ));
        }
        let value = h.header.raw_value.unwrap_or(h.header.value);
        let (overwrite, if_absent) = match (h.append_action.as_deref(), h.append) {
            (Some("APPEND_IF_EXISTS_OR_ADD"), _) => (false, false),
            (Some("ADD_IF_ABSENT"), _) => (false, true),
            (Some("OVERWRITE_IF_EXISTS_OR_ADD" | "OVERWRITE_IF_EXISTS"), _) => (true, false),
            (Some(other), _) => return Err((i, format!("append_action {other:?} is unknown"))),
            (None, Some(false)) => (true, false),
            (None, _) => (false, false),
        };
        out.push(HeaderAdd {
            name,
            value,
            overwrite,
            if_absent,
        });
    }
    Ok(out)
}

fn http_header_name_bad(name: &str) -> bool {
    name.starts_with(':')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
