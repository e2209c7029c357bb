//! What the data path does with one request, independent of the policy core's `Decision`: a
//! local reply, or forwarding instructions with concrete targets. Only the matched rule's id
//! is borrowed from the snapshot (it is named in access logs, which are usually off).

use std::sync::Arc;
use std::time::Duration;

use waypoint_core::decision::Action;
use waypoint_core::route::{Cors, HeaderOps, OutlierDetection, RetryPolicy, RuleId};

use crate::policy::ext_authz_call::ExtAuthzCall;
use crate::upstream::circuit::ClusterPool;
use crate::upstream::Target;

/// Destination service labels for telemetry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceMeta {
    pub name: String,
    pub namespace: String,
    pub hostname: String,
}

/// What the policy decided for a request: the core's action, or pass-through to an address
/// that is no service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanAction {
    Route,
    Deny,
    Redirect,
    DirectResponse,
    FaultAbort,
    NotFound,
    /// An address that is no known service: the waypoint's own policies allowed it.
    Passthrough,
}

impl PlanAction {
    /// The name in access logs (the core's `Action::as_str`, and `passthrough`).
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::Route => "route",
            PlanAction::Deny => "deny",
            PlanAction::Redirect => "redirect",
            PlanAction::DirectResponse => "direct_response",
            PlanAction::FaultAbort => "fault_abort",
            PlanAction::NotFound => "not_found",
            PlanAction::Passthrough => "passthrough",
        }
    }
}

impl From<Action> for PlanAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Route => PlanAction::Route,
            Action::Deny => PlanAction::Deny,
            Action::Redirect => PlanAction::Redirect,
            Action::DirectResponse => PlanAction::DirectResponse,
            Action::FaultAbort => PlanAction::FaultAbort,
            Action::NotFound => PlanAction::NotFound,
            Action::Passthrough => PlanAction::Passthrough,
        }
    }
}

/// The plan for one request (`'s`: the snapshot it was decided in).
#[derive(Debug, Clone)]
pub struct Plan<'s> {
    pub action: PlanAction,
    /// The matched route rule, for logs (see [`RuleName`]).
    pub rule: Option<&'s RuleId>,
    /// The destination service (shared with the tunnel's resolved destination).
    pub service: Option<Arc<ServiceMeta>>,
    /// Delay before a local reply (a fault abort after a fault delay).
    pub delay: Option<Duration>,
    pub kind: PlanKind,
    /// The AuthorizationPolicy a deny is counted under (`telemetry_labels::denying_policy`).
    pub denied_by: Option<String>,
}

#[derive(Debug, Clone)]
pub enum PlanKind {
    Local(LocalReply),
    /// A CUSTOM provider is asked first (Istio's layers: CUSTOM, then DENY, then ALLOW): its
    /// deny answers the request, its allow lets this (DENY/ALLOW) reply go out.
    AskThenLocal(Box<ExtAuthzCall>, LocalReply),
    Forward(Box<ForwardPlan>),
}

/// A response the waypoint writes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

/// Forwarding instructions.
#[derive(Debug, Clone, Default)]
pub struct ForwardPlan {
    /// Endpoints in the order to try them (first, then retries rotate through the rest).
    pub targets: Vec<Target>,
    /// Envoy's name of the chosen backend's cluster (`outbound|<port>|<subset>|<host>`);
    /// `None` for a passthrough.
    pub cluster: Option<String>,
    /// Request mutations: route level then backend level.
    pub request_headers: Vec<HeaderOps>,
    /// Response mutations: route level then backend level.
    pub response_headers: Vec<HeaderOps>,
    pub path: Option<String>,
    pub authority: Option<String>,
    /// Whole-request timeout (including retries).
    pub timeout: Option<Duration>,
    /// Per-attempt timeout.
    pub per_try_timeout: Option<Duration>,
    pub retries: Option<RetryPolicy>,
    pub fault_delay: Option<Duration>,
    /// Mirror targets (already rolled against their percentages).
    pub mirrors: Vec<MirrorTarget>,
    pub cors: Option<Cors>,
    /// Upstream wire protocol from the service port (`http2`/`grpc` ports: HTTP/2; `http`:
    /// HTTP/1.1); `None` means "same as downstream" (pass-through).
    pub upstream_h2: Option<bool>,
    /// DestinationRule `LEAST_REQUEST` balancing: pick by in-flight requests at send time.
    pub least_request: bool,
    /// DestinationRule outlier detection for the chosen backend.
    pub outlier: Option<OutlierDetection>,
    /// DestinationRule connection pool settings of the backend's cluster (its circuit
    /// breakers, timeouts and requests per connection); `None`: none set.
    pub pool: Option<ClusterPool>,
    /// A CUSTOM AuthorizationPolicy matched: this provider must allow first.
    pub ext_authz: Option<ExtAuthzCall>,
}

/// One mirror destination.
#[derive(Debug, Clone)]
pub struct MirrorTarget {
    pub target: Target,
    /// Authority of the mirrored service; Envoy appends `-shadow` to it.
    pub authority: String,
}

/// A matched rule as access logs name it: `Kind/ns/name#rule`, or `-`.
#[derive(Debug, Clone, Copy)]
pub struct RuleName<'a>(pub Option<&'a RuleId>);

impl std::fmt::Display for RuleName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(r) => write!(f, "{}/{}/{}#{}", r.kind, r.namespace, r.name, r.rule),
            None => f.write_str("-"),
        }
    }
}

impl Plan<'_> {
    /// A local reply plan.
    pub fn local(action: PlanAction, status: u16, body: impl Into<String>) -> Self {
        Plan {
            action,
            rule: None,
            service: None,
            delay: None,
            kind: PlanKind::Local(LocalReply {
                status,
                body: body.into(),
                headers: Vec::new(),
            }),
            denied_by: None,
        }
    }
}
