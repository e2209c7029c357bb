//! One VirtualService `http[]` rule compiled into a rule action: destinations and weights,
//! header operations, rewrite, redirect, direct response, timeout, retries, fault, mirrors, CORS.

use std::time::Duration;

use crate::matchers::StringMatch;
use crate::route::{
    Cors, DirectResponse, Fault, FaultAbort, Forward, HeaderOps, Mirror, PathRewrite, Redirect,
    RedirectPort, RetryPolicy, Rewrite, RuleAction, WeightedBackend,
};
use crate::service::ServiceLookup;

use super::context::Ctx;
use super::duration::check_percentage;
use super::hosts::resolve_backend;
use super::http_match::{compile_string_match, is_dns1123_label, is_http_token, UriKind, Where};
use super::types::{
    CorsPolicyIn, DestinationIn, FaultIn, HeaderOperationsIn, HeadersIn, HttpRouteIn, RetryIn,
};

/// Istio's retry policy when a route sets no `retries` (pilot `retry.DefaultPolicy`, mesh config
/// `defaultHttpRetryPolicy` unset): 2 retries on connect failures, refused streams and the gRPC
/// `unavailable` / `cancelled` statuses, plus `retriable-status-codes` with no codes listed.
pub fn default_retry_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        per_try_timeout: None,
        retry_on: DEFAULT_RETRY_ON.iter().map(|s| s.to_string()).collect(),
        codes: Vec::new(),
        backoff: None,
    }
}

/// Whether `policy` is exactly Istio's default (what a route without `retries` gets), so a
/// data path whose route table already carries that policy need not restate it per request.
pub fn is_default_retry_policy(policy: &RetryPolicy) -> bool {
    policy.attempts == 2
        && policy.per_try_timeout.is_none()
        && policy.codes.is_empty()
        && policy.backoff.is_none()
        && policy
            .retry_on
            .iter()
            .map(String::as_str)
            .eq(DEFAULT_RETRY_ON)
}

const DEFAULT_RETRY_ON: [&str; 5] = [
    "connect-failure",
    "refused-stream",
    "unavailable",
    "cancelled",
    "retriable-status-codes",
];

/// `retryOn` values Istio validation accepts (besides HTTP status codes).
const RETRY_ON_POLICIES: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// gRPC status names Istio accepts for `fault.abort.grpcStatus`, in code order.
const GRPC_STATUS: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

const CORS_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Status codes Go's `http.StatusText` knows: Istio treats a numeric `retryOn` entry as a
/// retriable status code only when it is one of these.
fn is_known_http_status(code: u16) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429
        | 431 | 451 | 500..=508 | 510 | 511)
}

/// The compiled rule before the match it sits under is known: path rewrites and prefix
/// redirects depend on how the block matched the URI.
#[derive(Debug)]
pub(crate) enum RuleTemplate {
    Forward {
        forward: Box<Forward>,
        /// `rewrite.uri` (without `uriRegexRewrite`).
        rewrite_uri: Option<String>,
    },
    Redirect {
        redirect: Redirect,
        /// `redirect.prefixRewrite`.
        prefix_rewrite: Option<String>,
    },
    Direct(DirectResponse),
}

impl RuleTemplate {
    /// True when the action differs between match blocks.
    pub fn depends_on_match(&self) -> bool {
        matches!(
            self,
            RuleTemplate::Forward {
                rewrite_uri: Some(_),
                ..
            } | RuleTemplate::Redirect {
                prefix_rewrite: Some(_),
                ..
            }
        )
    }

    /// The action for a block that matched the URI as `uri`.
    pub fn action_for(&self, uri: &UriKind) -> RuleAction {
        match self {
            RuleTemplate::Forward {
                forward,
                rewrite_uri,
            } => {
                let mut f = Forward::clone(forward);
                if let Some(replacement) = rewrite_uri {
                    let path = prefix_swap(uri, replacement);
                    let rw = f.rewrite.get_or_insert_with(Rewrite::default);
                    rw.path = Some(path);
                }
                RuleAction::Forward(f)
            }
            RuleTemplate::Redirect {
                redirect,
                prefix_rewrite,
            } => {
                let mut r = redirect.clone();
                if let Some(replacement) = prefix_rewrite {
                    r.path = Some(prefix_swap(uri, replacement));
                }
                RuleAction::Redirect(r)
            }
            RuleTemplate::Direct(d) => RuleAction::DirectResponse(d.clone()),
        }
    }
}

/// Envoy `prefix_rewrite` (pilot sets it for `rewrite.uri`): it swaps the *matched* part. A
/// prefix match swaps that prefix; an exact or regex match matched the whole path, so the
/// whole path is replaced; a block without `uri` is Envoy prefix `/`, so the leading `/` is
/// swapped (`rewrite.uri: /v2/` turns `/a` into `/v2/a`).
fn prefix_swap(uri: &UriKind, replacement: &str) -> PathRewrite {
    match uri {
        UriKind::Prefix(p) => PathRewrite::Prefix {
            prefix: p.clone(),
            replacement: replacement.to_string(),
        },
        UriKind::Exact | UriKind::Regex => PathRewrite::Full(replacement.to_string()),
        UriKind::None => PathRewrite::Prefix {
            prefix: "/".to_string(),
            replacement: replacement.to_string(),
        },
    }
}

/// Compiled header operations plus an `:authority`/`host` set or add (pilot turns those into
/// a host rewrite and never emits them as header operations).
#[derive(Debug, Default)]
struct HeaderPlan {
    request: HeaderOps,
    response: HeaderOps,
    authority: Option<String>,
}

fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

fn is_internal_header(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

fn compile_header_ops(
    ctx: &mut Ctx,
    path: &str,
    ops: &HeaderOperationsIn,
    request: bool,
    authority: &mut Option<String>,
) -> HeaderOps {
    let mut out = HeaderOps::default();
    for (verb, map, target) in [("set", &ops.set, 0), ("add", &ops.add, 1)] {
        for (name, value) in map {
            let field = format!("{path}.{verb}.{name}");
            if request && is_authority_header(name) {
                if let Some(prev) = authority.as_ref() {
                    ctx.err(
                        &field,
                        format!("authority header cannot be set multiple times: have {prev:?}, attempting to set {value:?}"),
                    );
                } else {
                    *authority = Some(value.clone());
                }
                continue;
            }
            if is_internal_header(name) || !is_http_token(name) {
                ctx.err(&field, format!("invalid header name {name:?}"));
                continue;
            }
            if value.contains(['\r', '\n', '\0']) {
                ctx.err(&field, "header value must not contain CR, LF or NUL");
                continue;
            }
            if value.replace("%%", "").contains('%') {
                // Istio passes values to Envoy, which expands `%VAR%` formatters.
                ctx.warn(
                    &field,
                    "Envoy header formatters (%VAR%) are not expanded by the waypoint; the value is sent as written",
                );
            }
            let pair = (name.to_ascii_lowercase(), value.clone());
            if target == 0 {
                out.set.push(pair);
            } else {
                out.add.push(pair);
            }
        }
    }
    for (i, name) in ops.remove.iter().enumerate() {
        if is_internal_header(name) || !is_http_token(name) {
            ctx.err(
                format!("{path}.remove[{i}]"),
                format!("invalid header name {name:?}"),
            );
            continue;
        }
        out.remove.push(name.to_ascii_lowercase());
    }
    out
}

fn compile_headers(ctx: &mut Ctx, path: &str, headers: Option<&HeadersIn>) -> HeaderPlan {
    let mut plan = HeaderPlan::default();
    let Some(h) = headers else { return plan };
    if let Some(req) = &h.request {
        plan.request = compile_header_ops(
            ctx,
            &format!("{path}.request"),
            req,
            true,
            &mut plan.authority,
        );
    }
    if let Some(resp) = &h.response {
        let mut unused = None;
        plan.response =
            compile_header_ops(ctx, &format!("{path}.response"), resp, false, &mut unused);
    }
    plan
}

/// Check a `Destination` and resolve it to a backend; `None` when invalid (errors recorded).
fn compile_destination(
    ctx: &mut Ctx,
    path: &str,
    d: &DestinationIn,
    services: &dyn ServiceLookup,
) -> Option<crate::route::BackendRef> {
    let before = ctx.diags.errors.len();
    if d.host.is_empty() {
        ctx.err(format!("{path}.host"), "destination host is required");
    } else if d.host == "*" {
        ctx.err(format!("{path}.host"), "invalid destination host *");
    } else if let Err(e) = super::hosts::validate_wildcard_domain(&d.host) {
        ctx.err(format!("{path}.host"), e);
    }
    if let Some(subset) = &d.subset {
        if !is_dns1123_label(subset) {
            ctx.err(
                format!("{path}.subset"),
                format!("subset name is invalid: {subset:?}"),
            );
        }
    }
    let mut port = None;
    if let Some(number) = d.port.as_ref().and_then(|p| p.number) {
        match u16::try_from(number) {
            Ok(p) if p != 0 => port = Some(p),
            _ => ctx.err(
                format!("{path}.port.number"),
                format!("port {number} is not in 1..65535"),
            ),
        }
    }
    if ctx.diags.errors.len() > before {
        return None;
    }
    let ns = ctx.id.namespace.clone();
    let resolved = resolve_backend(services, &d.host, &ns);
    let mut backend = resolved.backend;
    match resolved.service {
        Some(svc) => {
            // Pilot `getWaypointDestinationCluster`: without a port, a single-port service
            // uses its only port; otherwise the port the request came in on.
            if port.is_none() && svc.ports.len() == 1 {
                port = svc.ports.first().map(|p| p.port);
            }
            let as_istio = !d.host.contains('.')
                || svc.hostname == d.host
                || svc.aliases.iter().any(|a| a == &d.host);
            if !as_istio {
                ctx.warn(
                    format!("{path}.host"),
                    format!("host {:?} resolved to {} via the registry; Istio treats dotted names other than FQDNs literally, prefer the FQDN", d.host, svc.hostname),
                );
            }
        }
        None => ctx.warn(
            format!("{path}.host"),
            format!(
                "host {:?} is not a known Service or ServiceEntry; routed as {}",
                d.host, backend.host
            ),
        ),
    }
    backend.subset = d.subset.clone();
    backend.port = port;
    Some(backend)
}

/// Compile the rule at `path` (`spec.http[i]`). `None` when the rule is invalid.
pub(crate) fn compile_rule(
    ctx: &mut Ctx,
    path: &str,
    rule: &HttpRouteIn,
    services: &dyn ServiceLookup,
) -> Option<RuleTemplate> {
    let before = ctx.diags.errors.len();
    if rule.delegate.is_some() {
        ctx.err(
            format!("{path}.delegate"),
            "delegate was not resolved (resolved only when the snapshot is built)",
        );
        return None;
    }
    let has_route = rule.route.as_ref().is_some_and(|r| !r.is_empty());
    check_conflicts(ctx, path, rule, has_route);

    let headers = compile_headers(ctx, &format!("{path}.headers"), rule.headers.as_ref());

    if rule.redirect.is_some() || rule.direct_response.is_some() {
        // Pilot only applies these in `applyHTTPRouteDestination` (forwarding routes).
        for (field, set) in [
            ("timeout", rule.timeout.is_some()),
            ("retries", rule.retries.is_some()),
            ("mirror", rule.mirror.is_some()),
            ("mirrors", rule.mirrors.is_some()),
            ("corsPolicy", rule.cors_policy.is_some()),
        ] {
            if set {
                ctx.warn(
                    format!("{path}.{field}"),
                    "ignored on a redirect or directResponse rule",
                );
            }
        }
    }
    let template = if let Some(redirect) = &rule.redirect {
        compile_redirect(ctx, path, rule, redirect, headers.response.clone())
    } else if let Some(direct) = &rule.direct_response {
        compile_direct(ctx, path, direct, headers.response.clone())
    } else if has_route {
        compile_forward(ctx, path, rule, headers, services)
    } else {
        None
    };
    if ctx.diags.errors.len() > before {
        return None;
    }
    template
}

/// Pilot `validateHTTPRouteConflict`.
fn check_conflicts(ctx: &mut Ctx, path: &str, rule: &HttpRouteIn, has_route: bool) {
    let mut conflict = |what: &str, with: &str| {
        ctx.err(
            path,
            format!("HTTP route cannot contain both {what} and {with}"),
        );
    };
    if rule.redirect.is_some() {
        if has_route {
            conflict("route", "redirect");
        }
        if rule.fault.is_some() {
            conflict("fault", "redirect");
        }
        if rule.rewrite.is_some() {
            conflict("rewrite", "redirect");
        }
        if rule.direct_response.is_some() {
            conflict("directResponse", "redirect");
        }
    } else if rule.direct_response.is_some() {
        if has_route {
            conflict("route", "directResponse");
        }
        if rule.fault.is_some() {
            conflict("fault", "directResponse");
        }
        if rule.rewrite.is_some() {
            conflict("rewrite", "directResponse");
        }
    } else if !has_route {
        ctx.err(path, "HTTP route, redirect or directResponse is required");
    }
    if rule.mirror.is_some() && rule.mirrors.as_ref().is_some_and(|m| !m.is_empty()) {
        ctx.err(path, "HTTP route cannot contain both mirror and mirrors");
    }
}

fn compile_redirect(
    ctx: &mut Ctx,
    path: &str,
    rule: &HttpRouteIn,
    r: &super::types::RedirectIn,
    response_headers: HeaderOps,
) -> Option<RuleTemplate> {
    let rpath = format!("{path}.redirect");
    let uri = r.uri.clone().filter(|s| !s.is_empty());
    let prefix_rewrite = r.prefix_rewrite.clone().filter(|s| !s.is_empty());
    let authority = r.authority.clone().filter(|s| !s.is_empty());
    let scheme = r.scheme.clone().filter(|s| !s.is_empty());
    if uri.is_some() && prefix_rewrite.is_some() {
        ctx.err(
            &rpath,
            "redirect may only specify one of uri or prefixRewrite",
        );
    }
    if prefix_rewrite.is_some() {
        let non_prefix = rule.matches.iter().flatten().any(|m| {
            m.uri
                .as_ref()
                .is_some_and(|u| u.prefix.is_none() || u.exact.is_some() || u.regex.is_some())
        });
        if non_prefix {
            ctx.err(
                format!("{rpath}.prefixRewrite"),
                "redirect prefixRewrite requires all URI matches to use prefix match type",
            );
        }
    }
    if r.port.is_some() && r.derive_port.is_some() {
        ctx.err(&rpath, "only one of port and derivePort may be set");
    }
    if uri.is_none()
        && prefix_rewrite.is_none()
        && authority.is_none()
        && scheme.is_none()
        && r.port.is_none()
        && r.derive_port.is_none()
    {
        ctx.err(
            &rpath,
            "redirect must specify URI, authority, scheme, or port",
        );
    }
    if let Some(s) = &scheme {
        if s != "http" && s != "https" {
            ctx.err(
                format!("{rpath}.scheme"),
                r#"invalid redirect scheme, must be "http" or "https""#,
            );
        }
    }
    // Pilot `ApplyRedirect`: the waypoint's listener is plain HTTP, so a missing scheme is http;
    // an explicit default port for the scheme is dropped from Location.
    let effective_scheme = scheme.clone().unwrap_or_else(|| "http".to_string());
    let mut port = RedirectPort::Keep;
    if let Some(p) = r.port {
        match u16::try_from(p) {
            Ok(p) if p != 0 => {
                port = if (p == 80 && effective_scheme == "http")
                    || (p == 443 && effective_scheme == "https")
                {
                    RedirectPort::ProtocolDefault
                } else {
                    RedirectPort::Set(p)
                }
            }
            _ => ctx.err(
                format!("{rpath}.port"),
                format!("port {p} is not in 1..65535"),
            ),
        }
    }
    match r.derive_port.as_deref() {
        None => {}
        Some("FROM_PROTOCOL_DEFAULT") => port = RedirectPort::ProtocolDefault,
        // Pilot uses the listener (request) port.
        Some("FROM_REQUEST_PORT") => port = RedirectPort::Keep,
        Some(other) => ctx.err(
            format!("{rpath}.derivePort"),
            format!("unknown derivePort {other:?} (FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT)"),
        ),
    }
    let status = match r.redirect_code.unwrap_or(0) {
        0 | 301 => 301,
        c @ (302 | 303 | 307 | 308) => c as u16,
        c if (300..=399).contains(&c) => {
            // Valid for Istio validation, but pilot cannot express it and drops the action.
            ctx.err(
                format!("{rpath}.redirectCode"),
                format!("redirect code {c} is not supported (301, 302, 303, 307 or 308)"),
            );
            301
        }
        c => {
            ctx.err(
                format!("{rpath}.redirectCode"),
                format!("{c} is not a valid redirect code, must be 3xx"),
            );
            301
        }
    };
    Some(RuleTemplate::Redirect {
        redirect: Redirect {
            scheme,
            host: authority,
            port,
            // Pilot sets Envoy `path_redirect` to `uri`: the whole path is replaced.
            path: uri.map(PathRewrite::Full),
            status,
            response_headers,
        },
        prefix_rewrite,
    })
}

fn compile_direct(
    ctx: &mut Ctx,
    path: &str,
    d: &super::types::DirectResponseIn,
    response_headers: HeaderOps,
) -> Option<RuleTemplate> {
    let dpath = format!("{path}.directResponse");
    let status = match d.status {
        Some(s) if (200..=600).contains(&s) => s as u16,
        Some(s) => {
            ctx.err(
                format!("{dpath}.status"),
                format!("HTTP status {s} is not in range 200-599"),
            );
            return None;
        }
        None => {
            ctx.err(format!("{dpath}.status"), "status is required");
            return None;
        }
    };
    let mut body = None;
    if let Some(b) = &d.body {
        let bpath = format!("{dpath}.body");
        match (&b.string, &b.bytes) {
            (Some(_), Some(_)) => {
                ctx.err(&bpath, "body is a oneof: set only one of string or bytes");
                return None;
            }
            (Some(s), None) => body = Some(s.clone()),
            (None, Some(encoded)) => match decode_base64(encoded) {
                Some(raw) => match String::from_utf8(raw) {
                    Ok(s) => body = Some(s),
                    Err(_) => {
                        ctx.err(
                            format!("{bpath}.bytes"),
                            "body bytes must be UTF-8 text for the waypoint",
                        );
                        return None;
                    }
                },
                None => {
                    ctx.err(format!("{bpath}.bytes"), "body bytes must be valid base64");
                    return None;
                }
            },
            (None, None) => {}
        }
        let size = body.as_ref().map_or(0, String::len);
        if size > 1024 * 1024 {
            ctx.err(&bpath, "large direct_responses may impact control plane performance, must be less than 1MB");
            return None;
        } else if size > 100 * 1024 {
            ctx.warn(
                &bpath,
                "large direct_responses may impact control plane performance",
            );
        }
    }
    Some(RuleTemplate::Direct(DirectResponse {
        status,
        body,
        response_headers,
    }))
}

/// Standard base64 (with or without padding), as protobuf JSON encodes `bytes`; URL-safe
/// characters are accepted too, as protojson does.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn compile_forward(
    ctx: &mut Ctx,
    path: &str,
    rule: &HttpRouteIn,
    headers: HeaderPlan,
    services: &dyn ServiceLookup,
) -> Option<RuleTemplate> {
    let mut forward = Forward {
        request_headers: headers.request,
        response_headers: headers.response,
        ..Forward::default()
    };
    // Route-level `:authority`/`host` header; `rewrite.authority` may not also be set, and a
    // single destination's own authority header applies only when neither is.
    let route_authority = headers.authority;
    let mut dest_authority = None;

    // Destinations (pilot `validateHTTPRouteDestinations`, `applyHTTPRouteDestination`).
    let dests = rule.route.as_deref().unwrap_or_default();
    let mut backends: Vec<(WeightedBackend, Option<String>)> = Vec::new();
    let mut total: i64 = 0;
    for (i, d) in dests.iter().enumerate() {
        let dpath = format!("{path}.route[{i}]");
        let weight = d.weight.unwrap_or(0);
        if weight < 0 {
            ctx.err(format!("{dpath}.weight"), format!("weight {weight} < 0"));
        } else if weight > i64::from(i32::MAX) {
            ctx.err(
                format!("{dpath}.weight"),
                format!("weight {weight} is too large"),
            );
        }
        total += weight.max(0);
        let plan = compile_headers(ctx, &format!("{dpath}.headers"), d.headers.as_ref());
        let Some(dest) = &d.destination else {
            ctx.err(format!("{dpath}.destination"), "destination is required");
            continue;
        };
        let Some(backend) =
            compile_destination(ctx, &format!("{dpath}.destination"), dest, services)
        else {
            continue;
        };
        backends.push((
            WeightedBackend {
                backend,
                weight: u32::try_from(weight.clamp(0, i64::from(i32::MAX))).unwrap_or(0),
                request_headers: plan.request,
                response_headers: plan.response,
                invalid: None,
            },
            plan.authority,
        ));
    }
    if dests.len() > 1 && total == 0 {
        ctx.err(format!("{path}.route"), "total destination weight = 0");
    }
    if backends.len() == 1 {
        // "If there is only one destination in a rule, it will receive all traffic" (weight
        // is ignored). Its authority header applies unless the rule sets one.
        if let Some((mut b, auth)) = backends.pop() {
            b.weight = 100;
            dest_authority = auth;
            forward.backends.push(b);
        }
    } else {
        for (i, (b, auth)) in backends.into_iter().enumerate() {
            if auth.is_some() {
                ctx.warn(
                    format!("{path}.route[{i}].headers.request"),
                    "a per-destination authority rewrite on a weighted destination is not supported by the waypoint; ignored",
                );
            }
            // "if weight is 0, the destination will not receive any traffic".
            if b.weight > 0 {
                forward.backends.push(b);
            }
        }
    }

    // Rewrite.
    let mut rewrite_uri = None;
    let mut rewrite = Rewrite::default();
    if let Some(rw) = &rule.rewrite {
        let rwpath = format!("{path}.rewrite");
        let uri = rw.uri.clone().filter(|s| !s.is_empty());
        if uri.is_some() && rw.uri_regex_rewrite.is_some() {
            ctx.err(
                &rwpath,
                "rewrite may only contain one of uri or uriRegexRewrite",
            );
        }
        if uri.is_none()
            && rw.uri_regex_rewrite.is_none()
            && rw.authority.as_deref().unwrap_or("").is_empty()
        {
            ctx.err(
                &rwpath,
                "rewrite must specify at least one of uri, uriRegexRewrite, or authority",
            );
        }
        if let Some(rr) = &rw.uri_regex_rewrite {
            let rrpath = format!("{rwpath}.uriRegexRewrite");
            match (rr.pattern.as_deref(), rr.rewrite.as_deref()) {
                (Some(p), Some(sub)) if !p.is_empty() && !sub.is_empty() => {
                    if p.len() > 1024 {
                        ctx.err(
                            format!("{rrpath}.match"),
                            "regex is too large, max length allowed is 1024",
                        );
                    } else {
                        match regex::Regex::new(p) {
                            Ok(re) => {
                                rewrite.path = Some(PathRewrite::Regex {
                                    regex: re,
                                    substitution: re2_substitution_to_rust(sub),
                                })
                            }
                            Err(e) => ctx.err(
                                format!("{rrpath}.match"),
                                format!("invalid regex (RE2 syntax): {e}"),
                            ),
                        }
                    }
                }
                _ => ctx.err(
                    &rrpath,
                    "uriRegexRewrite requires both rewrite and match fields to be specified",
                ),
            }
        }
        rewrite_uri = uri;
        if let Some(a) = rw.authority.clone().filter(|s| !s.is_empty()) {
            if let Some(prev) = &route_authority {
                ctx.err(
                    format!("{rwpath}.authority"),
                    format!("authority header cannot be set multiple times: have {prev:?}, attempting to set {a:?}"),
                );
            }
            rewrite.authority = Some(a);
        }
    }
    if rewrite.authority.is_none() {
        rewrite.authority = route_authority.or(dest_authority);
    }
    if rewrite.path.is_some() || rewrite.authority.is_some() {
        forward.rewrite = Some(rewrite);
    }

    // Timeout: "Timeout for HTTP requests, default is disabled."
    if let Some(t) = &rule.timeout {
        forward.timeout = ctx.duration_min_1ms(&format!("{path}.timeout"), t);
    }
    forward.retries = compile_retries(ctx, &format!("{path}.retries"), rule.retries.as_ref());
    if let Some(f) = &rule.fault {
        forward.fault = compile_fault(ctx, &format!("{path}.fault"), f);
    }
    forward.mirrors = compile_mirrors(ctx, path, rule, services);
    if let Some(c) = &rule.cors_policy {
        forward.cors = compile_cors(ctx, &format!("{path}.corsPolicy"), c);
    }
    Some(RuleTemplate::Forward {
        forward: Box::new(forward),
        rewrite_uri,
    })
}

/// Envoy `regex_rewrite` substitution uses RE2 `\1` group references; the Rust `regex` crate
/// uses `${1}` and treats `$` specially. Convert so `Regex::replace_all` behaves like Envoy.
pub(crate) fn re2_substitution_to_rust(sub: &str) -> String {
    let mut out = String::with_capacity(sub.len() + 4);
    let mut chars = sub.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str(&format!("${{{d}}}"));
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            other => out.push(other),
        }
    }
    out
}

/// Pilot `retry.ConvertPolicy` + `agent.ValidateHTTPRetry`.
fn compile_retries(ctx: &mut Ctx, path: &str, r: Option<&RetryIn>) -> Option<RetryPolicy> {
    let Some(r) = r else {
        return Some(default_retry_policy());
    };
    let attempts = r.attempts.unwrap_or(0);
    if attempts < 0 {
        ctx.err(format!("{path}.attempts"), "attempts cannot be negative");
        return None;
    }
    if attempts == 0 {
        if r.per_try_timeout.is_some()
            || r.retry_on.as_deref().is_some_and(|s| !s.is_empty())
            || r.retry_remote_localities.is_some()
        {
            ctx.err(
                path,
                "http retry policy configured when attempts are set to 0 (disabled)",
            );
        }
        // `attempts: 0` explicitly disables retries.
        return None;
    }
    let mut policy = default_retry_policy();
    policy.attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
    if let Some(on) = r.retry_on.as_deref().filter(|s| !s.is_empty()) {
        let mut conditions = Vec::new();
        let mut codes = Vec::new();
        for part in on.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            match part.parse::<u16>() {
                Ok(code) if is_known_http_status(code) => codes.push(code),
                _ if RETRY_ON_POLICIES.contains(&part) => conditions.push(part.to_string()),
                _ => ctx.err(
                    format!("{path}.retryOn"),
                    format!("{part:?} is not a valid retryOn policy"),
                ),
            }
        }
        // "If user has just specified HTTP status codes ... add retriable-status-codes".
        if !codes.is_empty() && !conditions.iter().any(|c| c == "retriable-status-codes") {
            conditions.push("retriable-status-codes".to_string());
        }
        policy.retry_on = conditions;
        policy.codes = codes;
    }
    if let Some(t) = &r.per_try_timeout {
        policy.per_try_timeout = ctx.duration_min_1ms(&format!("{path}.perTryTimeout"), t);
    }
    if let Some(b) = &r.backoff {
        policy.backoff = ctx.duration_min_1ms(&format!("{path}.backoff"), b);
    }
    if r.retry_remote_localities.is_some() {
        ctx.ignored(&format!("{path}.retryRemoteLocalities"));
    }
    if r.retry_ignore_previous_hosts.is_some() {
        ctx.ignored(&format!("{path}.retryIgnorePreviousHosts"));
    }
    Some(policy)
}

fn percentage(ctx: &mut Ctx, path: &str, value: f64) -> f64 {
    if let Err(e) = check_percentage(value) {
        ctx.err(format!("{path}.value"), e);
    }
    value
}

/// Pilot `TranslateFault` + `validateHTTPFaultInjection`. A delay or abort without a
/// percentage applies to no request ("If left unspecified, no request will be delayed").
fn compile_fault(ctx: &mut Ctx, path: &str, f: &FaultIn) -> Option<Fault> {
    if f.delay.is_none() && f.abort.is_none() {
        ctx.err(
            path,
            "HTTP fault injection must have an abort and/or a delay",
        );
        return None;
    }
    let mut out = Fault::default();
    if let Some(d) = &f.delay {
        let dpath = format!("{path}.delay");
        let percent = match (&d.percentage, d.percent) {
            (Some(p), _) => percentage(ctx, &format!("{dpath}.percentage"), p.value),
            (None, Some(p)) => {
                if !(0..=100).contains(&p) {
                    ctx.err(
                        format!("{dpath}.percent"),
                        format!("percentage {p} is not in range 0..100"),
                    );
                }
                p as f64
            }
            (None, None) => 0.0,
        };
        match (&d.fixed_delay, &d.exponential_delay) {
            (Some(_), Some(_)) => ctx.err(
                &dpath,
                "only one of fixedDelay or exponentialDelay may be set",
            ),
            (Some(fixed), None) => {
                if let Some(dur) = ctx.duration_min_1ms(&format!("{dpath}.fixedDelay"), fixed) {
                    out.delay = Some((dur, percent));
                }
            }
            (None, Some(_)) => ctx.err(
                format!("{dpath}.exponentialDelay"),
                "exponentialDelay not supported yet",
            ),
            (None, None) => ctx.warn(&dpath, "delay has no fixedDelay; ignored"),
        }
    }
    if let Some(a) = &f.abort {
        let apath = format!("{path}.abort");
        let percent = match &a.percentage {
            Some(p) => percentage(ctx, &format!("{apath}.percentage"), p.value),
            None => 0.0,
        };
        let kinds = [
            a.http_status.is_some(),
            a.grpc_status.is_some(),
            a.http2_error.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if kinds > 1 {
            ctx.err(
                &apath,
                "only one of httpStatus, grpcStatus or http2Error may be set",
            );
        } else if let Some(status) = a.http_status {
            if (200..=600).contains(&status) {
                out.abort = Some(FaultAbort {
                    http_status: status as u16,
                    grpc_status: None,
                    percent,
                });
            } else {
                ctx.err(
                    format!("{apath}.httpStatus"),
                    format!("HTTP status {status} is not in range 200-599"),
                );
            }
        } else if let Some(g) = &a.grpc_status {
            match GRPC_STATUS.iter().position(|s| s == g) {
                // A gRPC abort is an HTTP 200 with `grpc-status` (Envoy fault filter); the
                // numeric code is carried as a string.
                Some(code) => {
                    out.abort = Some(FaultAbort {
                        http_status: 200,
                        grpc_status: Some(code.to_string()),
                        percent,
                    })
                }
                None => ctx.err(
                    format!("{apath}.grpcStatus"),
                    format!("gRPC status {g:?} is not supported, for example 'NOT_FOUND'"),
                ),
            }
        } else if a.http2_error.is_some() {
            ctx.err(
                format!("{apath}.http2Error"),
                "HTTP/2 abort fault injection not supported yet",
            );
        } else {
            ctx.warn(&apath, "abort configured, but error type not set; ignored");
        }
    }
    if out.delay.is_none() && out.abort.is_none() {
        return None;
    }
    Some(out)
}

/// `mirror` (+ `mirrorPercentage` / deprecated `mirrorPercent`) and `mirrors[]`; pilot
/// `MirrorPercent` / `MirrorPercentByPolicy`: default 100 %, an explicit 0 disables.
fn compile_mirrors(
    ctx: &mut Ctx,
    path: &str,
    rule: &HttpRouteIn,
    services: &dyn ServiceLookup,
) -> Vec<Mirror> {
    let mut out = Vec::new();
    let legacy = rule.mirror_percent.or(rule.mirror_percent_snake);
    if let Some(p) = legacy {
        ctx.warn(
            format!("{path}.mirrorPercent"),
            r#"using deprecated setting "mirrorPercent", use "mirrorPercentage" instead"#,
        );
        if !(0..=100).contains(&p) {
            ctx.err(
                format!("{path}.mirrorPercent"),
                format!("mirror_percent must have a value in 0..100 (it has {p})"),
            );
        }
    }
    if let Some(p) = &rule.mirror_percentage {
        if !(0.0..=100.0).contains(&p.value) {
            ctx.err(
                format!("{path}.mirrorPercentage.value"),
                format!("mirror_percentage must be in 0..100 (it has {})", p.value),
            );
        }
    }
    if let Some(m) = &rule.mirror {
        let percent = match (&rule.mirror_percentage, legacy) {
            (Some(p), _) => p.value,
            (None, Some(p)) => p as f64,
            (None, None) => 100.0,
        };
        if let Some(backend) = compile_destination(ctx, &format!("{path}.mirror"), m, services) {
            if percent > 0.0 {
                out.push(Mirror { backend, percent });
            }
        }
    }
    for (i, m) in rule.mirrors.iter().flatten().enumerate() {
        let mpath = format!("{path}.mirrors[{i}]");
        let Some(dest) = &m.destination else {
            ctx.err(
                format!("{mpath}.destination"),
                "destination is required for mirrors",
            );
            continue;
        };
        let percent = match &m.percentage {
            Some(p) => {
                if !(0.0..=100.0).contains(&p.value) {
                    ctx.err(
                        format!("{mpath}.percentage.value"),
                        format!("mirror percentage must be in 0..100 (it has {})", p.value),
                    );
                }
                p.value
            }
            None => 100.0,
        };
        if let Some(backend) =
            compile_destination(ctx, &format!("{mpath}.destination"), dest, services)
        {
            if percent > 0.0 {
                out.push(Mirror { backend, percent });
            }
        }
    }
    out
}

/// Pilot `TranslateCORSPolicy` + `validateCORSPolicy`.
fn compile_cors(ctx: &mut Ctx, path: &str, c: &CorsPolicyIn) -> Option<Cors> {
    let mut out = Cors::default();
    if let Some(origins) = &c.allow_origins {
        for (i, o) in origins.iter().enumerate() {
            let opath = format!("{path}.allowOrigins[{i}]");
            let empty = o
                .exact
                .as_deref()
                .or(o.prefix.as_deref())
                .or(o.regex.as_deref())
                .unwrap_or("")
                .is_empty();
            if empty {
                ctx.err(
                    &opath,
                    "'' is not a valid match type for CORS allow origins",
                );
                continue;
            }
            if let Ok(Some(m)) = compile_string_match(ctx, &opath, o, Where::Pseudo) {
                out.allow_origins.push(m);
            }
        }
    } else if let Some(origins) = &c.allow_origin {
        // Deprecated `allowOrigin`: exact matches, used only without `allowOrigins`.
        out.allow_origins = origins
            .iter()
            .map(|o| StringMatch::Exact(o.clone()))
            .collect();
    }
    for (i, m) in c.allow_methods.iter().enumerate() {
        if CORS_METHODS.contains(&m.as_str()) {
            out.allow_methods.push(m.clone());
        } else {
            ctx.err(
                format!("{path}.allowMethods[{i}]"),
                format!("{m:?} is not a supported HTTP method"),
            );
        }
    }
    for (field, list, target) in [
        ("allowHeaders", &c.allow_headers, 0),
        ("exposeHeaders", &c.expose_headers, 1),
    ] {
        for (i, h) in list.iter().enumerate() {
            if h != "*" && !is_http_token(h) {
                ctx.err(
                    format!("{path}.{field}[{i}]"),
                    format!("invalid header name {h:?}"),
                );
            } else if target == 0 {
                out.allow_headers.push(h.clone());
            } else {
                out.expose_headers.push(h.clone());
            }
        }
    }
    if let Some(age) = &c.max_age {
        let apath = format!("{path}.maxAge");
        if let Some(d) = ctx.duration_min_1ms(&apath, age) {
            if d.subsec_nanos() > 0 {
                ctx.err(
                    &apath,
                    "max_age duration is accurate only to seconds precision",
                );
            } else {
                out.max_age = Some(Duration::from_secs(d.as_secs()));
            }
        }
    }
    out.allow_credentials = c.allow_credentials;
    match c.unmatched_preflights.as_deref() {
        None | Some("UNSPECIFIED") | Some("FORWARD") => {}
        Some("IGNORE") => ctx.warn(
            format!("{path}.unmatchedPreflights"),
            "IGNORE is not supported by the waypoint; unmatched preflights are forwarded",
        ),
        Some(other) => ctx.err(
            format!("{path}.unmatchedPreflights"),
            format!("unknown value {other:?} (UNSPECIFIED, FORWARD or IGNORE)"),
        ),
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(decode_base64("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64("aGVsbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64("b2s=").as_deref(), Some(&b"ok"[..]));
        assert!(decode_base64("a*b").is_none());
    }

    #[test]
    fn substitution() {
        for (re2, rust) in [
            (r"/v1/\1", "/v1/${1}"),
            (r"\2-\1", "${2}-${1}"),
            ("/cost$", "/cost$$"),
            ("/plain", "/plain"),
        ] {
            assert_eq!(re2_substitution_to_rust(re2), rust, "{re2}");
        }
    }

    #[test]
    fn status_codes() {
        for (c, want) in [
            (503, true),
            (404, true),
            (306, false),
            (599, false),
            (429, true),
        ] {
            assert_eq!(is_known_http_status(c), want, "{c}");
        }
    }
}
