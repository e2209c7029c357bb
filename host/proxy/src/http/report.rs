//! What a finished request leaves behind: Istio's request metrics (`reporter="waypoint"`) and
//! the access log line.

use std::time::Duration;

use tracing::info;

use crate::connect::context::ConnectContext;
use crate::http::head::RequestHead;
use crate::http::headers::baggage_get;
use crate::http::reply::Outcome;
use crate::policy::plan::{Plan, RuleName};
use crate::telemetry::metrics::RequestLabels;
use crate::telemetry::request_metrics::RequestFacts;
use crate::Shared;

/// Count the request in Istio's metrics and write its access log line.
pub fn finish(
    shared: &Shared,
    ctx: &ConnectContext,
    head: &RequestHead,
    plan: &Plan,
    outcome: &Outcome,
    elapsed: Duration,
) {
    record(shared, ctx, plan, outcome, head.grpc, elapsed);
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
}

fn record(
    shared: &Shared,
    ctx: &ConnectContext,
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
fn request_labels(
    ctx: &ConnectContext,
    plan: &Plan,
    outcome: &Outcome,
    grpc: bool,
) -> RequestLabels {
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
        None => (ctx.authority.clone(), unknown(), unknown()),
    };
    let dst_principal = outcome
        .target
        .as_ref()
        .and_then(|t| t.hbone.as_ref())
        .and_then(|h| h.expected.first())
        .map(|i| i.to_string())
        .unwrap_or_else(unknown);
    RequestLabels {
        reporter: "waypoint".into(),
        source_workload: src_workload.clone(),
        source_canonical_service: src_app.clone(),
        source_canonical_revision: src_version.clone(),
        source_workload_namespace: ctx
            .peer
            .identity
            .as_ref()
            .map(|i| i.namespace.clone())
            .unwrap_or_else(unknown),
        source_principal: ctx.peer.principal.clone().unwrap_or_else(unknown),
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
        response_flags: outcome.flag.as_str().into(),
        connection_security_policy: "mutual_tls".into(),
    }
}
