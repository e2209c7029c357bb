//! Request mirroring: a copy of the request goes to each mirror target, fire and forget, with
//! `-shadow` appended to the host (Envoy's shadow naming); only a replayable body is mirrored.

use http::{HeaderValue, Uri};
use http_body_util::BodyExt;
use tracing::debug;

use crate::http::body::ReqBody;
use crate::http::reply::full;
use crate::http::upstream_request::UpstreamRequest;
use crate::policy::plan::ForwardPlan;
use crate::upstream::{Upstreams, Wire};

/// Send the route's mirrors of `up` (spawned; their responses are discarded).
pub fn send(
    upstreams: &std::sync::Arc<Upstreams>,
    fp: &ForwardPlan,
    up: &UpstreamRequest,
    body: &ReqBody,
) {
    let ReqBody::Replayable(b) = body else {
        return;
    };
    for m in &fp.mirrors {
        let shadow = waypoint_core::names::shadow_authority(&up.authority);
        let Some(mut r) = up.build(full(b.clone())) else {
            continue;
        };
        if up.wire == Wire::Http1 {
            if let Ok(v) = HeaderValue::from_str(&shadow) {
                r.headers_mut().insert(http::header::HOST, v);
            }
        } else if let Ok(u) = format!("http://{shadow}{}", up.path).parse::<Uri>() {
            *r.uri_mut() = u;
        }
        let upstreams = upstreams.clone();
        let target = m.target.clone();
        let wire = up.wire;
        tokio::spawn(async move {
            match upstreams.send(&target, wire, r).await {
                Ok(resp) => {
                    let _ = resp.into_body().collect().await;
                }
                Err(e) => debug!(target = %target, error = %e, "mirror failed"),
            }
        });
    }
}
