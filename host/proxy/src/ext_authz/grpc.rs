//! The gRPC ext_authz client: `envoy.service.auth.v3.Authorization/Check` with envoy-types'
//! messages, framed by hand over the host's pooled HTTP/2 upstreams (plain or HBONE).

use envoy_types::pb::envoy::config::core::v3::{address, socket_address, Address, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};

use crate::ext_authz::input::CheckInput;
use crate::ext_authz::verdict::{AllowMutations, CheckError, Verdict};
use crate::policy::plan::LocalReply;
use crate::upstream::grpc_unary::{self, UnaryError};
use crate::upstream::{Target, Upstreams};

/// The gRPC method path.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

fn socket(ip: std::net::IpAddr, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// The CheckRequest Envoy's ext_authz filter sends: source and destination peers, and the
/// request's method, path (with query), host, scheme, protocol and headers (lower-case names,
/// repeated values joined with `,`).
pub fn build_check_request(input: &CheckInput<'_>) -> CheckRequest {
    let mut headers = std::collections::HashMap::new();
    for (n, v) in input.headers {
        if let Ok(v) = v.to_str() {
            headers
                .entry(n.as_str().to_string())
                .and_modify(|e: &mut String| {
                    e.push(',');
                    e.push_str(v);
                })
                .or_insert_with(|| v.to_string());
        }
    }
    headers.insert(":authority".into(), input.authority.to_string());
    headers.insert(":method".into(), input.method.to_string());
    headers.insert(":path".into(), input.path.to_string());
    let (path, query) = match input.path.split_once('?') {
        Some((p, q)) => (p, q),
        None => (input.path, ""),
    };
    let _ = path;
    let source = Peer {
        address: input.source_ip.map(|ip| socket(ip, 0)),
        principal: input.source_principal.unwrap_or("").to_string(),
        ..Default::default()
    };
    let destination = Peer {
        address: input.destination_addr().map(|a| socket(a.ip(), a.port())),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(source),
            destination: Some(destination),
            request: Some(AttrRequest {
                time: None,
                http: Some(HttpRequest {
                    method: input.method.to_string(),
                    path: input.path.to_string(),
                    host: input.authority.to_string(),
                    scheme: "http".into(),
                    query: query.to_string(),
                    protocol: input.protocol.to_string(),
                    headers,
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
}

/// Header name/value pairs.
type Pairs = Vec<(String, String)>;

/// (headers to set, headers to append) of a HeaderValueOption list.
fn header_pairs(
    list: &[envoy_types::pb::envoy::config::core::v3::HeaderValueOption],
) -> (Pairs, Pairs) {
    let mut set = Vec::new();
    let mut append = Vec::new();
    for o in list {
        let Some(h) = &o.header else { continue };
        let value = if h.raw_value.is_empty() {
            h.value.clone()
        } else {
            String::from_utf8_lossy(&h.raw_value).into_owned()
        };
        // OkHttpResponse: "the append field in HeaderValueOption defaults to false".
        #[allow(deprecated)]
        let appends = o.append.as_ref().is_some_and(|b| b.value);
        if appends {
            append.push((h.key.to_ascii_lowercase(), value));
        } else {
            set.push((h.key.to_ascii_lowercase(), value));
        }
    }
    (set, append)
}

/// Map a CheckResponse: status OK allows with the OkHttpResponse's header mutations; any other
/// status denies with the DeniedHttpResponse's status (403 when unset), headers and body.
pub fn map_check_response(resp: CheckResponse) -> Verdict {
    let code = resp.status.as_ref().map_or(0, |s| s.code);
    if code == 0 {
        let mut m = AllowMutations::default();
        if let Some(HttpResponse::OkResponse(ok)) = resp.http_response {
            let (set, append) = header_pairs(&ok.headers);
            m.set = set;
            m.append = append;
            m.remove = ok
                .headers_to_remove
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect();
            let (rs, ra) = header_pairs(&ok.response_headers_to_add);
            m.response = rs.into_iter().chain(ra).collect();
        }
        return Verdict::Allow(m);
    }
    let (status, headers, body) = match resp.http_response {
        Some(HttpResponse::DeniedResponse(d)) | Some(HttpResponse::ErrorResponse(d)) => {
            let status = d
                .status
                .map(|s| s.code)
                .filter(|c| (100..600).contains(c))
                .map_or(403, |c| c as u16);
            let (set, append) = header_pairs(&d.headers);
            (status, set.into_iter().chain(append).collect(), d.body)
        }
        _ => (403, Vec::new(), String::new()),
    };
    Verdict::Deny(LocalReply {
        status,
        body,
        headers,
    })
}

/// One gRPC check against `target` (`authority` is the provider service's `host:port`).
pub async fn check(
    upstreams: &Upstreams,
    target: &Target,
    authority: &str,
    input: &CheckInput<'_>,
) -> Result<Verdict, CheckError> {
    let uri = format!("http://{authority}{CHECK_PATH}");
    let resp: CheckResponse =
        grpc_unary::call(upstreams, target, &uri, &build_check_request(input))
            .await
            .map_err(|e| match e {
                UnaryError::Transport(m) => CheckError::Transport(m),
                UnaryError::Grpc(c, m) => CheckError::Grpc(c, m),
                UnaryError::BadResponse(m) => CheckError::BadResponse(m),
            })?;
    Ok(map_check_response(resp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{HeaderValue as PbHeader, HeaderValueOption};
    use envoy_types::pb::envoy::r#type::v3::HttpStatus;
    use envoy_types::pb::envoy::service::auth::v3::{DeniedHttpResponse, OkHttpResponse};
    use envoy_types::pb::google::rpc::Status;
    use http::HeaderValue;

    fn opt(k: &str, v: &str) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(PbHeader {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn check_request_attributes() {
        let mut headers = http::HeaderMap::new();
        headers.append("x-ext-authz", HeaderValue::from_static("allow"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let input = CheckInput {
            method: "GET",
            authority: "echo.default:80",
            path: "/p?q=1",
            headers: &headers,
            protocol: "HTTP/1.1",
            source_ip: Some("10.1.0.5".parse().expect("ip")),
            source_principal: Some("spiffe://cluster.local/ns/default/sa/sleep"),
            destination: "10.0.0.1:80",
        };
        let r = build_check_request(&input);
        let a = r.attributes.expect("attributes");
        let src = a.source.expect("source");
        assert_eq!(src.principal, "spiffe://cluster.local/ns/default/sa/sleep");
        let dst = a.destination.expect("destination");
        assert_eq!(
            dst.address,
            Some(socket("10.0.0.1".parse().expect("ip"), 80))
        );
        let http = a.request.and_then(|r| r.http).expect("http");
        assert_eq!(
            (http.method.as_str(), http.path.as_str(), http.host.as_str()),
            ("GET", "/p?q=1", "echo.default:80")
        );
        assert_eq!(http.query, "q=1");
        assert_eq!(
            http.headers.get("x-ext-authz").map(String::as_str),
            Some("allow")
        );
        assert_eq!(http.headers.get("x-multi").map(String::as_str), Some("a,b"));
        assert_eq!(
            http.headers.get(":path").map(String::as_str),
            Some("/p?q=1")
        );
    }

    #[test]
    fn ok_and_denied_responses() {
        let ok = CheckResponse {
            status: Some(Status {
                code: 0,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![opt("X-Result", "ok")],
                headers_to_remove: vec!["x-secret".into()],
                response_headers_to_add: vec![opt("x-allowed", "1")],
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(
            map_check_response(ok),
            Verdict::Allow(AllowMutations {
                set: vec![("x-result".into(), "ok".into())],
                append: vec![],
                remove: vec!["x-secret".into()],
                response: vec![("x-allowed".into(), "1".into())],
            })
        );
        let denied = CheckResponse {
            status: Some(Status {
                code: 7,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus { code: 401 }),
                headers: vec![opt("x-why", "no")],
                body: "nope".into(),
            })),
            ..Default::default()
        };
        assert_eq!(
            map_check_response(denied),
            Verdict::Deny(LocalReply {
                status: 401,
                body: "nope".into(),
                headers: vec![("x-why".into(), "no".into())],
            })
        );
        // Denied without an HTTP response: Envoy's 403 with no body.
        let bare = CheckResponse {
            status: Some(Status {
                code: 7,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            map_check_response(bare),
            Verdict::Deny(LocalReply {
                status: 403,
                body: String::new(),
                headers: vec![]
            })
        );
    }
}
