//! One HTTP request inside a tunnel: build the core's request view, get a plan, then reply
//! locally or forward (fault delay, header mutations, rewrites, timeouts, retries, mirrors).

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::Either;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};

use crate::http::request_timeout::{InBody, Received};
use tracing::{debug, info};
use waypoint_core::authz::normalize_path_stable;
use waypoint_core::RandomSource;

use crate::ext_authz;
use crate::http::cors::{self, CorsAction};
use crate::http::deadline::DeadlineBody;
use crate::http::headers::{apply_ops, baggage_get, strip_hop_by_hop};
use crate::http::retry::{backoff, retry_error, retry_status};
use crate::http::upgrade;
use crate::policy::plan::{ForwardPlan, LocalReply, Plan, PlanKind};
use crate::telemetry::metrics::RequestLabels;
use crate::telemetry::request_metrics::RequestFacts;
use crate::upstream::outlier::AttemptResult;
use crate::upstream::{BoxError, ProxyBody, Target, UpstreamError, Wire};
use crate::Shared;
use waypoint_hbone::tls::Identity;

/// Largest request body buffered so it can be replayed for retries and mirrors
/// (Envoy's default per-connection buffer limit is 1 MiB).
const MAX_REPLAY_BODY: u64 = 1024 * 1024;

/// What the tunnel tells every request about its source and destination.
#[derive(Debug, Clone)]
pub struct TunnelCtx {
    pub peer_identity: Option<Identity>,
    pub principal: Option<String>,
    pub source_ip: Option<IpAddr>,
    /// The CONNECT `:authority`.
    pub destination: String,
    /// The CONNECT's `baggage`, used for source telemetry labels.
    pub baggage: Option<String>,
    /// `forwarded`, `baggage` and `traceparent` to carry onto an upstream HBONE CONNECT that
    /// relays this tunnel, so the destination still sees the original source.
    pub relay_headers: http::HeaderMap,
}

/// A fresh random source per request.
pub fn rng() -> waypoint_core::SplitMix64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    waypoint_core::SplitMix64(nanos ^ COUNTER.fetch_add(0x9E37_79B9, Ordering::Relaxed))
}

fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into()).map_err(|e| match e {}).boxed()
}

/// A local reply as a response.
pub fn local_response(reply: &LocalReply) -> Response<ProxyBody> {
    let mut resp = Response::new(full(reply.body.clone()));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    for (k, v) in &reply.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(n, v);
        }
    }
    if !reply.body.is_empty() && !h.contains_key(http::header::CONTENT_TYPE) {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
    }
    resp
}

/// Outcome bookkeeping for logs and metrics.
struct Outcome {
    status: u16,
    flags: &'static str,
    target: Option<Target>,
    attempts: u32,
}

/// Serve one request: hyper's service inside a tunnel. With no request timeout (the default)
/// this is [`serve`] itself, so the common path adds no future around it.
pub fn handle(
    shared: Arc<Shared>,
    ctx: Arc<TunnelCtx>,
    req: Request<Incoming>,
) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send {
    match waypoint_hbone::timeouts::Timeouts::enabled(shared.timeouts.request) {
        None => Either::Left(serve(shared, ctx, req.map(|b| InBody::new(b, None)))),
        Some(limit) => Either::Right(Box::pin(serve_timed(shared, ctx, req, limit))),
    }
}

/// [`serve`] under Envoy's `request_timeout`: the request must be received (or the response
/// begun) in time, else 408 `request timeout`.
async fn serve_timed(
    shared: Arc<Shared>,
    ctx: Arc<TunnelCtx>,
    req: Request<Incoming>,
    limit: Duration,
) -> Result<Response<ProxyBody>, Infallible> {
    let received = Arc::new(Received::default());
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let http1 = req.version() < Version::HTTP_2;
    let req = req.map(|b| InBody::new(b, Some(received.clone())));
    let drain = shared.clone();
    tokio::select! {
        r = serve(shared, ctx.clone(), req) => r,
        _ = received.expired(limit) => {
            info!(
                target: "access",
                method = %method,
                path = %path,
                status = 408,
                destination = %ctx.destination,
                details = "request_overall_timeout",
                "request"
            );
            let mut resp = Response::new(full("request timeout"));
            *resp.status_mut() = StatusCode::REQUEST_TIMEOUT;
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
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

/// Serve one request (the request timeout, when on, runs around this).
async fn serve(
    shared: Arc<Shared>,
    ctx: Arc<TunnelCtx>,
    mut req: Request<InBody>,
) -> Result<Response<ProxyBody>, Infallible> {
    let start = Instant::now();
    if let Err(refusal) = upgrade::screen(&shared.proxy, &mut req) {
        info!(
            target: "access",
            method = %req.method(),
            path = %req.uri().path(),
            status = upgrade::Refusal::STATUS,
            details = "upgrade_failed",
            refused = ?refusal,
            source = ctx.principal.as_deref().unwrap_or("-"),
            destination = %ctx.destination,
            "request"
        );
        let reply = LocalReply {
            status: upgrade::Refusal::STATUS,
            body: String::new(),
            headers: Vec::new(),
        };
        let mut resp = local_response(&reply);
        close_if_draining(&shared, req.version() < Version::HTTP_2, &mut resp);
        return Ok(resp);
    }
    let http1 = req.version() < Version::HTTP_2;
    let method = req.method().as_str().to_string();
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
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let plan = {
        let headers: Vec<(&str, &str)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
            .collect();
        let view = waypoint_core::Request {
            method: &method,
            scheme: "http",
            authority: &authority,
            path: &path,
            headers: &headers,
            source_principal: ctx.principal.as_deref(),
            source_ip: ctx.source_ip,
            destination: &ctx.destination,
            sni: None,
        };
        match shared.config.current() {
            Some(cfg) => cfg.policy.plan(&view, &mut rng()),
            // Not ready: no config yet. ztunnel would not send here (readiness), but be safe.
            None => Plan::local("error", 503, "no config loaded"),
        }
    };
    if let Some(d) = plan.delay {
        tokio::time::sleep(d).await;
    }
    let (resp, outcome) = match &plan.kind {
        PlanKind::Local(reply) => local_reply(reply, plan.action),
        PlanKind::AskThenLocal(call, reply) => {
            match ext_authz_check(&shared, &ctx, call, &req, &authority, &path).await {
                ext_authz::Verdict::Deny(denied) => ext_authz_denied(&denied),
                ext_authz::Verdict::Allow(_) => local_reply(reply, plan.action),
            }
        }
        PlanKind::Forward(fp) => forward(&shared, &ctx, fp, req, &authority, &path).await,
    };
    let elapsed = start.elapsed();
    record(&shared, &ctx, &plan, &outcome, grpc, elapsed);
    info!(
        target: "access",
        method = %method,
        authority = %authority,
        path = %path,
        status = outcome.status,
        flags = outcome.flags,
        action = plan.action,
        rule = plan.rule.as_deref().unwrap_or("-"),
        upstream = %outcome.target.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
        attempts = outcome.attempts,
        source = ctx.principal.as_deref().unwrap_or("-"),
        destination = %ctx.destination,
        duration_ms = elapsed.as_millis() as u64,
        "request"
    );
    let mut resp = resp;
    close_if_draining(&shared, http1, &mut resp);
    Ok(resp)
}

/// Envoy response flags for local replies.
fn local_flag(action: &str) -> &'static str {
    match action {
        "deny" => "-",
        "fault_abort" => "FI",
        "not_found" => "NR",
        "error" => "UH",
        _ => "-",
    }
}

/// The request body, replayable when small enough.
enum ReqBody {
    Replayable(Bytes),
    Stream(Option<InBody>),
}

async fn forward(
    shared: &Shared,
    ctx: &TunnelCtx,
    fp: &ForwardPlan,
    mut req: Request<InBody>,
    authority: &str,
    path: &str,
) -> (Response<ProxyBody>, Outcome) {
    let cors = match &fp.cors {
        Some(c) => cors::evaluate(c, req.method().as_str(), req.headers()),
        None => CorsAction::None,
    };
    if let CorsAction::Preflight(headers) = cors {
        let reply = LocalReply {
            status: 200,
            body: String::new(),
            headers,
        };
        return (
            local_response(&reply),
            Outcome {
                status: 200,
                flags: "-",
                target: None,
                attempts: 0,
            },
        );
    }
    if let Some(d) = fp.fault_delay {
        tokio::time::sleep(d).await;
    }
    // CUSTOM policy: the ext_authz provider decides before the router (Envoy filter order).
    let Some(call) = &fp.ext_authz else {
        return forward_allowed(shared, fp, req, authority, path, cors).await;
    };
    match ext_authz_check(shared, ctx, call, &req, authority, path).await {
        ext_authz::Verdict::Deny(reply) => ext_authz_denied(&reply),
        ext_authz::Verdict::Allow(m) => {
            m.apply_request(req.headers_mut());
            let (mut resp, outcome) = forward_allowed(shared, fp, req, authority, path, cors).await;
            m.apply_response(resp.headers_mut());
            (resp, outcome)
        }
    }
}

/// Ask a CUSTOM provider about this request.
async fn ext_authz_check<B>(
    shared: &Shared,
    ctx: &TunnelCtx,
    call: &ext_authz::ExtAuthzCall,
    req: &Request<B>,
    authority: &str,
    path: &str,
) -> ext_authz::Verdict {
    // The provider sees the path as normalized for policy (Envoy's ext_authz filter runs
    // after the connection manager normalized `:path`).
    let cfg = shared.config.current();
    let normalized = cfg.as_ref().and_then(|c| {
        normalize_path_stable(c.policy.snapshot.mesh().path_normalization, path)
            .map(|p| p.into_owned())
    });
    let input = ext_authz::CheckInput {
        method: req.method().as_str(),
        authority,
        path: normalized.as_deref().unwrap_or(path),
        headers: req.headers(),
        protocol: if req.version() == Version::HTTP_2 {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        },
        source_ip: ctx.source_ip,
        source_principal: ctx.principal.as_deref(),
        destination: &ctx.destination,
    };
    ext_authz::check(&shared.upstreams, call, &input).await
}

/// A reply of the waypoint's own, flagged for the access log by the decision's action.
fn local_reply(reply: &LocalReply, action: &str) -> (Response<ProxyBody>, Outcome) {
    (
        local_response(reply),
        Outcome {
            status: reply.status,
            flags: local_flag(action),
            target: None,
            attempts: 0,
        },
    )
}

/// The provider's denial, as the client gets it.
fn ext_authz_denied(reply: &LocalReply) -> (Response<ProxyBody>, Outcome) {
    (
        local_response(reply),
        Outcome {
            status: reply.status,
            // Envoy's response flag for an ext_authz denial.
            flags: "UAEX",
            target: None,
            attempts: 0,
        },
    )
}

/// Forward once authorization passed.
async fn forward_allowed(
    shared: &Shared,
    fp: &ForwardPlan,
    req: Request<InBody>,
    authority: &str,
    path: &str,
    cors: CorsAction,
) -> (Response<ProxyBody>, Outcome) {
    if upgrade::is_upgrade(&req) {
        return forward_upgrade(shared, fp, req, authority, path).await;
    }
    let (mut parts, body) = req.into_parts();
    // Istio picks the upstream protocol from the service port; gRPC always needs HTTP/2.
    let grpc = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let h2 = match fp.upstream_h2 {
        Some(h2) => h2 || grpc,
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
        .unwrap_or_else(|| authority.to_string());
    let path = fp.path.clone().unwrap_or_else(|| path.to_string());
    let retries = fp.retries.as_ref().map_or(0, |r| r.attempts);
    let want_copy = retries > 0 || !fp.mirrors.is_empty();
    let len = body.size_hint().exact();
    let mut body = if body.is_end_stream() {
        ReqBody::Replayable(Bytes::new())
    } else if want_copy && len.is_some_and(|l| l <= MAX_REPLAY_BODY) {
        match body.collect().await {
            Ok(b) => ReqBody::Replayable(b.to_bytes()),
            Err(e) => {
                debug!(error = %e, "downstream body failed");
                let reply = LocalReply {
                    status: 400,
                    body: "downstream body error".into(),
                    headers: vec![],
                };
                return (
                    local_response(&reply),
                    Outcome {
                        status: 400,
                        flags: "DPE",
                        target: None,
                        attempts: 0,
                    },
                );
            }
        }
    } else {
        ReqBody::Stream(Some(body))
    };

    let build = |body: ProxyBody| -> Option<Request<ProxyBody>> {
        let uri = match wire {
            Wire::Http2 => format!("http://{authority}{path}").parse::<Uri>().ok()?,
            Wire::Http1 => path.parse::<Uri>().ok()?,
        };
        let mut r = Request::new(body);
        *r.method_mut() = parts.method.clone();
        *r.uri_mut() = uri;
        *r.version_mut() = match wire {
            Wire::Http2 => Version::HTTP_2,
            Wire::Http1 => Version::HTTP_11,
        };
        *r.headers_mut() = parts.headers.clone();
        if wire == Wire::Http1 {
            r.headers_mut()
                .insert(http::header::HOST, HeaderValue::from_str(&authority).ok()?);
        } else {
            r.headers_mut().remove(http::header::HOST);
        }
        Some(r)
    };

    // Mirrors: fire and forget, only with a replayable body (Envoy shadows the same request
    // with `-shadow` appended to the host).
    if let ReqBody::Replayable(b) = &body {
        for m in &fp.mirrors {
            let shadow = shadow_authority(&authority);
            if let Some(mut r) = build(full(b.clone())) {
                if wire == Wire::Http1 {
                    if let Ok(v) = HeaderValue::from_str(&shadow) {
                        r.headers_mut().insert(http::header::HOST, v);
                    }
                } else if let Ok(u) = format!("http://{shadow}{path}").parse::<Uri>() {
                    *r.uri_mut() = u;
                }
                let up = shared.upstreams.clone();
                let target = m.target.clone();
                tokio::spawn(async move {
                    match up.send(&target, wire, r).await {
                        Ok(resp) => {
                            let _ = resp.into_body().collect().await;
                        }
                        Err(e) => debug!(target = %target, error = %e, "mirror failed"),
                    }
                });
            }
        }
    }

    // Ejected endpoints go last; the attempt loop walks the list in order.
    let mut targets = fp.targets.clone();
    let peers: Vec<std::net::SocketAddr> = targets.iter().map(|t| t.addr).collect();
    if fp.least_request {
        shared.active.pick(&mut targets, &mut rng());
    }
    if fp.outlier.is_some() {
        shared.outliers.order(&mut targets);
    }
    let record = |addr, result| {
        if let Some(od) = &fp.outlier {
            shared.outliers.record(od, addr, &peers, result);
        }
    };
    let deadline = fp.timeout.map(|t| Instant::now() + t);
    let max_attempts = 1 + retries;
    let mut attempt: u32 = 0;
    loop {
        let target = &targets[attempt as usize % targets.len()];
        attempt += 1;
        let replayable = matches!(body, ReqBody::Replayable(_));
        let req_body = match &mut body {
            ReqBody::Replayable(b) => full(b.clone()),
            ReqBody::Stream(s) => match s.take() {
                Some(b) => b.map_err(|e| Box::new(e) as BoxError).boxed(),
                None => full(Bytes::new()),
            },
        };
        let Some(up_req) = build(req_body) else {
            let reply = LocalReply {
                status: 400,
                body: format!("bad request target {authority}{path}"),
                headers: vec![],
            };
            return (
                local_response(&reply),
                Outcome {
                    status: 400,
                    flags: "DPE",
                    target: None,
                    attempts: attempt,
                },
            );
        };
        let now = Instant::now();
        let remaining = deadline.map(|d| d.saturating_duration_since(now));
        let limit = match (remaining, fp.per_try_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // With the whole request sent, waiting for the response is idle time: Envoy's stream
        // idle timeout bounds it when it is shorter than the route's (no route timeout is
        // Istio's default).
        let idle = waypoint_hbone::timeouts::Timeouts::enabled(shared.timeouts.stream_idle)
            .filter(|i| replayable && limit.is_none_or(|l| *i < l));
        let _active = shared.active.start(target.addr);
        let send = shared.upstreams.send(target, wire, up_req);
        let result = match (idle, limit) {
            (Some(i), _) => match tokio::time::timeout(i, send).await {
                Ok(r) => r,
                Err(_) => {
                    info!(target = %target, attempt, "stream idle timeout waiting for the upstream");
                    // Envoy's reply when the stream idle timer fires before response headers.
                    let reply = LocalReply {
                        status: 408,
                        body: "stream timeout".to_string(),
                        headers: vec![],
                    };
                    return (
                        local_response(&reply),
                        Outcome {
                            status: 408,
                            flags: "SI",
                            target: Some(target.clone()),
                            attempts: attempt,
                        },
                    );
                }
            },
            (None, Some(l)) => match tokio::time::timeout(l, send).await {
                Ok(r) => r,
                Err(_) => Err(UpstreamError::Timeout(target.to_string())),
            },
            (None, None) => send.await,
        };
        let can_retry =
            attempt < max_attempts && replayable && deadline.is_none_or(|d| Instant::now() < d);
        record(
            target.addr,
            match &result {
                Ok(r) => AttemptResult::Status(r.status().as_u16()),
                Err(_) => AttemptResult::LocalFailure,
            },
        );
        match result {
            Ok(resp) => {
                if let (true, Some(policy)) = (can_retry, fp.retries.as_ref()) {
                    if retry_status(policy, resp.status(), resp.headers()) {
                        debug!(target = %target, status = %resp.status(), attempt, "retrying after status");
                        drop(resp);
                        tokio::time::sleep(backoff(policy, attempt, rng_unit())).await;
                        continue;
                    }
                }
                let (mut rp, rbody) = resp.into_parts();
                strip_hop_by_hop(&mut rp.headers);
                for ops in &fp.response_headers {
                    apply_ops(&mut rp.headers, ops);
                }
                if let CorsAction::Decorate(h) = &cors {
                    cors::decorate(&mut rp.headers, h);
                }
                let status = rp.status.as_u16();
                let mut body = rbody.map_err(|e| Box::new(e) as BoxError).boxed();
                if let Some(d) = deadline {
                    body = DeadlineBody::new(body, d).boxed();
                }
                let resp = Response::from_parts(rp, body);
                return (
                    resp,
                    Outcome {
                        status,
                        flags: "-",
                        target: Some(target.clone()),
                        attempts: attempt,
                    },
                );
            }
            Err(e) => {
                if let (true, Some(policy)) = (can_retry, fp.retries.as_ref()) {
                    if retry_error(policy, &e) {
                        debug!(target = %target, error = %e, attempt, "retrying after failure");
                        tokio::time::sleep(backoff(policy, attempt, rng_unit())).await;
                        continue;
                    }
                }
                info!(target = %target, error = %e, attempt, "upstream failed");
                let (status, body) = match &e {
                    // Envoy's local replies for these failures.
                    UpstreamError::Timeout(_) => (504, "upstream request timeout".to_string()),
                    UpstreamError::Connect { .. } => (
                        503,
                        "upstream connect error or disconnect/reset before headers. reset reason: connection failure".to_string(),
                    ),
                    UpstreamError::Reset { .. } => (
                        503,
                        "upstream connect error or disconnect/reset before headers. reset reason: connection termination".to_string(),
                    ),
                };
                let reply = LocalReply {
                    status,
                    body,
                    headers: vec![],
                };
                return (
                    local_response(&reply),
                    Outcome {
                        status,
                        flags: e.response_flag(),
                        target: Some(target.clone()),
                        attempts: attempt,
                    },
                );
            }
        }
    }
}

/// An upgrade request: header mutations and rewrites apply, then one attempt on the first
/// target (upgrades are not retried, as in Envoy).
async fn forward_upgrade(
    shared: &Shared,
    fp: &ForwardPlan,
    mut req: Request<InBody>,
    authority: &str,
    path: &str,
) -> (Response<ProxyBody>, Outcome) {
    for ops in &fp.request_headers {
        apply_ops(req.headers_mut(), ops);
    }
    let authority = fp
        .authority
        .clone()
        .unwrap_or_else(|| authority.to_string());
    let path = fp.path.clone().unwrap_or_else(|| path.to_string());
    let mut targets = fp.targets.clone();
    if fp.outlier.is_some() {
        shared.outliers.order(&mut targets);
    }
    let target = targets[0].clone();
    let idle = waypoint_hbone::timeouts::Timeouts::enabled(shared.timeouts.stream_idle);
    match upgrade::forward(&shared.upstreams, &target, req, &authority, &path, idle).await {
        Ok(mut resp) => {
            for ops in &fp.response_headers {
                apply_ops(resp.headers_mut(), ops);
            }
            let status = resp.status().as_u16();
            (
                resp,
                Outcome {
                    status,
                    flags: "-",
                    target: Some(target),
                    attempts: 1,
                },
            )
        }
        Err(e) => {
            info!(target = %target, error = %e, "upgrade: upstream failed");
            let reply = LocalReply {
                status: 503,
                body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure".into(),
                headers: vec![],
            };
            (
                local_response(&reply),
                Outcome {
                    status: 503,
                    flags: e.response_flag(),
                    target: Some(target),
                    attempts: 1,
                },
            )
        }
    }
}

fn rng_unit() -> f64 {
    (rng().next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// `host[:port]` → `host-shadow[:port]`, as Envoy names shadow traffic.
pub fn shadow_authority(authority: &str) -> String {
    match waypoint_core::request::split_host_port(authority) {
        (host, Some(port)) if !host.contains(':') => format!("{host}-shadow:{port}"),
        _ => format!("{authority}-shadow"),
    }
}

fn record(
    shared: &Shared,
    ctx: &TunnelCtx,
    plan: &Plan,
    outcome: &Outcome,
    grpc: bool,
    elapsed: Duration,
) {
    let identity = outcome
        .target
        .as_ref()
        .and_then(|t| t.hbone.as_ref())
        .and_then(|h| h.expected.first());
    let facts = RequestFacts {
        baggage: ctx.baggage.as_deref().unwrap_or(""),
        peer_namespace: ctx.peer_identity.as_ref().map(|i| i.namespace.as_str()),
        principal: ctx.principal.as_deref(),
        service: plan
            .service
            .as_ref()
            .map_or(ctx.destination.as_str(), |s| s.hostname.as_str()),
        has_service: plan.service.is_some(),
        service_id: plan
            .service
            .as_ref()
            .map(|s| (s.name.as_str(), s.namespace.as_str())),
        destination_identity: identity.map(|i| {
            (
                i.trust_domain.as_str(),
                i.namespace.as_str(),
                i.service_account.as_str(),
            )
        }),
        status: outcome.status,
        flags: outcome.flags,
        grpc,
    };
    let millis = elapsed.as_secs_f64() * 1000.0;
    shared
        .request_metrics
        .record(&shared.metrics, facts, millis, || {
            request_labels(ctx, plan, outcome, grpc)
        });
}

/// Istio's standard request labels (`reporter="waypoint"`), built on a metrics cache miss.
fn request_labels(ctx: &TunnelCtx, plan: &Plan, outcome: &Outcome, grpc: bool) -> RequestLabels {
    let unknown = || "unknown".to_string();
    let bag = ctx.baggage.as_deref().unwrap_or("");
    let bag_get = |k: &str| baggage_get(bag, k).map(str::to_string);
    let src_workload = bag_get("k8s.deployment.name")
        .or_else(|| bag_get("k8s.pod.name"))
        .unwrap_or_else(unknown);
    let src_app = bag_get("service.name").unwrap_or_else(unknown);
    let src_version = bag_get("service.version").unwrap_or_else(unknown);
    let (dst_service, dst_name, dst_ns) = match &plan.service {
        Some(s) => (s.hostname.clone(), s.name.clone(), s.namespace.clone()),
        None => (ctx.destination.clone(), unknown(), unknown()),
    };
    let dst_principal = outcome
        .target
        .as_ref()
        .and_then(|t| t.hbone.as_ref())
        .and_then(|h| h.expected.first())
        .map(|i| i.to_string())
        .unwrap_or_else(unknown);
    let labels = RequestLabels {
        reporter: "waypoint".into(),
        source_workload: src_workload.clone(),
        source_canonical_service: src_app.clone(),
        source_canonical_revision: src_version.clone(),
        source_workload_namespace: ctx
            .peer_identity
            .as_ref()
            .map(|i| i.namespace.clone())
            .unwrap_or_else(unknown),
        source_principal: ctx.principal.clone().unwrap_or_else(unknown),
        source_app: src_app,
        source_version: src_version,
        source_cluster: bag_get("k8s.cluster.name").unwrap_or_else(unknown),
        destination_workload: unknown(),
        destination_workload_namespace: dst_ns.clone(),
        destination_principal: dst_principal,
        destination_app: dst_name.clone(),
        destination_version: unknown(),
        destination_service: dst_service,
        destination_service_name: dst_name.clone(),
        destination_service_namespace: dst_ns,
        destination_canonical_service: dst_name,
        destination_canonical_revision: "latest".into(),
        destination_cluster: unknown(),
        request_protocol: if grpc { "grpc" } else { "http" }.into(),
        response_code: outcome.status.to_string(),
        grpc_response_status: String::new(),
        response_flags: outcome.flags.into(),
        connection_security_policy: "mutual_tls".into(),
    };
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_names() {
        assert_eq!(shadow_authority("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(shadow_authority("reviews"), "reviews-shadow");
    }

    #[test]
    fn local_reply_headers() {
        let r = local_response(&LocalReply {
            status: 302,
            body: String::new(),
            headers: vec![("Location".into(), "http://x/".into())],
        });
        assert_eq!(r.status(), 302);
        assert_eq!(
            r.headers().get("location").map(|v| v.as_bytes()),
            Some(&b"http://x/"[..])
        );
        assert!(r.headers().get("content-type").is_none());
        let r = local_response(&LocalReply {
            status: 403,
            body: "RBAC: access denied".into(),
            headers: vec![],
        });
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("content-type").is_some());
    }
}
