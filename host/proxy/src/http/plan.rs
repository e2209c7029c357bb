//! The policy stage: the request as the core sees it (with the tunnel's peer and destination),
//! planned in the request's one config generation.

use http::HeaderMap;

use crate::connect::context::{ConnectContext, Resolution};
use crate::http::head::RequestHead;
use crate::http::random::rng;
use crate::policy::plan::Plan;

/// The plan for a request with `head` and `headers` on the tunnel `ctx`, decided in `res`
/// (`auth`: what the JWT stage verified).
pub fn plan<'r>(
    ctx: &ConnectContext,
    res: &'r Resolution,
    head: &RequestHead,
    headers: &HeaderMap,
    auth: Option<&waypoint_core::authn::RequestAuth>,
) -> Plan<'r> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
        .collect();
    let view = waypoint_core::Request {
        method: head.method.as_str(),
        scheme: "http",
        authority: &head.authority,
        path: &head.path,
        headers: &headers,
        source_principal: ctx.peer.principal.as_deref(),
        source_ip: ctx.peer.source_ip,
        destination: &ctx.authority,
        sni: None,
    };
    res.plan(&view, auth, &mut rng())
}
