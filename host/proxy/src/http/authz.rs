//! The ext_authz stage: a CUSTOM policy's provider is asked about the request (after CORS and
//! fault injection, before the router, as in Envoy's filter chain).

use http::{Request, Version};
use waypoint_core::authz::normalize_path_stable;

use crate::connect::context::{ConnectContext, Resolution};
use crate::ext_authz::input::CheckInput;
use crate::ext_authz::verdict::Verdict;
use crate::http::head::RequestHead;
use crate::policy::ext_authz_call::ExtAuthzCall;
use crate::upstream::Upstreams;

/// Ask `call`'s provider about `req`.
pub async fn check<B>(
    upstreams: &Upstreams,
    ctx: &ConnectContext,
    res: &Resolution,
    call: &ExtAuthzCall,
    req: &Request<B>,
    head: &RequestHead,
) -> Verdict {
    // The provider sees the path as normalized for policy (Envoy's ext_authz filter runs
    // after the connection manager normalized `:path`), in the request's config generation.
    let mode = res.config.policy.snapshot.mesh().path_normalization;
    let normalized = normalize_path_stable(mode, &head.path);
    let input = CheckInput {
        method: req.method().as_str(),
        authority: &head.authority,
        path: normalized.as_deref().unwrap_or(&head.path),
        headers: req.headers(),
        protocol: if req.version() == Version::HTTP_2 {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        },
        source_ip: ctx.peer.source_ip,
        source_principal: ctx.peer.principal.as_deref(),
        destination: &ctx.authority,
    };
    crate::ext_authz::check(upstreams, call, &input).await
}
