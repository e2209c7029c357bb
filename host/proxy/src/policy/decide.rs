//! The one place the host asks the policy core about a request: the core's `Decision` (or the
//! waypoint's own policies, for a pass-through address) turned into an owned [`Plan`] with
//! concrete upstream targets.

use std::borrow::Cow;
use std::sync::Arc;

use waypoint_core::authn::RequestAuth;
use waypoint_core::authz::normalize_path_stable;
use waypoint_core::decision::{Action, Decision};
use waypoint_core::route::{BackendRef, HeaderOps, LoadBalancer};
use waypoint_core::service::{Endpoint, ServiceInfo, ServiceLookup};
use waypoint_core::snapshot::RBAC_DENIED_BODY;
use waypoint_core::{RandomSource, Request};

use crate::policy::compiled::Policy;
use crate::policy::destination::Destination;
use crate::policy::ext_authz_call::ExtAuthzCall;
use crate::policy::options::PolicyOptions;
use crate::policy::plan::{
    ForwardPlan, LocalReply, MirrorTarget, Plan, PlanAction, PlanKind, ServiceMeta,
};
use crate::policy::target::order_targets;
use crate::upstream::circuit::ClusterPool;
use crate::upstream::Target;

/// Service-port protocols whose upstream is HTTP/2 (Istio: `http2`, `grpc`, `grpc-web`).
fn is_h2_protocol(p: &str) -> bool {
    matches!(p, "http2" | "grpc" | "grpc-web")
}

impl Policy {
    /// The plan for one request. `destination` is `req.destination` as [`Policy::resolve`]
    /// resolved it in this same policy.
    pub fn plan(
        &self,
        req: &Request<'_>,
        auth: Option<&RequestAuth>,
        destination: &Destination,
        rng: &mut dyn RandomSource,
    ) -> Plan<'_> {
        if let Destination::Passthrough(target) = destination {
            return self.plan_passthrough(req, auth, target);
        }
        let d = self.snapshot.decide_authenticated(req, auth, rng, false);
        let reg = &self.snapshot.registry;
        let service = d.service.and(destination.service()).cloned();
        let mut plan = plan_from_decision(
            &d,
            service,
            req,
            &self.options,
            &|b: &BackendRef| reg.by_host(&b.host, &b.namespace),
            rng,
        );
        // Only the global rate limit reads the cluster name (`destination_cluster`, its
        // counters): formatted only when one is configured.
        if let (PlanKind::Forward(fp), Some(f)) = (&mut plan.kind, &d.forward) {
            if !self.snapshot.rate_limits.global.is_empty() {
                fp.cluster = Some(waypoint_core::names::cluster_name(
                    f.port,
                    f.backend.subset.as_deref().unwrap_or(""),
                    &f.backend.host,
                ));
            }
        }
        if let Some(name) = d.ext_authz {
            let call = || ExtAuthzCall::resolve(&self.snapshot, name, &self.options);
            match &mut plan.kind {
                PlanKind::Forward(fp) => fp.ext_authz = Some(call()),
                PlanKind::Local(reply) if d.action == Action::Deny => {
                    let reply = std::mem::replace(
                        reply,
                        LocalReply {
                            status: 403,
                            body: String::new(),
                            headers: Vec::new(),
                        },
                    );
                    plan.kind = PlanKind::AskThenLocal(Box::new(call()), reply);
                }
                _ => {}
            }
        }
        plan
    }

    /// An HTTP request to an address that is no service: the waypoint's own policies decide
    /// (HTTP semantics, path normalized per mesh config), then it goes to that address.
    fn plan_passthrough(
        &self,
        req: &Request<'_>,
        auth: Option<&RequestAuth>,
        target: &Target,
    ) -> Plan<'_> {
        let mode = self.snapshot.mesh().path_normalization;
        let Some(path) = normalize_path_stable(mode, req.path) else {
            // Envoy rejects a path it cannot normalize.
            return Plan::local(PlanAction::DirectResponse, 400, "Bad Request");
        };
        let outcome = self
            .snapshot
            .authorize_passthrough_authenticated(req, auth, &path, false);
        if !outcome.allowed {
            return Plan::local(PlanAction::Deny, 403, RBAC_DENIED_BODY);
        }
        let ext_authz = outcome
            .custom
            .map(|name| ExtAuthzCall::resolve(&self.snapshot, name, &self.options));
        Plan {
            action: PlanAction::Passthrough,
            rule: None,
            service: None,
            delay: None,
            kind: PlanKind::Forward(Box::new(ForwardPlan {
                targets: vec![target.clone()],
                path: match path {
                    Cow::Owned(p) => Some(p),
                    Cow::Borrowed(_) => None,
                },
                ext_authz,
                ..Default::default()
            })),
            denied_by: None,
        }
    }
}

/// Convert the core's decision into a plan. `service` is the decided service's labels;
/// `lookup` resolves mirror backends.
pub fn plan_from_decision<'s>(
    d: &Decision<'s>,
    service: Option<Arc<ServiceMeta>>,
    req: &Request<'_>,
    options: &PolicyOptions,
    lookup: &dyn Fn(&BackendRef) -> Option<&'s ServiceInfo>,
    rng: &mut dyn RandomSource,
) -> Plan<'s> {
    let local = |status: u16, body: &str| {
        PlanKind::Local(LocalReply {
            status,
            body: body.to_string(),
            headers: Vec::new(),
        })
    };
    let kind = match (d.action, &d.local, &d.forward) {
        (Action::Route, _, Some(f)) => {
            let port = f.port;
            let targets = order_targets(
                f.service,
                &f.endpoints.to_vec(),
                port,
                options,
                f.traffic_policy
                    .as_ref()
                    .and_then(|t| t.load_balancer.as_ref()),
                req,
                rng,
            );
            if targets.is_empty() {
                // Envoy's reply when a cluster has no healthy host (flag UH).
                local(503, "no healthy upstream")
            } else {
                let mut mirrors = Vec::new();
                for m in f.mirrors {
                    if !rng.chance(m.percent) {
                        continue;
                    }
                    let Some(svc) = lookup(&m.backend) else {
                        continue;
                    };
                    let mport = m.backend.port.unwrap_or(port);
                    let eps: Vec<&Endpoint> = svc.endpoints.iter().collect();
                    if let Some(t) = order_targets(Some(svc), &eps, mport, options, None, req, rng)
                        .into_iter()
                        .next()
                    {
                        mirrors.push(MirrorTarget {
                            target: t,
                            authority: format!("{}:{}", svc.hostname, mport),
                        });
                    }
                }
                PlanKind::Forward(Box::new(ForwardPlan {
                    targets,
                    cluster: None,
                    // Empty mutations are left out (applying them does nothing).
                    request_headers: owned_ops(&f.request_headers),
                    response_headers: owned_ops(&f.response_headers),
                    path: f.path.clone(),
                    authority: f.authority.clone(),
                    timeout: f.timeout,
                    per_try_timeout: f
                        .retries
                        .and_then(|r| r.per_try_timeout)
                        .or(f.backend_timeout),
                    retries: f.retries.cloned(),
                    fault_delay: f.fault_delay,
                    mirrors,
                    cors: f.cors.cloned(),
                    upstream_h2: f
                        .service
                        .and_then(|s| s.port(port))
                        .map(|p| is_h2_protocol(&p.protocol)),
                    least_request: matches!(
                        f.traffic_policy
                            .as_ref()
                            .and_then(|t| t.load_balancer.as_ref()),
                        Some(LoadBalancer::LeastRequest)
                    ),
                    outlier: f
                        .traffic_policy
                        .as_ref()
                        .and_then(|t| t.outlier_detection.clone()),
                    pool: f
                        .traffic_policy
                        .as_ref()
                        .and_then(|t| t.connection_pool.clone())
                        .map(|settings| ClusterPool {
                            cluster: Arc::from(waypoint_core::names::cluster_name(
                                port,
                                f.backend.subset.as_deref().unwrap_or(""),
                                &f.backend.host,
                            )),
                            settings,
                        }),
                    // Unresolved (fails closed) until `Policy::plan` resolves the provider.
                    ext_authz: d.ext_authz.map(ExtAuthzCall::unresolved),
                }))
            }
        }
        (_, Some(l), _) => PlanKind::Local(LocalReply {
            status: l.status,
            body: l.body.clone(),
            headers: l.headers.clone(),
        }),
        // A decision without its payload: treat as the core's error (500).
        _ => local(500, "internal error: decision without payload"),
    };
    // A fault abort still waits out its delay first (Envoy's fault filter order).
    let delay = match (&kind, d.action, &d.forward) {
        (PlanKind::Local(_), Action::FaultAbort, Some(f)) => f.fault_delay,
        _ => None,
    };
    Plan {
        action: d.action.into(),
        rule: d.matched_rule,
        service,
        delay,
        kind,
        denied_by: waypoint_core::telemetry_labels::denying_policy(d),
    }
}

/// Header mutations as the plan keeps them: the non-empty ones, in order.
fn owned_ops(ops: &[&HeaderOps]) -> Vec<HeaderOps> {
    ops.iter()
        .filter(|h| !h.is_empty())
        .map(|h| (*h).clone())
        .collect()
}
