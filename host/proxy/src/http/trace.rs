//! The tracing stage of the pipeline: the span starts when the request arrives (after
//! `x-request-id`) and is reported with the response's facts when tracing is on.

use http::HeaderMap;

use crate::connect::context::{ConnectContext, Resolution};
use crate::http::head::RequestHead;
use crate::http::reply::Outcome;
use crate::policy::plan::Plan;
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

/// Report the finished span (queued only when sampled).
pub fn finish(
    shared: &Shared,
    ctx: &ConnectContext,
    res: &Resolution,
    head: &RequestHead,
    plan: &Plan,
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
    let cluster = plan.service.as_ref().map_or_else(
        || "-".to_string(),
        |s| {
            format!(
                "outbound|{}||{}",
                ctx.addr.map_or(0, |a| a.port()),
                s.hostname
            )
        },
    );
    let facts = Facts {
        method: head.method.as_str(),
        authority: &head.authority,
        path: &head.path,
        protocol,
        status: outcome.status,
        upstream_cluster: &cluster,
        response_flags: outcome.flag.as_str(),
    };
    span::report(&shared.tracer, t, &service_name, active, &facts);
}
