//! The request head as the policy and the access log see it: method, authority (`:authority`
//! or Host), path with query, and whether it is gRPC.

use http::{Method, Request};

/// What the pipeline keeps of a request head once the request itself moves on.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    /// `:authority`, else `Host`, else empty.
    pub authority: String,
    /// Path with query (`/` when the target has none).
    pub path: String,
    /// A gRPC request ([`is_grpc`]).
    pub grpc: bool,
    /// Request size for `istio_request_bytes`: headers (with pseudo-headers) and the body's
    /// `content-length` (a body of unknown length counts as 0).
    pub size: u64,
}

impl RequestHead {
    pub fn of<B>(req: &Request<B>) -> Self {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        let body = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let pseudo = (req.method().as_str().len() + authority.len() + path.len() + 30) as u64;
        RequestHead {
            size: crate::telemetry::body_size::header_bytes(req.headers()) + pseudo + body,
            method: req.method().clone(),
            authority,
            path,
            grpc: is_grpc(req.headers()),
        }
    }
}

/// A gRPC request as Envoy decides it (`application/grpc`, `+…` or `;…`; not gRPC-Web).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    waypoint_core::local_reply::is_grpc_request(
        headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )
}
