//! The tracing stage of the pipeline: the span starts when the request arrives (after
//! `x-request-id`) and is reported with the response's facts when tracing is on; while the
//! request is served under a request timeout it is parked where the timeout can finish it.

use std::sync::Mutex;

use http::HeaderMap;

use crate::connect::context::{ConnectContext, Resolution};
use crate::http::head::RequestHead;
use crate::http::reply::Outcome;
use crate::policy::plan::{Plan, PlanAction};
use crate::telemetry::span::{self, ActiveSpan, Facts};
use crate::Shared;

/// A started span and the request's protocol (an Envoy span tag).
#[derive(Debug)]
pub struct Started {
    span: ActiveSpan,
    protocol: &'static str,
}

/// Start the request's span when the Telemetry API turns tracing on.
pub fn start(res: &Resolution, http1: bool, headers: &mut HeaderMap) -> Option<Started> {
    let t = res.config.policy.snapshot.telemetry.tracing.as_ref()?;
    Some(Started {
        span: span::start(t, headers),
        protocol: if http1 { "HTTP/1.1" } else { "HTTP/2" },
    })
}

/// The span's `upstream_cluster`: the destination service's cluster, the original
/// destination's `passthrough|ip:port` for a workload-addressed request, else `-`.
pub fn cluster_of(ctx: &ConnectContext, plan: &Plan) -> String {
    if plan.action == PlanAction::Passthrough {
        if let Some(addr) = ctx.addr {
            return waypoint_core::names::passthrough_cluster_name(addr);
        }
    }
    plan.service.as_ref().map_or_else(
        || "-".to_string(),
        |s| {
            format!(
                "outbound|{}||{}",
                ctx.addr.map_or(0, |a| a.port()),
                s.hostname
            )
        },
    )
}

/// A span parked while its request is served under a request timeout. Envoy's
/// `request_timeout` ends a traced request with a 408 whose span is exported like any other;
/// here the timeout drops the serving future, so it finishes the parked span instead.
#[derive(Debug, Default)]
pub struct Parked(Mutex<Option<ParkedSpan>>);

#[derive(Debug)]
struct ParkedSpan {
    started: Started,
    head: RequestHead,
    res: Resolution,
    cluster: String,
}

impl Parked {
    /// Park `started` (the cluster is `-` until [`Parked::set_cluster`]).
    pub fn park(&self, started: Started, head: &RequestHead, res: &Resolution) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(ParkedSpan {
                started,
                head: head.clone(),
                res: res.clone(),
                cluster: "-".to_string(),
            });
        }
    }

    /// The request's cluster, once its plan is known.
    pub fn set_cluster(&self, cluster: &str) {
        if let Ok(mut slot) = self.0.lock() {
            if let Some(p) = slot.as_mut() {
                p.cluster = cluster.to_string();
            }
        }
    }

    /// The parked span back, for the request's own finish.
    pub fn unpark(&self) -> Option<Started> {
        self.0.lock().ok()?.take().map(|p| p.started)
    }

    /// Report the parked span, if any, as ended with `outcome` (the request timeout).
    pub fn finish(&self, shared: &Shared, outcome: &Outcome) {
        let Some(p) = self.0.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        finish(
            shared,
            &p.res,
            &p.head,
            &p.cluster,
            outcome,
            Some(p.started),
        );
    }
}

/// Report the finished span (queued only when sampled).
pub fn finish(
    shared: &Shared,
    res: &Resolution,
    head: &RequestHead,
    cluster: &str,
    outcome: &Outcome,
    started: Option<Started>,
) {
    let (
        Some(Started {
            span: active,
            protocol,
        }),
        Some(t),
    ) = (
        started,
        res.config.policy.snapshot.telemetry.tracing.as_ref(),
    )
    else {
        return;
    };
    let snapshot = &res.config.policy.snapshot;
    // Istio names a waypoint's tracing service `<gateway>.<namespace>`.
    let service_name = snapshot.waypoint.as_ref().map_or_else(
        || "waypoint".to_string(),
        |w| format!("{}.{}", w.name, w.namespace),
    );
    let facts = Facts {
        method: head.method.as_str(),
        authority: &head.authority,
        path: &head.path,
        protocol,
        status: outcome.status,
        upstream_cluster: cluster,
        response_flags: outcome.flag.as_str(),
    };
    span::report(&shared.tracer, t, &service_name, active, &facts);
}
