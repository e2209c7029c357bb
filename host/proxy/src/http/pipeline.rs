//! One HTTP request inside a tunnel, as a linear pipeline with early exits: screen (upgrades,
//! inner CONNECT) → JWT (RequestAuthentication) → policy plan → local reply, or CORS → fault → ext_authz → router (attempts,
//! retries, mirrors, deadlines) → metrics and access log. Each stage lives in its own file.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::Either;
use http::{HeaderValue, Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::info;

use crate::connect::context::{ConnectContext, Resolution};
use crate::ext_authz::verdict::Verdict;
use crate::http::body::ReqBody;
use crate::http::cors::CorsAction;
use crate::http::deadline::RequestDeadline;
use crate::http::head::RequestHead;
use crate::http::reply::{self, Outcome, ProxyError};
use crate::http::request_timeout::{InBody, Received};
use crate::http::retry::{self, Answered, Failed};
use crate::http::{
    authz, filters, global_ratelimit, jwt, mirror, plan, ratelimit, report, trace, upgrade,
};
use crate::policy::plan::{ForwardPlan, PlanKind};
use crate::upstream::{BoxError, ProxyBody};
use crate::Shared;

/// Serve one request: hyper's service inside a tunnel. With no request timeout (the default)
/// this is [`serve`] itself, so the common path adds no future around it.
pub fn handle(
    shared: Arc<Shared>,
    ctx: Arc<ConnectContext>,
    req: Request<Incoming>,
) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send {
    match waypoint_hbone::timeouts::Timeouts::enabled(shared.timeouts.request) {
        None => Either::Left(serve(shared, ctx, req.map(|b| InBody::new(b, None)), None)),
        Some(limit) => Either::Right(Box::pin(serve_timed(shared, ctx, req, limit))),
    }
}

/// [`serve`] under Envoy's `request_timeout`: the request must be received (or the response
/// begun) in time, else 408 `request timeout`.
async fn serve_timed(
    shared: Arc<Shared>,
    ctx: Arc<ConnectContext>,
    req: Request<Incoming>,
    limit: Duration,
) -> Result<Response<ProxyBody>, Infallible> {
    let received = Arc::new(Received::default());
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let http1 = req.version() < Version::HTTP_2;
    let req = req.map(|b| InBody::new(b, Some(received.clone())));
    let drain = shared.clone();
    let parked = Arc::new(trace::Parked::default());
    tokio::select! {
        r = serve(shared, ctx.clone(), req, Some(parked.clone())) => r,
        _ = received.expired(limit) => {
            if drain.access_log_now() { info!(
                target: "access",
                method = %method,
                path = %path,
                status = 408,
                destination = %ctx.authority,
                details = "request_overall_timeout",
                "request"
            ); }
            let (mut resp, outcome) = reply::error(ProxyError::RequestTimeout, None, 0);
            parked.finish(&drain, &outcome);
            close_if_draining(&drain, http1, &mut resp);
            Ok(resp)
        }
    }
}

/// While draining, an HTTP/1 connection is closed after its current response (Envoy adds
/// `connection: close` during drain); HTTP/2 gets a GOAWAY from the tunnel's server.
fn close_if_draining(shared: &Shared, http1: bool, resp: &mut Response<ProxyBody>) {
    if http1 && shared.proxy.drain.is_draining() {
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Serve one request (the request timeout, when on, runs around this and finishes the span
/// `parked` holds meanwhile).
async fn serve(
    shared: Arc<Shared>,
    ctx: Arc<ConnectContext>,
    mut req: Request<InBody>,
    parked: Option<Arc<trace::Parked>>,
) -> Result<Response<ProxyBody>, Infallible> {
    let start = Instant::now();
    let http1 = req.version() < Version::HTTP_2;
    // Screen: a CONNECT or upgrade the connection manager is not configured for never
    // reaches policy.
    if let Err(refusal) = upgrade::screen(&shared.proxy, &mut req) {
        if shared.access_log_now() {
            info!(
                target: "access",
                method = %req.method(),
                path = %req.uri().path(),
                status = upgrade::Refusal::STATUS,
                details = "upgrade_failed",
                refused = ?refusal,
                source = ctx.peer.principal.as_deref().unwrap_or("-"),
                destination = %ctx.authority,
                "request"
            );
        }
        let (mut resp, _) = reply::error(ProxyError::UpgradeRefused, None, 0);
        close_if_draining(&shared, http1, &mut resp);
        return Ok(resp);
    }
    // Envoy's connection manager gives every request an `x-request-id` before its filters.
    crate::telemetry::request_id::ensure(req.headers_mut());
    // Policy: one config generation for the whole request.
    let head = RequestHead::of(&req);
    let res = ctx.resolution_for(shared.config.current());
    // Tracing: the span begins here and the upstream gets the child trace context.
    let mut span = trace::start(&res, http1, req.headers_mut());
    if let Some(p) = &parked {
        if let Some(s) = span.take() {
            p.park(s, &head, &res);
        }
    }
    // Request authentication (Envoy's jwt_authn, before RBAC): 401 for a bad token.
    let plan = match jwt::authenticate(&shared, &ctx, &res, &head, &mut req).await {
        Ok(auth) => plan::plan(&ctx, &res, &head, req.headers(), auth.as_ref()),
        Err(unauthenticated) => unauthenticated,
    };
    let cluster = trace::cluster_of(&ctx, &plan);
    if let Some(p) = &parked {
        p.set_cluster(&cluster);
    }
    // The span back from where the request timeout could have finished it.
    let unpark = |span: Option<trace::Started>| span.or_else(|| parked.as_ref()?.unpark());
    // Local rate limit: Istio's EnvoyFilter inserts it before every other filter.
    let limit = ratelimit::check(&shared, &ctx, &res, &plan, &head, req.headers_mut());
    if let Some(reply) = &limit.limited {
        let (resp, outcome) = reply::rate_limited(reply);
        let sizes = report::finish(&shared, &ctx, &res, &head, &plan, &outcome, start.elapsed());
        trace::finish(&shared, &res, &head, &cluster, &outcome, unpark(span));
        let mut resp = crate::telemetry::body_size::counted(resp, sizes, start);
        if head.grpc {
            resp = reply::grpc_form(resp);
        }
        close_if_draining(&shared, http1, &mut resp);
        return Ok(resp);
    }
    if let Some(d) = plan.delay {
        tokio::time::sleep(d).await;
    }
    let (resp, outcome) = match &plan.kind {
        PlanKind::Local(r) => reply::policy(r, plan.action),
        PlanKind::AskThenLocal(call, r) => {
            match authz::check(&shared.upstreams, &ctx, &res, call, &req, &head).await {
                Verdict::Deny(denied) => reply::ext_authz_denied(&denied),
                Verdict::Allow(_) => reply::policy(r, plan.action),
            }
        }
        PlanKind::Forward(fp) => forward(&shared, &ctx, &res, &plan, fp, req, &head).await,
    };
    let mut resp = resp;
    ratelimit::decorate(resp.headers_mut(), &limit.response_headers);
    let sizes = report::finish(&shared, &ctx, &res, &head, &plan, &outcome, start.elapsed());
    trace::finish(&shared, &res, &head, &cluster, &outcome, unpark(span));
    let mut resp = crate::telemetry::body_size::counted(resp, sizes, start);
    if head.grpc {
        // Envoy answers a gRPC request's local replies in gRPC form (trailers-only).
        resp = reply::grpc_form(resp);
    }
    close_if_draining(&shared, http1, &mut resp);
    Ok(resp)
}

/// The route's filters in Envoy's order (CORS, fault, ext_authz, the global rate limit that
/// Istio's task inserts before the router), then the router.
async fn forward(
    shared: &Shared,
    ctx: &ConnectContext,
    res: &Resolution,
    plan: &crate::policy::plan::Plan<'_>,
    fp: &ForwardPlan,
    mut req: Request<InBody>,
    head: &RequestHead,
) -> (Response<ProxyBody>, Outcome) {
    let cors = filters::cors(fp, &req);
    if let CorsAction::Preflight(headers) = cors {
        return reply::preflight(headers);
    }
    filters::fault_delay(fp).await;
    // CUSTOM policy: the ext_authz provider decides before the router.
    let allowed = match &fp.ext_authz {
        None => None,
        Some(call) => match authz::check(&shared.upstreams, ctx, res, call, &req, head).await {
            Verdict::Deny(denied) => return reply::ext_authz_denied(&denied),
            Verdict::Allow(m) => {
                m.apply_request(req.headers_mut());
                Some(m)
            }
        },
    };
    let global =
        global_ratelimit::check(shared, ctx, res, plan.rule, fp, head, req.headers_mut()).await;
    if let Some(denied) = global.denied {
        return denied;
    }
    let (mut resp, outcome) = if upgrade::is_upgrade(&req) {
        upgrade::route(shared, fp, req, head).await
    } else {
        route(shared, fp, req, head, &cors).await
    };
    if let Some(m) = allowed {
        m.apply_response(resp.headers_mut());
    }
    global_ratelimit::decorate(resp.headers_mut(), &global.response_headers);
    (resp, outcome)
}

/// The router: the request with the route's mutations, its body made replayable when retries
/// or mirrors need it, mirrors sent, then attempts until an answer within the deadlines.
async fn route(
    shared: &Shared,
    fp: &ForwardPlan,
    req: Request<InBody>,
    head: &RequestHead,
    cors: &CorsAction,
) -> (Response<ProxyBody>, Outcome) {
    let (up, body) = filters::upstream_request(fp, req, head);
    let want_copy = fp.retries.as_ref().is_some_and(|r| r.attempts > 0) || !fp.mirrors.is_empty();
    let body = match ReqBody::prepare(body, want_copy).await {
        Ok(b) => b,
        Err(e) => return reply::error(e, None, 0),
    };
    mirror::send(&shared.upstreams, fp, &up, &body);
    let deadline = RequestDeadline::start(fp.timeout);
    match retry::attempts(shared, fp, &up, body, deadline).await {
        Ok(Answered {
            response,
            target,
            attempts,
            flag,
        }) => {
            let (mut parts, body) = response.into_parts();
            filters::response_headers(fp, &mut parts.headers, cors);
            let status = parts.status.as_u16();
            let body = deadline.bound(body.map_err(|e| Box::new(e) as BoxError).boxed());
            (
                Response::from_parts(parts, body),
                Outcome {
                    status,
                    flag,
                    target: Some(target),
                    attempts,
                },
            )
        }
        Err(Failed {
            error,
            target,
            attempts,
        }) => reply::error(error, target, attempts),
    }
}
