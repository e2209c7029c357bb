//! The HTTP ext_authz client (Envoy's `http_service`): the check request is the original
//! request's head at `pathPrefix + path` without a body; 200 allows, 5xx is an error, else deny.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Version};
use http_body_util::{BodyExt, Empty};
use waypoint_core::mesh::{ExtAuthzHttp, ExtAuthzProvider, HeaderPattern};

use crate::ext_authz::input::CheckInput;
use crate::ext_authz::verdict::{AllowMutations, CheckError, Verdict};
use crate::policy::plan::LocalReply;
use crate::upstream::{ProxyBody, Target, Upstreams, Wire};

/// Request headers Envoy always sends to an HTTP authorization server (besides the
/// configured ones): Host, Method, Path, Content-Length and Authorization; method and path
/// travel in the request line here.
const ALWAYS_SENT: [&str; 2] = ["authorization", "host"];

/// Headers never copied into the check request (it has no body; hop-by-hop).
const NEVER_SENT: [&str; 7] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "proxy-connection",
];

/// Headers never copied from the check response into a denial (the local reply sets its
/// own framing).
const NOT_TO_CLIENT: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// Build the check request: same method, `pathPrefix + path`, the original Host, the always
/// sent headers, `includeRequestHeadersInCheck` matches, then `includeAdditionalHeadersInCheck`.
pub fn build_request(
    h: &ExtAuthzHttp,
    input: &CheckInput<'_>,
) -> Result<Request<ProxyBody>, CheckError> {
    let path = format!("{}{}", h.path_prefix, input.path);
    let mut req = Request::builder()
        .method(input.method)
        .uri(path.as_str())
        .version(Version::HTTP_11)
        .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed())
        .map_err(|e| CheckError::BadResponse(format!("cannot build the check request: {e}")))?;
    let out = req.headers_mut();
    for (name, value) in input.headers {
        let n = name.as_str();
        if NEVER_SENT.contains(&n) {
            continue;
        }
        if ALWAYS_SENT.contains(&n) || HeaderPattern::any(&h.include_request_headers, n) {
            out.append(name.clone(), value.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(input.authority) {
        out.insert(http::header::HOST, v);
    }
    out.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    for (k, v) in &h.additional_headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            out.insert(n, v);
        }
    }
    Ok(req)
}

fn pairs(headers: &HeaderMap, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| keep(n.as_str()))
        .filter_map(|(n, v)| {
            v.to_str()
                .ok()
                .map(|v| (n.as_str().to_string(), v.to_string()))
        })
        .collect()
}

/// Map the authorization server's response as Envoy's raw HTTP client does: 5xx is an error
/// (failOpen / statusOnError decide), 200 allows (copying `headersToUpstreamOnAllow` onto
/// the upstream request and `headersToDownstreamOnAllow` onto the client response), anything
/// else denies with its status, body and headers (`headersToDownstreamOnDeny`, or every
/// header but Host when that list is empty).
pub fn map_response(
    h: &ExtAuthzHttp,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verdict, CheckError> {
    if (500..600).contains(&status) {
        return Err(CheckError::ServerError(status));
    }
    if status == 200 {
        return Ok(Verdict::Allow(AllowMutations {
            set: pairs(headers, |n| {
                HeaderPattern::any(&h.headers_to_upstream_on_allow, n)
            }),
            response: pairs(headers, |n| {
                HeaderPattern::any(&h.headers_to_downstream_on_allow, n)
            }),
            ..AllowMutations::default()
        }));
    }
    let deny_list = &h.headers_to_downstream_on_deny;
    let headers = pairs(headers, |n| {
        if NOT_TO_CLIENT.contains(&n) {
            return false;
        }
        // With a list, Envoy always adds WWW-Authenticate and Location (and the status).
        deny_list.is_empty()
            || HeaderPattern::any(deny_list, n)
            || n == "www-authenticate"
            || n == "location"
    });
    Ok(Verdict::Deny(LocalReply {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
        headers,
    }))
}

/// One HTTP check against `target`.
pub async fn check(
    upstreams: &Upstreams,
    target: &Target,
    _p: &ExtAuthzProvider,
    h: &ExtAuthzHttp,
    input: &CheckInput<'_>,
) -> Result<Verdict, CheckError> {
    let req = build_request(h, input)?;
    let resp = upstreams
        .send(target, Wire::Http1, req)
        .await
        .map_err(|e| CheckError::Transport(e.to_string()))?;
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| CheckError::Transport(e.to_string()))?
        .to_bytes();
    map_response(h, status, &parts.headers, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ExtAuthzHttp {
        ExtAuthzHttp {
            path_prefix: "/check".into(),
            include_request_headers: vec![
                HeaderPattern::parse("x-ext-authz"),
                HeaderPattern::parse("x-b3-*"),
            ],
            additional_headers: vec![("x-added".into(), "1".into())],
            headers_to_upstream_on_allow: vec![HeaderPattern::parse("x-result")],
            headers_to_downstream_on_deny: vec![],
            headers_to_downstream_on_allow: vec![HeaderPattern::parse("x-allowed")],
        }
    }

    fn map(list: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in list {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }

    #[test]
    fn check_request_carries_the_selected_headers() {
        let headers = map(&[
            ("host", "echo.default"),
            ("authorization", "Bearer t"),
            ("x-ext-authz", "allow"),
            ("x-b3-traceid", "1"),
            ("cookie", "secret"),
            ("content-length", "12"),
            ("transfer-encoding", "chunked"),
        ]);
        let input = CheckInput {
            method: "POST",
            authority: "echo.default",
            path: "/a?b=1",
            headers: &headers,
            protocol: "HTTP/1.1",
            source_ip: None,
            source_principal: None,
            destination: "10.0.0.1:80",
        };
        let req = build_request(&settings(), &input).expect("request");
        assert_eq!(req.method(), "POST");
        assert_eq!(req.uri(), "/check/a?b=1");
        let mut names: Vec<(&str, &str)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("")))
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                ("authorization", "Bearer t"),
                ("content-length", "0"),
                ("host", "echo.default"),
                ("x-added", "1"),
                ("x-b3-traceid", "1"),
                ("x-ext-authz", "allow"),
            ]
        );
    }

    #[test]
    fn response_mapping() {
        let h = settings();
        let hs = map(&[
            ("x-result", "ok"),
            ("x-allowed", "yes"),
            ("x-other", "no"),
            ("content-type", "text/plain"),
            ("content-length", "6"),
        ]);
        match map_response(&h, 200, &hs, b"") {
            Ok(Verdict::Allow(m)) => {
                assert_eq!(m.set, vec![("x-result".into(), "ok".into())]);
                assert_eq!(m.response, vec![("x-allowed".into(), "yes".into())]);
            }
            other => panic!("200 must allow: {other:?}"),
        }
        match map_response(&h, 403, &hs, b"denied") {
            Ok(Verdict::Deny(r)) => {
                assert_eq!(r.status, 403);
                assert_eq!(r.body, "denied");
                // Empty headersToDownstreamOnDeny: every header but Host and framing.
                assert_eq!(r.headers.len(), 4, "{:?}", r.headers);
                assert!(!r.headers.iter().any(|(k, _)| k == "content-length"));
            }
            other => panic!("403 must deny: {other:?}"),
        }
        let mut only = h.clone();
        only.headers_to_downstream_on_deny = vec![HeaderPattern::parse("x-result")];
        match map_response(
            &only,
            401,
            &map(&[
                ("x-result", "no"),
                ("www-authenticate", "Basic"),
                ("x-other", "1"),
            ]),
            b"",
        ) {
            Ok(Verdict::Deny(r)) => {
                assert_eq!(r.status, 401);
                assert_eq!(
                    r.headers,
                    vec![
                        ("x-result".into(), "no".into()),
                        ("www-authenticate".into(), "Basic".into())
                    ]
                );
            }
            other => panic!("401 must deny: {other:?}"),
        }
        assert!(matches!(
            map_response(&h, 503, &hs, b""),
            Err(CheckError::ServerError(503))
        ));
        // Any other 2xx is not OK for Envoy's HTTP client: a denial with that status.
        assert!(matches!(
            map_response(&h, 204, &hs, b""),
            Ok(Verdict::Deny(_))
        ));
    }
}
