//! The local rate limit stage (Envoy's `envoy.filters.http.local_ratelimit`, which Istio's
//! EnvoyFilter inserts before everything else): buckets kept here, decided by the core.
//!
//! Buckets live in [`Limiter`] (per waypoint, per route config, per descriptor; per tunnel
//! with `local_rate_limit_per_downstream_connection`), keyed with their shape so a changed
//! config starts a fresh bucket. A limited request gets the config's status (429), body
//! `local_rate_limited`, the config's `response_headers_to_add`, response flag `RL`; like
//! Envoy 1.40's filter (measured), no `x-envoy-ratelimited`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use waypoint_core::ratelimit::{
    self, BucketRef, BucketState, HeaderAdd, LimitOutcome, RequestView, Scope, Target, TokenBucket,
};
use waypoint_core::RandomSource;

use crate::connect::context::{ConnectContext, Resolution};
use crate::http::head::RequestHead;
use crate::http::random::rng;
use crate::policy::destination::Destination;
use crate::policy::plan::{LocalReply, Plan};
use crate::Shared;

/// Body and response code details of a limited request (Envoy's).
pub const LIMITED_BODY: &str = "local_rate_limited";
/// More buckets than this (stale configs, many routes) and the map starts over.
const MAX_BUCKETS: usize = 10_000;

/// One bucket's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    filter: usize,
    scope: Scope,
    bucket: BucketRef,
    shape: TokenBucket,
}

/// Token buckets and the clock they run on.
#[derive(Debug)]
pub struct Limiter {
    start: Instant,
    buckets: Mutex<HashMap<Key, BucketState>>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            start: Instant::now(),
            buckets: Mutex::default(),
        }
    }
}

impl Limiter {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Per-tunnel buckets (`local_rate_limit_per_downstream_connection`), dropped with it.
#[derive(Debug, Default)]
pub struct ConnectionBuckets(Mutex<HashMap<Key, BucketState>>);

fn take(map: &Mutex<HashMap<Key, BucketState>>, key: Key, now: Duration) -> ratelimit::Verdict {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    if m.len() >= MAX_BUCKETS && !m.contains_key(&key) {
        m.clear();
    }
    let shape = key.shape;
    let state = m.entry(key).or_insert_with(|| shape.full(now));
    shape.consume(state, now)
}

/// What the stage decided.
#[derive(Debug, Default)]
pub struct Check {
    /// Answer with this instead of going on.
    pub limited: Option<LocalReply>,
    /// `x-ratelimit-*` headers for the response.
    pub response_headers: Vec<(&'static str, String)>,
}

/// Run every local rate limit filter for one request (in the request's config generation);
/// headers for a limited-but-not-enforced request are added to `headers`.
pub fn check(
    shared: &Shared,
    ctx: &ConnectContext,
    res: &Resolution,
    plan: &Plan<'_>,
    head: &RequestHead,
    headers: &mut HeaderMap,
) -> Check {
    let (limiter, stats) = (&shared.ratelimit, &shared.metrics.ratelimit);
    let (path, authority, method) = (
        head.path.as_str(),
        head.authority.as_str(),
        head.method.as_str(),
    );
    let snapshot = &res.config.policy.snapshot;
    let limits = &snapshot.rate_limits;
    let mut out = Check::default();
    if limits.is_empty() {
        return out;
    }
    let (host, port) = service_of(ctx, res);
    let applied = limits.applied(&Target {
        host,
        port,
        rule: plan.rule,
    });
    if applied.is_empty() {
        return out;
    }
    let view_headers: Vec<(&str, &str)> = [
        (":path", path),
        (":authority", authority),
        (":method", method),
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
        // Istio's filter runs before the router picked a cluster.
        destination_cluster: None,
    };
    let now = limiter.now();
    let mut add_to_request: Vec<HeaderAdd> = Vec::new();
    for a in applied {
        let descriptors = ratelimit::descriptors(a.rules, a.config.stage, &view);
        let matched = ratelimit::matched(a.config, &descriptors);
        let mut rng = rng();
        let rolls = (roll(&mut rng), roll(&mut rng));
        let outcome: LimitOutcome =
            ratelimit::decide(a.config, &matched, rolls, |bucket, shape| {
                let key = Key {
                    filter: a.filter,
                    scope: a.scope.clone(),
                    bucket,
                    shape: *shape,
                };
                if a.config.per_connection {
                    take(&ctx.ratelimit.0, key, now)
                } else {
                    take(&limiter.buckets, key, now)
                }
            });
        stats.record(&a.config.stat_prefix, &outcome);
        if let Some((limit, remaining, reset)) = outcome.x_ratelimit {
            out.response_headers = vec![
                ("x-ratelimit-limit", limit.to_string()),
                ("x-ratelimit-remaining", remaining.to_string()),
                ("x-ratelimit-reset", reset.to_string()),
            ];
        }
        if outcome.enforced {
            let mut reply = LocalReply {
                status: a.config.status,
                body: LIMITED_BODY.to_string(),
                headers: Vec::new(),
            };
            for h in &a.config.response_headers {
                reply.headers.push((h.name.clone(), h.value.clone()));
            }
            // gRPC: 429 maps to UNAVAILABLE, or RESOURCE_EXHAUSTED when the config asks.
            if head.grpc && a.config.grpc_resource_exhausted {
                reply.headers.push(("grpc-status".into(), "8".into()));
            }
            for (k, v) in &out.response_headers {
                reply.headers.push(((*k).to_string(), v.clone()));
            }
            out.response_headers.clear();
            out.limited = Some(reply);
            return out;
        }
        if outcome.limited {
            add_to_request.extend(a.config.request_headers_when_not_enforced.iter().cloned());
        }
    }
    for h in add_to_request {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_str(&h.value),
        ) else {
            continue;
        };
        if h.if_absent && headers.contains_key(&name) {
            continue;
        }
        if h.overwrite {
            headers.insert(name, value);
        } else {
            headers.append(name, value);
        }
    }
    out
}

/// The service (hostname and port) a request goes to, as route-level limits name it; an
/// address that is no service has no hostname.
pub fn service_of<'a>(ctx: &ConnectContext, res: &'a Resolution) -> (&'a str, u16) {
    match &res.destination {
        Destination::Service(s) => (
            res.config
                .policy
                .snapshot
                .registry
                .services
                .get(s.resolved.index)
                .map(|svc| svc.hostname.as_str())
                .unwrap_or(""),
            s.resolved.port,
        ),
        _ => ("", ctx.addr.map(|a| a.port()).unwrap_or(0)),
    }
}

/// A uniform value in `[0, 1_000_000)` for a runtime fraction.
fn roll(rng: &mut impl RandomSource) -> u32 {
    rng.below(1_000_000) as u32
}

/// Add the `x-ratelimit-*` headers to a response.
pub fn decorate(headers: &mut HeaderMap, add: &[(&'static str, String)]) {
    for (k, v) in add {
        if let Ok(v) = HeaderValue::from_str(v) {
            headers.insert(*k, v);
        }
    }
}
