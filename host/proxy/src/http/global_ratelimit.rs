//! The global rate limit stage (Envoy's `envoy.filters.http.ratelimit`, which Istio's task
//! inserts just before the router): the core computes the descriptors, the service decides.
//!
//! Over the limit: the configured status (429), `x-envoy-ratelimited: true`, the service's
//! headers, flag `RL`. The service failing or slower than `timeout`: allowed, unless
//! `failure_mode_deny` (then `status_on_error`, 500, flag `RLSE`). Counted under the route's
//! cluster as Envoy does (`cluster.<name>.ratelimit.*`).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue, Response};
use tracing::warn;
use waypoint_core::ratelimit::{GlobalCall, RequestView, RlsTarget, Target as LimitTarget};
use waypoint_core::route::RuleId;

use crate::connect::context::{ConnectContext, Resolution};
use crate::http::head::RequestHead;
use crate::http::reply::{self, Outcome};
use crate::http::rls_client::{self, RlsAnswer, RlsError};
use crate::policy::plan::{ForwardPlan, LocalReply};
use crate::policy::target::target_for;
use crate::telemetry::global_ratelimit_stats::RlsResult;
use crate::upstream::{ProxyBody, Target};
use crate::Shared;

/// Round-robin cursor over a service's endpoints.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// What the stage decided.
#[derive(Debug, Default)]
pub struct GlobalCheck {
    /// Answer with this instead of forwarding.
    pub denied: Option<(Response<ProxyBody>, Outcome)>,
    /// Headers the service (and `x-ratelimit-*`) add to the upstream's response.
    pub response_headers: Vec<(String, String)>,
}

/// Ask every global filter's service about the request (in the request's config generation);
/// the service's request headers are added to `headers`.
#[allow(clippy::too_many_arguments)]
pub async fn check(
    shared: &Shared,
    ctx: &ConnectContext,
    res: &Resolution,
    rule: Option<&RuleId>,
    fp: &ForwardPlan,
    head: &RequestHead,
    headers: &mut HeaderMap,
) -> GlobalCheck {
    let mut out = GlobalCheck::default();
    let snapshot = &res.config.policy.snapshot;
    if snapshot.rate_limits.global.is_empty() {
        return out;
    }
    let (host, port) = crate::http::ratelimit::service_of(ctx, res);
    let calls: Vec<(GlobalCall<'_>, Option<Target>)> = {
        let view_headers: Vec<(&str, &str)> = [
            (":path", head.path.as_str()),
            (":authority", head.authority.as_str()),
            (":method", head.method.as_str()),
        ]
        .into_iter()
        .chain(
            headers
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))),
        )
        .collect();
        let view = RequestView {
            headers: &view_headers,
            remote_address: ctx.peer.source_ip,
            destination_cluster: fp.cluster.as_deref(),
        };
        let t = LimitTarget { host, port, rule };
        snapshot
            .rate_limits
            .global_calls(&t, &view)
            .into_iter()
            .map(|c| {
                let target = c.filter.target.as_ref().and_then(|t| static_target(res, t));
                (c, target)
            })
            .collect()
    };
    let stats = &shared.metrics.global_ratelimit;
    let cluster = fp.cluster.as_deref().unwrap_or("");
    for (call, target) in calls {
        let cfg = &call.filter.config;
        let request = rls_client::build_request(&cfg.domain, &call.descriptors);
        let run = async {
            let target = match target {
                Some(t) => t,
                None => dns_target(call.filter.target.as_ref()).await?,
            };
            rls_client::should_rate_limit(&shared.upstreams, &target, &cfg.cluster, &request).await
        };
        let result = match tokio::time::timeout(cfg.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(RlsError::Timeout),
        };
        match result {
            Ok(a) if a.over_limit => {
                stats.record(cluster, RlsResult::OverLimit);
                out.denied = Some(limited(cfg, &a, head));
                return out;
            }
            Ok(a) => {
                stats.record(cluster, RlsResult::Ok);
                add_request_headers(headers, &a.request_headers);
                out.response_headers
                    .extend(a.response_headers.iter().cloned());
                if cfg.x_ratelimit_headers {
                    out.response_headers.extend(x_ratelimit(&a));
                }
            }
            Err(e) => {
                stats.record(cluster, RlsResult::Error);
                warn!(cluster = %cfg.cluster, error = %e, deny = cfg.failure_mode_deny, "rate limit service call failed");
                if cfg.failure_mode_deny {
                    let reply = LocalReply {
                        status: cfg.status_on_error,
                        body: String::new(),
                        headers: Vec::new(),
                    };
                    out.denied = Some(reply::rate_limit_service_error(&reply));
                    return out;
                }
                stats.record(cluster, RlsResult::FailureModeAllowed);
            }
        }
    }
    out
}

/// The limited response: status, `x-envoy-ratelimited`, the service's headers and body, and
/// `x-ratelimit-*` when the config asks.
fn limited(
    cfg: &waypoint_core::ratelimit::GlobalRateLimit,
    a: &RlsAnswer,
    head: &RequestHead,
) -> (Response<ProxyBody>, Outcome) {
    let mut reply = LocalReply {
        status: cfg.rate_limited_status,
        body: a.body.clone(),
        headers: a.response_headers.clone(),
    };
    if !cfg.disable_x_envoy_ratelimited_header {
        reply
            .headers
            .push(("x-envoy-ratelimited".into(), "true".into()));
    }
    if cfg.x_ratelimit_headers {
        reply.headers.extend(x_ratelimit(a));
    }
    // gRPC: 429 maps to UNAVAILABLE, or RESOURCE_EXHAUSTED when the config asks.
    if head.grpc && cfg.grpc_resource_exhausted {
        reply.headers.push(("grpc-status".into(), "8".into()));
    }
    reply::rate_limited(&reply)
}

fn x_ratelimit(a: &RlsAnswer) -> Vec<(String, String)> {
    match &a.x_ratelimit {
        Some([limit, remaining, reset]) => vec![
            ("x-ratelimit-limit".into(), limit.clone()),
            ("x-ratelimit-remaining".into(), remaining.clone()),
            ("x-ratelimit-reset".into(), reset.clone()),
        ],
        None => Vec::new(),
    }
}

fn add_request_headers(headers: &mut HeaderMap, add: &[(String, String)]) {
    for (k, v) in add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.insert(n, v);
        }
    }
}

/// The upstream target of a service known without DNS: a registry service's endpoint (round
/// robin), or a CLUSTER patch's IP endpoint. `None`: a DNS name to resolve.
fn static_target(res: &Resolution, t: &RlsTarget) -> Option<Target> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed) as usize;
    match t {
        RlsTarget::Service { index, port } => {
            let svc = res.config.policy.snapshot.registry.services.get(*index)?;
            let ep = svc.endpoints.get(n % svc.endpoints.len().max(1))?;
            Some(target_for(Some(svc), ep, *port, &res.config.policy.options))
        }
        RlsTarget::Endpoints(list) => {
            let (addr, port) = list.get(n % list.len().max(1))?;
            let ip: IpAddr = addr.parse().ok()?;
            Some(Target {
                addr: SocketAddr::new(ip, *port),
                hbone: None,
                sidecar: None,
            })
        }
    }
}

/// A CLUSTER patch's DNS endpoint, resolved (Envoy's STRICT_DNS); every other case has no
/// endpoint.
async fn dns_target(t: Option<&RlsTarget>) -> Result<Target, RlsError> {
    let Some(RlsTarget::Endpoints(list)) = t else {
        return Err(RlsError::NoEndpoint);
    };
    let (host, port) = list.first().ok_or(RlsError::NoEndpoint)?;
    let addr = tokio::net::lookup_host((host.as_str(), *port))
        .await
        .map_err(|e| RlsError::Transport(format!("resolve {host}: {e}")))?
        .next()
        .ok_or(RlsError::NoEndpoint)?;
    Ok(Target {
        addr,
        hbone: None,
        sidecar: None,
    })
}

/// Add the service's response headers to the upstream's response.
pub fn decorate(headers: &mut HeaderMap, add: &[(String, String)]) {
    for (k, v) in add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.insert(n, v);
        }
    }
}
