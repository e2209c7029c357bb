//! Evaluates one compiled `RequestMatch` against a request: path (without query), method,
//! scheme, authority, headers (with invert / presence), query parameters and destination port.

use crate::request::{query_pairs, Request};
use crate::route::{HeaderMatch, QueryMatch, RequestMatch};

/// Does `m` match `req` arriving on service port `dest_port`? Every present field must match.
pub fn entry_matches(m: &RequestMatch, req: &Request<'_>, dest_port: Option<u16>) -> bool {
    if let Some(port) = m.port {
        if dest_port != Some(port) {
            return false;
        }
    }
    if let Some(p) = &m.path {
        let path = req.path_only();
        let hit = if m.ignore_uri_case {
            p.matches_ignore_case(path)
        } else {
            p.matches(path)
        };
        if !hit {
            return false;
        }
    }
    if let Some(meth) = &m.method {
        if !meth.matches(req.method) {
            return false;
        }
    }
    if let Some(s) = &m.scheme {
        if !s.matches(req.scheme) {
            return false;
        }
    }
    if let Some(a) = &m.authority {
        if !a.matches(req.authority) {
            return false;
        }
    }
    m.headers.iter().all(|h| header_matches(h, req))
        && m.query.iter().all(|q| query_matches(q, req))
}

/// One header condition. Several values of one header are joined with `,` (as Envoy does).
/// An inverted string match treats a missing header as empty (Istio sets Envoy's
/// `treat_missing_header_as_empty` for `withoutHeaders`); an inverted presence match is
/// true exactly when the header is absent.
pub fn header_matches(h: &HeaderMatch, req: &Request<'_>) -> bool {
    let value = req.header_joined(&h.name);
    let hit = match (&h.matcher, value) {
        (None, v) => v.is_some(),
        (Some(m), Some(v)) => m.matches(&v),
        (Some(m), None) => h.invert && m.matches(""),
    };
    hit != h.invert
}

/// One query parameter condition, against the first occurrence of the parameter (Envoy's
/// query_parameter matcher); values are compared raw, without percent-decoding.
pub fn query_matches(q: &QueryMatch, req: &Request<'_>) -> bool {
    let first = req
        .query()
        .and_then(|qs| query_pairs(qs).find(|(k, _)| *k == q.name).map(|(_, v)| v));
    match (&q.matcher, first) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(m), Some(v)) => m.matches(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matchers::StringMatch;

    fn req<'a>(method: &'a str, path: &'a str, headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
        Request {
            method,
            scheme: "http",
            authority: "echo:80",
            path,
            headers,
            source_principal: None,
            source_ip: None,
            destination: "10.0.0.1:80",
            sni: None,
        }
    }

    fn hdr(name: &str, m: Option<StringMatch>, invert: bool) -> HeaderMatch {
        HeaderMatch {
            name: name.into(),
            matcher: m,
            invert,
        }
    }

    #[test]
    fn table() {
        let exact = |s: &str| Some(StringMatch::Exact(s.into()));
        let cases: Vec<(
            &str,
            RequestMatch,
            &str,
            &str,
            Vec<(&str, &str)>,
            Option<u16>,
            bool,
        )> = vec![
            (
                "empty matches all",
                RequestMatch::default(),
                "GET",
                "/x",
                vec![],
                None,
                true,
            ),
            (
                "path ignores query",
                RequestMatch {
                    path: exact("/a"),
                    ..Default::default()
                },
                "GET",
                "/a?b=c",
                vec![],
                None,
                true,
            ),
            (
                "ignore case",
                RequestMatch {
                    path: exact("/A"),
                    ignore_uri_case: true,
                    ..Default::default()
                },
                "GET",
                "/a",
                vec![],
                None,
                true,
            ),
            (
                "method",
                RequestMatch {
                    method: exact("POST"),
                    ..Default::default()
                },
                "GET",
                "/",
                vec![],
                None,
                false,
            ),
            (
                "port mismatch",
                RequestMatch {
                    port: Some(80),
                    ..Default::default()
                },
                "GET",
                "/",
                vec![],
                Some(8080),
                false,
            ),
            (
                "port unknown",
                RequestMatch {
                    port: Some(80),
                    ..Default::default()
                },
                "GET",
                "/",
                vec![],
                None,
                false,
            ),
            (
                "header case-insensitive name",
                RequestMatch {
                    headers: vec![hdr("version", exact("one"), false)],
                    ..Default::default()
                },
                "GET",
                "/",
                vec![("Version", "one")],
                None,
                true,
            ),
            (
                "header joined values",
                RequestMatch {
                    headers: vec![hdr("x", exact("1,2"), false)],
                    ..Default::default()
                },
                "GET",
                "/",
                vec![("x", "1"), ("X", "2")],
                None,
                true,
            ),
            (
                "header absent",
                RequestMatch {
                    headers: vec![hdr("x", exact("1"), false)],
                    ..Default::default()
                },
                "GET",
                "/",
                vec![],
                None,
                false,
            ),
            (
                "inverted absent = empty",
                RequestMatch {
                    headers: vec![hdr("x", exact("1"), true)],
                    ..Default::default()
                },
                "GET",
                "/",
                vec![],
                None,
                true,
            ),
            (
                "inverted present match",
                RequestMatch {
                    headers: vec![hdr("x", None, true)],
                    ..Default::default()
                },
                "GET",
                "/",
                vec![("x", "")],
                None,
                false,
            ),
            (
                "authority",
                RequestMatch {
                    authority: exact("echo:80"),
                    ..Default::default()
                },
                "GET",
                "/",
                vec![],
                None,
                true,
            ),
            (
                "scheme",
                RequestMatch {
                    scheme: exact("https"),
                    ..Default::default()
                },
                "GET",
                "/",
                vec![],
                None,
                false,
            ),
            (
                "query first value",
                RequestMatch {
                    query: vec![QueryMatch {
                        name: "a".into(),
                        matcher: exact("1"),
                    }],
                    ..Default::default()
                },
                "GET",
                "/p?a=1&a=2",
                vec![],
                None,
                true,
            ),
            (
                "query missing",
                RequestMatch {
                    query: vec![QueryMatch {
                        name: "a".into(),
                        matcher: None,
                    }],
                    ..Default::default()
                },
                "GET",
                "/p?b=1",
                vec![],
                None,
                false,
            ),
        ];
        for (name, m, method, path, headers, port, want) in cases {
            let r = req(method, path, &headers);
            assert_eq!(entry_matches(&m, &r, port), want, "{name}");
        }
    }
}
