//! Evaluates one compiled `RequestMatch` against a request: every present field must match.
//! Shared by VirtualService and Gateway API routes (their differences live in the compiled form).

use crate::authn::RequestAuth;
use crate::request::{query_pairs, Request};
use crate::route::{HeaderMatch, RequestMatch, CLAIM_MATCH_PREFIX};

/// Does `m` match `req`? `path` is the normalized path without query; `dest_port` the service
/// port the request was sent to. Claim matches see no token (see [`request_matches_auth`]).
pub fn request_matches(
    m: &RequestMatch,
    req: &Request<'_>,
    path: &str,
    dest_port: Option<u16>,
) -> bool {
    request_matches_auth(m, req, None, path, dest_port)
}

/// A claim match (`@request.auth.claims.a.b`): present when the verified token has the claim
/// as a string or a list of strings; a value matcher matches any of those strings.
fn claim_hit(h: &HeaderMatch, claim: &str, auth: Option<&RequestAuth>) -> bool {
    let Some(a) = auth else {
        return false;
    };
    let path: Vec<&str> = claim.split('.').collect();
    let values = a.claim_strings(&path);
    match &h.matcher {
        None => !values.is_empty(),
        Some(sm) => values.iter().any(|v| sm.matches(v)),
    }
}

/// [`request_matches`] with the request's verified JWT attributes for claim matches.
pub fn request_matches_auth(
    m: &RequestMatch,
    req: &Request<'_>,
    auth: Option<&RequestAuth>,
    path: &str,
    dest_port: Option<u16>,
) -> bool {
    if let Some(p) = &m.path {
        let ok = if m.ignore_uri_case {
            p.matches_ignore_case(path)
        } else {
            p.matches(path)
        };
        if !ok {
            return false;
        }
    }
    if let Some(port) = m.port {
        if dest_port != Some(port) {
            return false;
        }
    }
    if let Some(ns) = &m.source_namespace {
        if req.source_principal.and_then(principal_namespace) != Some(&**ns) {
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
    for h in &m.headers {
        if let Some(claim) = h.name.strip_prefix(CLAIM_MATCH_PREFIX) {
            if claim_hit(h, claim, auth) == h.invert {
                return false;
            }
            continue;
        }
        let value = req.header_joined(&h.name);
        let hit = match (&value, &h.matcher) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(v), Some(sm)) => sm.matches(v),
        };
        if hit == h.invert {
            return false;
        }
    }
    if !m.query.is_empty() {
        let q = req.query().unwrap_or("");
        for qm in &m.query {
            // First occurrence wins, as Envoy's query_parameters matcher.
            let value = query_pairs(q).find(|(k, _)| *k == qm.name).map(|(_, v)| v);
            let hit = match (value, &qm.matcher) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(v), Some(sm)) => sm.matches(v),
            };
            if !hit {
                return false;
            }
        }
    }
    true
}

/// The namespace of an Istio SPIFFE identity (`spiffe://td/ns/NS/sa/SA`).
fn principal_namespace(principal: &str) -> Option<&str> {
    let rest = principal.strip_prefix("spiffe://")?;
    let (_, rest) = rest.split_once("/ns/")?;
    rest.split_once('/').map(|(ns, _)| ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matchers::StringMatch;
    use crate::route::{HeaderMatch, QueryMatch};

    fn req<'a>(path: &'a str, headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
        Request {
            method: "GET",
            scheme: "http",
            authority: "reviews:9080",
            path,
            headers,
            source_principal: None,
            source_ip: None,
            destination: "reviews:9080",
            sni: None,
        }
    }

    #[test]
    fn table() {
        let jason = RequestMatch {
            headers: vec![HeaderMatch {
                name: "end-user".into(),
                matcher: Some(StringMatch::Exact("jason".into())),
                invert: false,
            }],
            ..Default::default()
        };
        let without = RequestMatch {
            headers: vec![HeaderMatch {
                name: "x-debug".into(),
                matcher: None,
                invert: true,
            }],
            ..Default::default()
        };
        let query = RequestMatch {
            query: vec![QueryMatch {
                name: "v".into(),
                matcher: Some(StringMatch::Exact("2".into())),
            }],
            ..Default::default()
        };
        let port = RequestMatch {
            port: Some(9080),
            ..Default::default()
        };
        let icase = RequestMatch {
            path: Some(StringMatch::Prefix("/API".into())),
            ignore_uri_case: true,
            ..Default::default()
        };
        type Case<'a> = (
            &'a RequestMatch,
            &'a str,
            Vec<(&'a str, &'a str)>,
            Option<u16>,
            bool,
        );
        let cases: Vec<Case> = vec![
            (&jason, "/", vec![("End-User", "jason")], None, true),
            (&jason, "/", vec![("end-user", "bob")], None, false),
            (&jason, "/", vec![], None, false),
            (&without, "/", vec![], None, true),
            (&without, "/", vec![("x-debug", "")], None, false),
            (&query, "/?a=1&v=2", vec![], None, true),
            (&query, "/?v=3", vec![], None, false),
            (&port, "/", vec![], Some(9080), true),
            (&port, "/", vec![], Some(80), false),
            (&icase, "/api/x", vec![], None, true),
        ];
        for (m, path, headers, port, want) in cases {
            let r = req(path, &headers);
            assert_eq!(
                request_matches(m, &r, r.path_only(), port),
                want,
                "{path} {headers:?}"
            );
        }
    }
}
