//! Retries as Envoy's router makes them: the attempt loop over the plan's endpoints, which
//! responses and failures are retriable under `retry_on` (x-envoy-retry-on / Istio `retryOn`),
//! and the backoff between attempts.

use std::time::Duration;

use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;
use tracing::{debug, info};
use waypoint_core::route::RetryPolicy;

use crate::http::attempt::{self, AttemptError};
use crate::http::body::ReqBody;
use crate::http::deadline::{stream_idle, RequestDeadline};
use crate::http::random;
use crate::http::reply::ProxyError;
use crate::http::upstream_request::UpstreamRequest;
use crate::policy::plan::ForwardPlan;
use crate::telemetry::response_flag::ResponseFlag;
use crate::upstream::circuit::{Limits, Resource, Slot};
use crate::upstream::outlier::AttemptResult;
use crate::upstream::{Target, UpstreamError};
use crate::Shared;

/// The upstream's answer, from the last attempt.
#[derive(Debug)]
pub struct Answered {
    pub response: Response<Incoming>,
    pub target: Target,
    pub attempts: u32,
    /// `UO` when a retry was due but the cluster's `max_retries` were in flight, else none.
    pub flag: ResponseFlag,
}

/// Why the attempts ended without an answer to forward.
#[derive(Debug)]
pub struct Failed {
    pub error: ProxyError,
    /// The upstream of the last attempt, when one was made.
    pub target: Option<Target>,
    pub attempts: u32,
}

/// Send `up` with `body` to the plan's endpoints: first the load balancer's pick, then, while
/// the retry policy allows and the body is replayable, the next ones in order.
pub async fn attempts(
    shared: &Shared,
    fp: &ForwardPlan,
    up: &UpstreamRequest,
    mut body: ReqBody,
    deadline: RequestDeadline,
) -> Result<Answered, Failed> {
    let (targets, peers) = attempt::targets(shared, fp);
    // Istio turns Envoy's panic threshold off with outlier detection (minHealthPercent 0):
    // with every endpoint ejected the cluster has no healthy host.
    if fp.outlier.is_some() && targets.iter().all(|t| shared.outliers.ejected(t.addr)) {
        return Err(Failed {
            error: ProxyError::NoHealthyUpstream,
            target: None,
            attempts: 0,
        });
    }
    let record = |addr, result| {
        if let Some(od) = &fp.outlier {
            shared.outliers.record(od, addr, &peers, result);
        }
    };
    let max_attempts = 1 + fp.retries.as_ref().map_or(0, |r| r.attempts);
    // The retry in flight holds one of the cluster's `max_retries`.
    let mut retry_slot = None;
    let idle_timeout = waypoint_hbone::timeouts::Timeouts::enabled(shared.timeouts.stream_idle);
    let mut attempt: u32 = 0;
    loop {
        let target = &targets[attempt as usize % targets.len()];
        attempt += 1;
        let replayable = body.is_replayable();
        let Some(req) = up.build(body.for_attempt()) else {
            let error = ProxyError::BadRequestTarget {
                authority: up.authority.clone(),
                path: up.path.clone(),
            };
            return Err(Failed {
                error,
                target: None,
                attempts: attempt,
            });
        };
        let limit = deadline.attempt_limit(fp.per_try_timeout);
        let idle = stream_idle(idle_timeout, replayable, limit);
        let _active = shared.active.start(target.addr);
        let result = match attempt::send(shared, fp, target, up.wire, req, limit, idle).await {
            Ok(r) => Ok(r),
            Err(AttemptError::Upstream(e)) => Err(e),
            Err(AttemptError::StreamIdle) => {
                info!(target = %target, attempt, "stream idle timeout waiting for the upstream");
                return Err(Failed {
                    error: ProxyError::StreamIdleTimeout,
                    target: Some(target.clone()),
                    attempts: attempt,
                });
            }
        };
        let can_retry = attempt < max_attempts && replayable && !deadline.passed();
        // An overflow never reached the endpoint: nothing to hold against it.
        match &result {
            Ok(r) => record(target.addr, AttemptResult::Status(r.status().as_u16())),
            Err(UpstreamError::Overflow { .. }) => {}
            Err(_) => record(target.addr, AttemptResult::LocalFailure),
        }
        let policy = fp.retries.as_ref().filter(|_| can_retry);
        match result {
            Ok(resp) => {
                let mut flag = ResponseFlag::None;
                if let Some(policy) = policy {
                    if retry_status(policy, resp.status(), resp.headers()) {
                        if retry_budget(shared, fp, &mut retry_slot) {
                            debug!(target = %target, status = %resp.status(), attempt, "retrying after status");
                            drop(resp);
                            tokio::time::sleep(backoff(policy, attempt, random::unit())).await;
                            continue;
                        }
                        // Envoy's retry overflow: this response goes out, flagged `UO`.
                        flag = ResponseFlag::UpstreamOverflow;
                    }
                }
                return Ok(Answered {
                    response: resp,
                    target: target.clone(),
                    attempts: attempt,
                    flag,
                });
            }
            Err(e) => {
                if let Some(policy) = policy {
                    if retry_error(policy, &e) && retry_budget(shared, fp, &mut retry_slot) {
                        debug!(target = %target, error = %e, attempt, "retrying after failure");
                        tokio::time::sleep(backoff(policy, attempt, random::unit())).await;
                        continue;
                    }
                }
                info!(target = %target, error = %e, attempt, "upstream failed");
                return Err(Failed {
                    error: ProxyError::Upstream(e),
                    target: Some(target.clone()),
                    attempts: attempt,
                });
            }
        }
    }
}

/// Take one of the plan's cluster `max_retries` for the next retry (replacing the previous
/// retry's); `false` when they are all in flight (Envoy's retry overflow: no retry).
fn retry_budget(shared: &Shared, fp: &ForwardPlan, slot: &mut Option<Slot>) -> bool {
    let Some(pool) = &fp.pool else {
        return true;
    };
    *slot = None;
    let max = Limits::of(&pool.settings).max_retries;
    let state = shared.upstreams.circuits().state(&pool.cluster);
    *slot = state.try_take(Resource::Retry, max);
    if slot.is_none() {
        info!(cluster = %pool.cluster, "retry not made: the cluster's max_retries are in flight (overflow)");
    }
    slot.is_some()
}

/// Typed, so the look-up on every retriable response does not parse the name.
static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// Envoy's default base interval (25 ms); the cap is ten times the base.
const DEFAULT_BACKOFF: Duration = Duration::from_millis(25);

fn has(policy: &RetryPolicy, cond: &str) -> bool {
    policy.retry_on.iter().any(|c| c.trim() == cond)
}

/// Is a response with `status` (and gRPC status in `headers`) worth another attempt?
pub fn retry_status(policy: &RetryPolicy, status: StatusCode, headers: &HeaderMap) -> bool {
    let code = status.as_u16();
    // The status test first: it is one comparison, the condition a scan of `retry_on`, and
    // this runs on every response of a route with retries (Istio's default has them).
    if status.is_server_error() && has(policy, "5xx") {
        return true;
    }
    if matches!(code, 502..=504) && has(policy, "gateway-error") {
        return true;
    }
    if code == 409 && has(policy, "retriable-4xx") {
        return true;
    }
    if policy.codes.contains(&code) && has(policy, "retriable-status-codes") {
        return true;
    }
    // gRPC conditions read grpc-status from the response headers (trailers-only replies).
    let grpc = headers
        .get(&GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    if let Some(g) = grpc {
        let cond = match g {
            1 => "cancelled",
            4 => "deadline-exceeded",
            8 => "resource-exhausted",
            13 => "internal",
            14 => "unavailable",
            _ => "",
        };
        if !cond.is_empty() && has(policy, cond) {
            return true;
        }
    }
    false
}

/// Is a failure before any response worth another attempt?
pub fn retry_error(policy: &RetryPolicy, err: &UpstreamError) -> bool {
    match err {
        UpstreamError::Connect { .. } => {
            has(policy, "connect-failure")
                || has(policy, "5xx")
                || has(policy, "gateway-error")
                || has(policy, "reset")
        }
        UpstreamError::Reset { .. } => {
            has(policy, "reset")
                || has(policy, "5xx")
                || has(policy, "gateway-error")
                || has(policy, "refused-stream")
        }
        // A per-try timeout is a "read timeout" to Envoy: 5xx, gateway-error and reset retry it.
        UpstreamError::Timeout(_) => {
            has(policy, "5xx") || has(policy, "gateway-error") || has(policy, "reset")
        }
        // Envoy never retries an overflow.
        UpstreamError::Overflow { .. } => false,
    }
}

/// Backoff before retry number `retry` (1-based): exponential from the base, capped at ten
/// times the base, with full jitter from `jitter` in 0..1.
pub fn backoff(policy: &RetryPolicy, retry: u32, jitter: f64) -> Duration {
    let base = policy.backoff.unwrap_or(DEFAULT_BACKOFF);
    let exp = base.saturating_mul(1u32 << retry.saturating_sub(1).min(10));
    let capped = exp.min(base.saturating_mul(10));
    capped.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on: &[&str], codes: &[u16]) -> RetryPolicy {
        RetryPolicy {
            attempts: 2,
            per_try_timeout: None,
            retry_on: on.iter().map(|s| s.to_string()).collect(),
            codes: codes.to_vec(),
            backoff: None,
        }
    }

    #[test]
    fn status_conditions() {
        let empty = HeaderMap::new();
        for (on, codes, status, want) in [
            (&["5xx"][..], &[][..], 503, true),
            (&["5xx"], &[], 404, false),
            (&["gateway-error"], &[], 502, true),
            (&["gateway-error"], &[], 500, false),
            (&["retriable-status-codes"], &[418], 418, true),
            (&["retriable-status-codes"], &[418], 503, false),
            (&["connect-failure"], &[], 503, false),
            (&["retriable-4xx"], &[], 409, true),
        ] {
            let p = policy(on, codes);
            let s = StatusCode::from_u16(status).expect("status");
            assert_eq!(retry_status(&p, s, &empty), want, "{on:?} {status}");
        }
        let mut grpc = HeaderMap::new();
        grpc.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert!(retry_status(
            &policy(&["unavailable"], &[]),
            StatusCode::OK,
            &grpc
        ));
    }

    #[test]
    fn error_conditions() {
        let connect = UpstreamError::Connect {
            target: "t".into(),
            message: "refused".into(),
        };
        let timeout = UpstreamError::Timeout("t".into());
        assert!(retry_error(&policy(&["connect-failure"], &[]), &connect));
        assert!(!retry_error(
            &policy(&["retriable-status-codes"], &[503]),
            &connect
        ));
        assert!(retry_error(&policy(&["5xx"], &[]), &timeout));
        assert!(!retry_error(&policy(&["connect-failure"], &[]), &timeout));
    }

    #[test]
    fn backoff_is_bounded() {
        let p = policy(&[], &[]);
        assert_eq!(backoff(&p, 1, 1.0), Duration::from_millis(25));
        assert_eq!(backoff(&p, 2, 1.0), Duration::from_millis(50));
        assert_eq!(backoff(&p, 9, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(&p, 3, 0.0), Duration::ZERO);
    }
}
