//! VirtualService `http[].match[]` blocks compiled into `RequestMatch`, with the waypoint's rules
//! for `sourceLabels` (block dropped), `gateways` (must name `mesh`) and `sourceNamespace`.

use crate::matchers::StringMatch;
use crate::route::{HeaderMatch, QueryMatch, RequestMatch};

use super::context::Ctx;
use super::types::{MatchIn, StringMatchIn};

/// The `mesh` pseudo-gateway: what sidecars and waypoints are (pilot `constants.IstioMeshGateway`).
pub const MESH_GATEWAY: &str = "mesh";

/// How the block matched the URI; rewrites and prefix redirects depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UriKind {
    /// No `uri` (Envoy route prefix `/`).
    None,
    Exact,
    Prefix(String),
    Regex,
}

/// One compiled match block.
#[derive(Debug)]
pub(crate) struct CompiledMatch {
    pub matcher: RequestMatch,
    pub uri: UriKind,
    /// `sourceNamespace`: pilot compares it with the *proxy's* namespace (`sourceMatchHTTP`
    /// gets `node.Metadata.Namespace`), i.e. the waypoint's, not the client's.
    pub source_namespace: Option<String>,
}

/// Which kind of field a StringMatch sits in (Istio validates them differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Where {
    /// `uri`: an empty prefix is allowed.
    Uri,
    /// scheme / method / authority: a prefix must not be empty.
    Pseudo,
    /// headers / withoutHeaders / queryParams: `{}` and `regex: "*"` mean "present".
    Named,
}

/// Compile one StringMatch. `Ok(None)` means "no constraint / present" (`{}`). Records errors
/// naming `path` and returns `Err(())` when invalid.
pub(crate) fn compile_string_match(
    ctx: &mut Ctx,
    path: &str,
    sm: &StringMatchIn,
    place: Where,
) -> Result<Option<StringMatch>, ()> {
    let set = [sm.exact.is_some(), sm.prefix.is_some(), sm.regex.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        ctx.err(
            path,
            "StringMatch is a oneof: set exactly one of exact, prefix or regex",
        );
        return Err(());
    }
    if let Some(e) = &sm.exact {
        return Ok(Some(StringMatch::Exact(e.clone())));
    }
    if let Some(p) = &sm.prefix {
        if p.is_empty() && place != Where::Uri {
            ctx.err(
                format!("{path}.prefix"),
                "prefix string match should not be empty",
            );
            return Err(());
        }
        return Ok(Some(StringMatch::Prefix(p.clone())));
    }
    if let Some(r) = &sm.regex {
        // Pilot `canBeConvertedToPresentMatch`: `*` is not RE2, it means "present" (istio#20629).
        if place == Where::Named && r == "*" {
            return Ok(None);
        }
        return compile_regex(ctx, &format!("{path}.regex"), r).map(Some);
    }
    Ok(None)
}

/// Compile a full-match RE2-style regex as Envoy's `safe_regex` does; Istio caps length at 1024.
pub(crate) fn compile_regex(ctx: &mut Ctx, path: &str, pattern: &str) -> Result<StringMatch, ()> {
    if pattern.is_empty() {
        ctx.err(path, "regex string match should not be empty");
        return Err(());
    }
    if pattern.len() > 1024 {
        ctx.err(path, "regex is too large, max length allowed is 1024");
        return Err(());
    }
    StringMatch::regex(pattern).map_err(|e| {
        ctx.err(path, format!("invalid regex (RE2 syntax): {e}"));
    })
}

/// Result of compiling one match block.
#[derive(Debug)]
pub(crate) enum MatchOutcome {
    Entry(Box<CompiledMatch>),
    /// Valid, but never applies to a waypoint.
    Dropped,
    Invalid,
}

/// Compile `spec.http[i].match[j]` (given as `path`).
pub(crate) fn compile_match(ctx: &mut Ctx, path: &str, m: &MatchIn) -> MatchOutcome {
    let errors_before = ctx.diags.errors.len();
    let mut out = RequestMatch {
        ignore_uri_case: m.ignore_uri_case,
        ..RequestMatch::default()
    };
    let mut uri_kind = UriKind::None;

    if let Some(uri) = &m.uri {
        if let Ok(sm) = compile_string_match(ctx, &format!("{path}.uri"), uri, Where::Uri) {
            uri_kind = match &sm {
                Some(StringMatch::Exact(_)) => UriKind::Exact,
                Some(StringMatch::Prefix(p)) => UriKind::Prefix(p.clone()),
                Some(StringMatch::Regex(_)) => UriKind::Regex,
                _ => UriKind::None,
            };
            out.path = sm;
        }
    }
    for (field, slot) in [
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = slot {
            if let Ok(compiled) =
                compile_string_match(ctx, &format!("{path}.{field}"), sm, Where::Pseudo)
            {
                match field {
                    "scheme" => out.scheme = compiled,
                    "method" => out.method = compiled,
                    _ => out.authority = compiled,
                }
            }
        }
    }

    for (name, sm) in &m.headers {
        let hpath = format!("{path}.headers.{name}");
        if !check_header_name(ctx, &hpath, name) {
            continue;
        }
        let Some(sm) = sm else {
            ctx.err(&hpath, format!("header match {name} cannot be null"));
            continue;
        };
        if let Ok(matcher) = compile_string_match(ctx, &hpath, sm, Where::Named) {
            out.headers.push(HeaderMatch {
                name: header_key(name),
                matcher,
                invert: false,
            });
        }
    }
    // withoutHeaders: Envoy `invert_match`, with `treat_missing_header_as_empty` for value
    // matchers, so a missing header satisfies `withoutHeaders: {x: {exact: a}}`; `{}` means
    // "header absent".
    for (name, sm) in &m.without_headers {
        let hpath = format!("{path}.withoutHeaders.{name}");
        if !check_header_name(ctx, &hpath, name) {
            continue;
        }
        let matcher = match sm {
            None => Ok(None),
            Some(sm) => compile_string_match(ctx, &hpath, sm, Where::Named),
        };
        if let Ok(matcher) = matcher {
            out.headers.push(HeaderMatch {
                name: header_key(name),
                matcher,
                invert: true,
            });
        }
    }
    // Pilot sorts header matchers by name; keep the same deterministic order.
    out.headers.sort_by(|a, b| a.name.cmp(&b.name));

    for (name, sm) in &m.query_params {
        let qpath = format!("{path}.queryParams.{name}");
        let matcher = match sm {
            None => Ok(None),
            Some(sm) => compile_string_match(ctx, &qpath, sm, Where::Named),
        };
        if let Ok(matcher) = matcher {
            out.query.push(QueryMatch {
                name: name.clone(),
                matcher,
            });
        }
    }

    if let Some(port) = m.port {
        if port == 0 || port > 65535 {
            ctx.err(
                format!("{path}.port"),
                format!("port {port} is not in 1..65535"),
            );
        } else {
            out.port = u16::try_from(port).ok();
        }
    }
    if let Some(ns) = &m.source_namespace {
        if !is_dns1123_label(ns) {
            ctx.err(
                format!("{path}.sourceNamespace"),
                format!("sourceNamespace match {ns} is invalid"),
            );
        }
    }
    if ctx.diags.errors.len() > errors_before {
        return MatchOutcome::Invalid;
    }

    // A block naming gateways applies only to the ones it names; the waypoint is `mesh`.
    if !m.gateways.is_empty() && !m.gateways.iter().any(|g| g == MESH_GATEWAY) {
        return MatchOutcome::Dropped;
    }
    // Waypoints drop match blocks with sourceLabels (pilot `waypointInboundRoute`,
    // https://github.com/istio/istio/issues/51565).
    if !m.source_labels.is_empty() {
        ctx.warn(
            format!("{path}.sourceLabels"),
            "sourceLabels is not supported by waypoints; this match block never applies",
        );
        return MatchOutcome::Dropped;
    }
    MatchOutcome::Entry(Box::new(CompiledMatch {
        matcher: out,
        uri: uri_kind,
        source_namespace: if m.gateways.is_empty() {
            m.source_namespace.clone().filter(|s| !s.is_empty())
        } else {
            // With `gateways` naming mesh, pilot skips the sourceNamespace check.
            None
        },
    }))
}

/// Header names in matches: an HTTP token, or a JWT claim (`@request.auth.claims.a.b`, nested
/// claims separated by `.`) matched against the request's verified token.
fn check_header_name(ctx: &mut Ctx, path: &str, name: &str) -> bool {
    if let Some(claim) = name.strip_prefix("@request.auth.claims") {
        let ok = claim
            .strip_prefix('.')
            .is_some_and(|c| !c.is_empty() && c.split('.').all(|p| !p.is_empty()));
        if !ok {
            ctx.err(
                path,
                format!("invalid claim {name:?}: expecting @request.auth.claims.<name>[.<name>]"),
            );
        }
        return ok;
    }
    if !is_http_token(name) {
        ctx.err(path, format!("invalid header name {name:?}"));
        return false;
    }
    true
}

/// The match key: header names lowercased, claim names kept (claims are case-sensitive).
fn header_key(name: &str) -> String {
    if name.starts_with(crate::route::CLAIM_MATCH_PREFIX) {
        name.to_string()
    } else {
        name.to_ascii_lowercase()
    }
}

/// RFC 7230 token.
pub(crate) fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Istio's `labels.IsDNS1123Label`: `[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?`, at most 63 long
/// (Istio allows upper case, unlike Kubernetes).
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
