//! The JWT stage (Envoy's jwt_authn, before authorization): the RequestAuthentication rules
//! of the destination, their keys made ready, the core's authentication; a bad token is a 401.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue, Request};
use waypoint_core::authn::{authenticate as core_authenticate, RequestAuth};
use waypoint_jwt::JwksVerifier;

use crate::connect::context::{ConnectContext, Resolution};
use crate::http::head::RequestHead;
use crate::policy::plan::{Plan, PlanAction, PlanKind};
use crate::Shared;

/// Authenticate `req`: `Ok(attributes)` (none without a token) with the token removed and the
/// output headers set, or `Err(plan)`: the 401 local reply.
pub async fn authenticate<'r, B>(
    shared: &Shared,
    ctx: &ConnectContext,
    res: &'r Resolution,
    head: &RequestHead,
    req: &mut Request<B>,
) -> Result<Option<RequestAuth>, Plan<'r>> {
    let snapshot = &res.config.policy.snapshot;
    let rules = snapshot.jwt_rules_for(&ctx.authority);
    if rules.is_empty() {
        return Ok(None);
    }
    shared.jwks.prepare(&rules).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let outcome = {
        let headers: Vec<(&str, &str)> = req
            .headers()
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
        core_authenticate(&rules, &view, &JwksVerifier(&*shared.jwks), now)
            .map_err(|u| (u.body(), u.www_authenticate(&view)))
    };
    match outcome {
        Ok(done) => {
            let h = req.headers_mut();
            for name in &done.remove_headers {
                h.remove(name.as_str());
            }
            for (name, value) in &done.set_headers {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    h.insert(n, v);
                }
            }
            Ok(done.auth)
        }
        Err((body, www_authenticate)) => {
            let mut plan = Plan::local(PlanAction::Deny, 401, body);
            if let PlanKind::Local(reply) = &mut plan.kind {
                reply
                    .headers
                    .push(("www-authenticate".to_string(), www_authenticate));
            }
            Err(plan)
        }
    }
}
