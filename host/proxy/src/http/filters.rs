//! The route's filters around the upstream exchange, in Envoy's order: CORS (a preflight is
//! answered here), the fault delay, then the request's and the response's header mutations.

use http::{HeaderMap, Request, Version};

use crate::http::cors::{self, CorsAction};
use crate::http::head::{is_grpc, RequestHead};
use crate::http::headers::{apply_ops, strip_hop_by_hop};
use crate::http::request_timeout::InBody;
use crate::http::upstream_request::UpstreamRequest;
use crate::policy::plan::ForwardPlan;
use crate::upstream::Wire;

/// What the route's CORS policy does with the request.
pub fn cors(fp: &ForwardPlan, req: &Request<InBody>) -> CorsAction {
    match &fp.cors {
        Some(c) => cors::evaluate(c, req.method().as_str(), req.headers()),
        None => CorsAction::None,
    }
}

/// The fault filter's delay, when the route injects one.
pub async fn fault_delay(fp: &ForwardPlan) {
    if let Some(d) = fp.fault_delay {
        tokio::time::sleep(d).await;
    }
}

/// Split `req` into the upstream request and its body. Istio picks the upstream protocol
/// from the service port (gRPC always needs HTTP/2; pass-through keeps the client's).
pub fn upstream_request(
    fp: &ForwardPlan,
    req: Request<InBody>,
    head: &RequestHead,
) -> (UpstreamRequest, InBody) {
    let (mut parts, body) = req.into_parts();
    let h2 = match fp.upstream_h2 {
        Some(h2) => h2 || is_grpc(&parts.headers),
        None => parts.version == Version::HTTP_2,
    };
    let wire = if h2 { Wire::Http2 } else { Wire::Http1 };
    strip_hop_by_hop(&mut parts.headers);
    for ops in &fp.request_headers {
        apply_ops(&mut parts.headers, ops);
    }
    let authority = fp
        .authority
        .clone()
        .unwrap_or_else(|| head.authority.clone());
    let path = fp.path.clone().unwrap_or_else(|| head.path.clone());
    (UpstreamRequest::new(parts, wire, authority, path), body)
}

/// The upstream response's headers as the client gets them: hop-by-hop removed, the route's
/// mutations applied, CORS headers added for an allowed cross-origin request.
pub fn response_headers(fp: &ForwardPlan, headers: &mut HeaderMap, cors: &CorsAction) {
    strip_hop_by_hop(headers);
    for ops in &fp.response_headers {
        apply_ops(headers, ops);
    }
    if let CorsAction::Decorate(h) = cors {
        cors::decorate(headers, h);
    }
}
