//! Responses the waypoint writes itself and how each request ended: a policy's local reply, an
//! ext_authz denial, a CORS preflight, and the one mapping of every proxy error to the status,
//! Envoy response flag and body the client gets.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::policy::plan::{LocalReply, PlanAction};
use crate::telemetry::response_flag::ResponseFlag;
use crate::upstream::{ProxyBody, Target, UpstreamError};

/// How a request ended, for the access log and metrics.
#[derive(Debug)]
pub struct Outcome {
    pub status: u16,
    pub flag: ResponseFlag,
    /// The upstream the last attempt went to.
    pub target: Option<Target>,
    pub attempts: u32,
}

/// Why the proxy itself failed a request (as opposed to a policy's reply).
#[derive(Debug)]
pub enum ProxyError {
    /// The request's `CONNECT` or `Upgrade` type is not allowed (Envoy's `upgrade_failed`).
    UpgradeRefused,
    /// Envoy `request_timeout`: the request was not received (or answered) in time.
    RequestTimeout,
    /// The downstream request body failed while it was buffered for retries or mirrors.
    DownstreamBody,
    /// The (rewritten) authority and path make no valid upstream request.
    BadRequestTarget { authority: String, path: String },
    /// The stream idle timeout fired before the upstream's response headers.
    StreamIdleTimeout,
    /// Outlier detection ejected every endpoint of the cluster (Envoy `UH`).
    NoHealthyUpstream,
    /// The upstream exchange failed (connect, reset or timeout).
    Upstream(UpstreamError),
    /// The upstream of an upgrade (WebSocket) request failed.
    UpgradeUpstream(UpstreamError),
}

/// Envoy's local reply for an upstream that failed before its response headers.
const CONNECT_FAILURE: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
const CONNECT_TERMINATION: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";
/// Envoy's reply when a cluster's circuit breaker is full (router reset reason `overflow`).
const OVERFLOW: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";

impl ProxyError {
    /// Status, Envoy response flag and body of the reply, as Envoy sends them.
    pub fn reply(&self) -> (u16, ResponseFlag, String) {
        match self {
            // Envoy sets no response flag for these (details `upgrade_failed`,
            // `request_overall_timeout`); the host records no metric for them either.
            ProxyError::UpgradeRefused => (403, ResponseFlag::None, String::new()),
            ProxyError::RequestTimeout => (408, ResponseFlag::None, "request timeout".into()),
            ProxyError::DownstreamBody => (
                400,
                ResponseFlag::DownstreamProtocolError,
                "downstream body error".into(),
            ),
            ProxyError::BadRequestTarget { authority, path } => (
                400,
                ResponseFlag::DownstreamProtocolError,
                format!("bad request target {authority}{path}"),
            ),
            ProxyError::StreamIdleTimeout => (
                408,
                ResponseFlag::StreamIdleTimeout,
                "stream timeout".into(),
            ),
            ProxyError::NoHealthyUpstream => (
                503,
                ResponseFlag::NoHealthyUpstream,
                "no healthy upstream".into(),
            ),
            ProxyError::Upstream(e) => match e {
                UpstreamError::Timeout(_) => (
                    504,
                    ResponseFlag::UpstreamRequestTimeout,
                    "upstream request timeout".into(),
                ),
                UpstreamError::Connect { .. } => (
                    503,
                    ResponseFlag::UpstreamConnectionFailure,
                    CONNECT_FAILURE.into(),
                ),
                UpstreamError::Reset { .. } => (
                    503,
                    ResponseFlag::UpstreamConnectionTermination,
                    CONNECT_TERMINATION.into(),
                ),
                UpstreamError::Overflow { .. } => {
                    (503, ResponseFlag::UpstreamOverflow, OVERFLOW.into())
                }
            },
            // An upgrade's failure is always answered as a connection failure; the flag
            // still says what happened.
            ProxyError::UpgradeUpstream(e) => (503, upstream_flag(e), CONNECT_FAILURE.into()),
        }
    }
}

fn upstream_flag(e: &UpstreamError) -> ResponseFlag {
    match e {
        UpstreamError::Connect { .. } => ResponseFlag::UpstreamConnectionFailure,
        UpstreamError::Reset { .. } => ResponseFlag::UpstreamConnectionTermination,
        UpstreamError::Timeout(_) => ResponseFlag::UpstreamRequestTimeout,
        UpstreamError::Overflow { .. } => ResponseFlag::UpstreamOverflow,
    }
}

/// The response flag of a policy's local reply, by the decision's action.
pub fn policy_flag(action: PlanAction) -> ResponseFlag {
    match action {
        PlanAction::FaultAbort => ResponseFlag::FaultInjected,
        PlanAction::NotFound => ResponseFlag::NoRouteFound,
        PlanAction::Route
        | PlanAction::Deny
        | PlanAction::Redirect
        | PlanAction::DirectResponse
        | PlanAction::Passthrough => ResponseFlag::None,
    }
}

/// A complete body.
pub fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into()).map_err(|e| match e {}).boxed()
}

/// Marks a response the waypoint wrote itself, keeping its body text for [`grpc_form`].
#[derive(Debug, Clone)]
pub struct Written {
    body: String,
}

/// A response the waypoint wrote itself, in the form Envoy gives a gRPC request (the core's
/// `local_reply::to_grpc`: HTTP 200, `grpc-status`, the body as `grpc-message`). The core's
/// own replies come converted already (the conversion is idempotent); this covers the host's
/// (upstream failures, timeouts, ext_authz denials). Other responses pass unchanged.
pub fn grpc_form(resp: Response<ProxyBody>) -> Response<ProxyBody> {
    let Some(written) = resp.extensions().get::<Written>().cloned() else {
        return resp;
    };
    let mut l = waypoint_core::decision::LocalResponse {
        status: resp.status().as_u16(),
        body: written.body,
        headers: resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        grpc_status: None,
    };
    waypoint_core::local_reply::to_grpc(&mut l);
    local_response(&LocalReply {
        status: l.status,
        body: l.body,
        headers: l.headers,
    })
}

/// A local reply as a response (`text/plain` when it has a body and no content type).
pub fn local_response(reply: &LocalReply) -> Response<ProxyBody> {
    let mut resp = Response::new(full(reply.body.clone()));
    resp.extensions_mut().insert(Written {
        body: reply.body.clone(),
    });
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

/// The reply for a proxy error, and its outcome (`target`: the upstream it happened with).
pub fn error(
    e: ProxyError,
    target: Option<Target>,
    attempts: u32,
) -> (Response<ProxyBody>, Outcome) {
    let (status, flag, body) = e.reply();
    // Envoy's router marks a reply it sends for a full circuit breaker.
    let headers = match flag {
        ResponseFlag::UpstreamOverflow => vec![("x-envoy-overloaded".into(), "true".into())],
        _ => Vec::new(),
    };
    let reply = LocalReply {
        status,
        body,
        headers,
    };
    (
        local_response(&reply),
        Outcome {
            status,
            flag,
            target,
            attempts,
        },
    )
}

/// A policy's own reply (deny, redirect, direct response, fault abort, no route), flagged by
/// the decision's action.
pub fn policy(reply: &LocalReply, action: PlanAction) -> (Response<ProxyBody>, Outcome) {
    local(reply, policy_flag(action))
}

/// The ext_authz provider's denial, as the client gets it.
pub fn ext_authz_denied(reply: &LocalReply) -> (Response<ProxyBody>, Outcome) {
    local(reply, ResponseFlag::UnauthorizedExternalService)
}

/// A request over a local rate limit (Envoy's `local_rate_limited`, flag `RL`).
pub fn rate_limited(reply: &LocalReply) -> (Response<ProxyBody>, Outcome) {
    local(reply, ResponseFlag::RateLimited)
}

/// A request the rate limit service failed for, denied (`failure_mode_deny`, flag `RLSE`).
pub fn rate_limit_service_error(reply: &LocalReply) -> (Response<ProxyBody>, Outcome) {
    local(reply, ResponseFlag::RateLimitServiceError)
}

/// An allowed CORS preflight, answered by the waypoint (Envoy's CORS filter).
pub fn preflight(headers: Vec<(&'static str, String)>) -> (Response<ProxyBody>, Outcome) {
    let reply = LocalReply {
        status: 200,
        body: String::new(),
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    };
    local(&reply, ResponseFlag::None)
}

fn local(reply: &LocalReply, flag: ResponseFlag) -> (Response<ProxyBody>, Outcome) {
    (
        local_response(reply),
        Outcome {
            status: reply.status,
            flag,
            target: None,
            attempts: 0,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn errors_map_to_envoys_replies() {
        let t = || "10.0.0.1:80".to_string();
        for (e, status, flag, body) in [
            (
                ProxyError::DownstreamBody,
                400,
                "DPE",
                "downstream body error",
            ),
            (ProxyError::StreamIdleTimeout, 408, "SI", "stream timeout"),
            (
                ProxyError::Upstream(UpstreamError::Timeout(t())),
                504,
                "UT",
                "upstream request timeout",
            ),
            (
                ProxyError::Upstream(UpstreamError::Connect {
                    target: t(),
                    message: String::new(),
                }),
                503,
                "UF",
                CONNECT_FAILURE,
            ),
            (
                ProxyError::Upstream(UpstreamError::Reset {
                    target: t(),
                    message: String::new(),
                }),
                503,
                "UC",
                CONNECT_TERMINATION,
            ),
            (
                ProxyError::UpgradeUpstream(UpstreamError::Reset {
                    target: t(),
                    message: String::new(),
                }),
                503,
                "UC",
                CONNECT_FAILURE,
            ),
            (
                ProxyError::Upstream(UpstreamError::Overflow {
                    cluster: "outbound|80||a".into(),
                    what: "pending requests",
                }),
                503,
                "UO",
                OVERFLOW,
            ),
            (
                ProxyError::NoHealthyUpstream,
                503,
                "UH",
                "no healthy upstream",
            ),
        ] {
            let (s, f, b) = e.reply();
            assert_eq!((s, f.as_str(), b.as_str()), (status, flag, body), "{e:?}");
        }
        assert_eq!(policy_flag(PlanAction::Deny).as_str(), "-");
        assert_eq!(policy_flag(PlanAction::FaultAbort).as_str(), "FI");
        assert_eq!(policy_flag(PlanAction::NotFound).as_str(), "NR");
    }
}
