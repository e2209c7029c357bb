//! Does one compiled route match take every request another takes? Decided conservatively:
//! `true` only when provable from the match's parts (never a false "shadowed").

use waypoint_core::matchers::StringMatch;
use waypoint_core::route::{HeaderMatch, QueryMatch, RequestMatch};

/// Same matcher, same value (regexes by pattern).
fn same(a: &StringMatch, b: &StringMatch) -> bool {
    match (a, b) {
        (StringMatch::Exact(x), StringMatch::Exact(y))
        | (StringMatch::Prefix(x), StringMatch::Prefix(y))
        | (StringMatch::Suffix(x), StringMatch::Suffix(y))
        | (StringMatch::PathPrefix(x), StringMatch::PathPrefix(y)) => x == y,
        (StringMatch::Regex(x), StringMatch::Regex(y)) => x.as_str() == y.as_str(),
        (StringMatch::Any, StringMatch::Any) => true,
        _ => false,
    }
}

fn same_opt(a: &Option<StringMatch>, b: &Option<StringMatch>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => same(x, y),
        _ => false,
    }
}

fn same_header(a: &HeaderMatch, b: &HeaderMatch) -> bool {
    a.name == b.name && a.invert == b.invert && same_opt(&a.matcher, &b.matcher)
}

fn same_query(a: &QueryMatch, b: &QueryMatch) -> bool {
    a.name == b.name && same_opt(&a.matcher, &b.matcher)
}

/// Does a path condition take every path? (VirtualService prefix `/`, Gateway API
/// `PathPrefix /`; every request path starts with `/`.)
fn path_takes_all(p: &StringMatch) -> bool {
    match p {
        StringMatch::Prefix(p) => p == "/" || p.is_empty(),
        StringMatch::PathPrefix(p) => p.is_empty(),
        StringMatch::Any => true,
        _ => false,
    }
}

/// Does path condition `a` take every path `b` takes (both case-sensitive)?
fn path_covers(a: &StringMatch, b: &StringMatch) -> bool {
    if path_takes_all(a) || same(a, b) {
        return true;
    }
    match (a, b) {
        (StringMatch::Prefix(p), StringMatch::Prefix(q) | StringMatch::Exact(q)) => {
            q.starts_with(p.as_str())
        }
        // Every path `PathPrefix q` takes starts with `q`.
        (StringMatch::Prefix(p), StringMatch::PathPrefix(q)) => {
            !q.is_empty() && q.starts_with(p.as_str())
        }
        (StringMatch::PathPrefix(p), StringMatch::PathPrefix(q)) => {
            q.starts_with(p.as_str()) && matches!(q.as_bytes().get(p.len()), None | Some(b'/'))
        }
        (StringMatch::PathPrefix(_), StringMatch::Exact(q)) => a.matches(q),
        _ => false,
    }
}

/// Does `a` take every request `b` takes? Each condition of `a` must be one `b` has too
/// (or, for the path, one that takes every path `b`'s takes).
pub fn covers(a: &RequestMatch, b: &RequestMatch) -> bool {
    let path = match (&a.path, &b.path) {
        (None, _) => true,
        (Some(pa), _) if path_takes_all(pa) => true,
        (Some(_), None) => false,
        // A case-insensitive `b` takes paths a case-sensitive `a` does not.
        (Some(pa), Some(pb)) => (a.ignore_uri_case || !b.ignore_uri_case) && path_covers(pa, pb),
    };
    let opt = |x: &Option<StringMatch>, y: &Option<StringMatch>| x.is_none() || same_opt(x, y);
    path && (a.port.is_none() || a.port == b.port)
        && (a.source_namespace.is_none() || a.source_namespace == b.source_namespace)
        && opt(&a.method, &b.method)
        && opt(&a.scheme, &b.scheme)
        && opt(&a.authority, &b.authority)
        && a.headers
            .iter()
            .all(|h| b.headers.iter().any(|g| same_header(h, g)))
        && a.query
            .iter()
            .all(|q| b.query.iter().any(|g| same_query(q, g)))
}

/// Are `a` and `b` the same conditions (each covers the other)?
pub fn identical(a: &RequestMatch, b: &RequestMatch) -> bool {
    covers(a, b) && covers(b, a)
}

/// A short description of a match for messages: `{prefix "/api", header end-user exact "jason"}`.
pub fn describe(m: &RequestMatch) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &m.path {
        let case = if m.ignore_uri_case { " (any case)" } else { "" };
        parts.push(format!("path {}{case}", p.describe()));
    }
    for (what, v) in [
        ("method", &m.method),
        ("scheme", &m.scheme),
        ("authority", &m.authority),
    ] {
        if let Some(v) = v {
            parts.push(format!("{what} {}", v.describe()));
        }
    }
    for h in &m.headers {
        let not = if h.invert { "without " } else { "" };
        let v = h
            .matcher
            .as_ref()
            .map_or("present".into(), |s| s.describe());
        parts.push(format!("{not}header {} {v}", h.name));
    }
    for q in &m.query {
        let v = q
            .matcher
            .as_ref()
            .map_or("present".into(), |s| s.describe());
        parts.push(format!("query {} {v}", q.name));
    }
    if let Some(p) = m.port {
        parts.push(format!("port {p}"));
    }
    if let Some(ns) = &m.source_namespace {
        parts.push(format!("clients in namespace {ns}"));
    }
    if parts.is_empty() {
        "{any request}".to_string()
    } else {
        format!("{{{}}}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: StringMatch) -> RequestMatch {
        RequestMatch {
            path: Some(p),
            ..Default::default()
        }
    }

    fn header(name: &str, value: &str) -> HeaderMatch {
        HeaderMatch {
            name: name.into(),
            matcher: Some(StringMatch::Exact(value.into())),
            invert: false,
        }
    }

    fn pre(p: &str) -> StringMatch {
        StringMatch::Prefix(p.into())
    }

    #[test]
    fn table() {
        let jason = RequestMatch {
            headers: vec![header("end-user", "jason")],
            ..Default::default()
        };
        let jason_api = RequestMatch {
            path: Some(pre("/api")),
            headers: vec![header("end-user", "jason")],
            ..Default::default()
        };
        let icase = RequestMatch {
            path: Some(pre("/api")),
            ignore_uri_case: true,
            ..Default::default()
        };
        let port = RequestMatch {
            port: Some(80),
            ..Default::default()
        };
        let cases: Vec<(&str, RequestMatch, RequestMatch, bool)> = vec![
            (
                "empty takes all",
                RequestMatch::default(),
                jason.clone(),
                true,
            ),
            (
                "prefix / takes all",
                path(pre("/")),
                jason_api.clone(),
                true,
            ),
            (
                "PathPrefix / takes all",
                path(StringMatch::path_prefix("/")),
                jason.clone(),
                true,
            ),
            (
                "header is narrower",
                jason.clone(),
                RequestMatch::default(),
                false,
            ),
            ("same header", jason.clone(), jason_api.clone(), true),
            (
                "a path does not cover no path",
                path(pre("/api")),
                jason.clone(),
                false,
            ),
            (
                "prefix covers longer prefix",
                path(pre("/api")),
                path(pre("/api/v1")),
                true,
            ),
            (
                "prefix covers exact",
                path(pre("/api")),
                path(StringMatch::Exact("/apix".into())),
                true,
            ),
            (
                "longer prefix is narrower",
                path(pre("/api/v1")),
                path(pre("/api")),
                false,
            ),
            (
                "prefix vs regex: unknown",
                path(pre("/api")),
                path(StringMatch::regex("/api/.*").expect("re")),
                false,
            ),
            (
                "same regex",
                path(StringMatch::regex("/a+").expect("re")),
                path(StringMatch::regex("/a+").expect("re")),
                true,
            ),
            (
                "PathPrefix segment",
                path(StringMatch::path_prefix("/foo")),
                path(StringMatch::path_prefix("/foobar")),
                false,
            ),
            (
                "PathPrefix sub-path",
                path(StringMatch::path_prefix("/foo")),
                path(StringMatch::path_prefix("/foo/bar")),
                true,
            ),
            (
                "PathPrefix exact",
                path(StringMatch::path_prefix("/foo")),
                path(StringMatch::Exact("/foo/x".into())),
                true,
            ),
            (
                "case-insensitive b is wider",
                path(pre("/api")),
                icase.clone(),
                false,
            ),
            (
                "case-insensitive a covers",
                icase.clone(),
                path(pre("/api/x")),
                true,
            ),
            ("port narrows", port.clone(), RequestMatch::default(), false),
            ("same port", port.clone(), port.clone(), true),
            (
                "other header value",
                jason.clone(),
                RequestMatch {
                    headers: vec![header("end-user", "bob")],
                    ..Default::default()
                },
                false,
            ),
        ];
        for (what, a, b, want) in cases {
            assert_eq!(
                covers(&a, &b),
                want,
                "{what}: {} vs {}",
                describe(&a),
                describe(&b)
            );
        }
        assert!(identical(&jason, &jason.clone()));
        assert!(!identical(&jason, &jason_api));
    }

    #[test]
    fn descriptions() {
        let m = RequestMatch {
            path: Some(pre("/api")),
            headers: vec![header("end-user", "jason")],
            port: Some(9080),
            ..Default::default()
        };
        assert_eq!(
            describe(&m),
            r#"{path prefix "/api", header end-user exact "jason", port 9080}"#
        );
        assert_eq!(describe(&RequestMatch::default()), "{any request}");
    }
}
