//! What a finished request leaves behind: Istio's request metrics (`reporter="waypoint"`) and
//! the access log line.

use std::time::Duration;

use tracing::info;

use crate::connect::context::{ConnectContext, Resolution};
use crate::http::head::RequestHead;
use crate::http::reply::Outcome;
use crate::policy::plan::{Plan, RuleName};
use crate::telemetry::metrics::{DenialLabels, RequestLabels};
use crate::telemetry::request_metrics::{RequestFacts, ResponseHandles};
use crate::Shared;
use waypoint_core::telemetry_labels::{
    request_labels as request_labels_of, RequestFacts as TelemetryFacts, SourceFacts, REPORTER,
    UNKNOWN,
};

/// Count the request in Istio's metrics and write its access log line. Returns the duration
/// and response-size histograms for the response body's wrapper (`body_size`).
pub fn finish(
    shared: &Shared,
    ctx: &ConnectContext,
    res: &Resolution,
    head: &RequestHead,
    plan: &Plan,
    outcome: &Outcome,
    elapsed: Duration,
) -> ResponseHandles {
    let response = record(shared, ctx, res, head, plan, outcome);
    if let Some(policy) = &plan.denied_by {
        let labels = DenialLabels {
            reporter: REPORTER.to_string(),
            policy: policy.clone(),
            destination_service: plan
                .service
                .as_ref()
                .map_or_else(|| UNKNOWN.to_string(), |s| s.hostname.clone()),
        };
        shared.metrics.policy_denials.get_or_create(&labels).inc();
    }
    if !shared.access_log_on(&res.config) {
        return response;
    }
    info!(
        target: "access",
        method = %head.method,
        authority = %head.authority,
        path = %head.path,
        status = outcome.status,
        flags = outcome.flag.as_str(),
        action = plan.action.as_str(),
        rule = %RuleName(plan.rule),
        upstream = %outcome.target.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
        attempts = outcome.attempts,
        source = ctx.peer.principal.as_deref().unwrap_or("-"),
        destination = %ctx.authority,
        duration_ms = elapsed.as_millis() as u64,
        "request"
    );
    response
}

fn record(
    shared: &Shared,
    ctx: &ConnectContext,
    res: &Resolution,
    head: &RequestHead,
    plan: &Plan,
    outcome: &Outcome,
) -> ResponseHandles {
    let identity = outcome.target.as_ref().and_then(|t| t.peer_identity());
    let endpoint_ip = outcome.target.as_ref().map(|t| t.addr.ip());
    let facts = RequestFacts {
        baggage: ctx.baggage.as_deref().unwrap_or(""),
        peer_namespace: ctx.peer.identity.as_ref().map(|i| i.namespace.as_str()),
        principal: ctx.peer.principal.as_deref(),
        service: plan
            .service
            .as_ref()
            .map_or(ctx.authority.as_str(), |s| s.hostname.as_str()),
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
        flags: outcome.flag,
        grpc: head.grpc,
        source_ip: ctx.peer.source_ip,
        endpoint_ip,
        generation: res.config.generation,
    };
    shared
        .request_metrics
        .record(&shared.metrics, facts, head.size, || {
            request_labels(ctx, res, plan, outcome, head.grpc)
        })
}

/// Istio's standard request labels (`reporter="waypoint"`), built on a metrics cache miss by
/// the core's `telemetry_labels` (the Envoy module computes them there too).
fn request_labels(
    ctx: &ConnectContext,
    res: &Resolution,
    plan: &Plan,
    outcome: &Outcome,
    grpc: bool,
) -> RequestLabels {
    // The generation the request was decided in names the pods.
    let policy = &res.config.policy;
    let workloads = &policy.snapshot.registry.workloads;
    let peer = ctx.peer.identity.as_ref();
    let source = ctx
        .peer
        .source_ip
        .and_then(|ip| workloads.by_ip(ip))
        .or_else(|| peer.and_then(|i| workloads.by_identity(&i.namespace, &i.service_account)));
    let destination = outcome
        .target
        .as_ref()
        .and_then(|t| workloads.by_ip(t.addr.ip()));
    let dst_principal = outcome
        .target
        .as_ref()
        .and_then(|t| t.peer_identity())
        .map(|i| i.to_string());
    let facts = TelemetryFacts {
        source: SourceFacts {
            principal: ctx.peer.principal.as_deref(),
            namespace: peer.map(|i| i.namespace.as_str()),
            workload: source,
            baggage: ctx.baggage.as_deref().unwrap_or(""),
        },
        service: plan
            .service
            .as_ref()
            .map(|s| (s.hostname.as_str(), s.name.as_str(), s.namespace.as_str())),
        destination,
        destination_principal: dst_principal.as_deref(),
        trust_domain: &policy.options.trust_domain,
        grpc,
        status: outcome.status,
        flags: outcome.flag.as_str(),
    };
    let mut labels = RequestLabels::from(request_labels_of(&facts));
    if plan.service.is_none() {
        // The sanitizer labels an unresolved destination `unknown` from the raw authority.
        labels.destination_service = ctx.authority.clone();
    }
    labels
}
