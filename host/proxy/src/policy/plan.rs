//! What the data path does with one request, owned and independent of the policy core's
//! borrowed `Decision`: a local reply, or forwarding instructions with concrete targets.

use std::sync::Arc;
use std::time::Duration;

use waypoint_core::decision::Action;
use waypoint_core::route::{Cors, HeaderOps, OutlierDetection, RetryPolicy};

use crate::policy::ext_authz_call::ExtAuthzCall;
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
        }
    }
}

/// The plan for one request.
#[derive(Debug, Clone)]
pub struct Plan {
    pub action: PlanAction,
    /// Matched rule, `Kind/ns/name#rule`, for logs.
    pub rule: Option<String>,
    /// The destination service (shared with the tunnel's resolved destination).
    pub service: Option<Arc<ServiceMeta>>,
    /// Delay before a local reply (a fault abort after a fault delay).
    pub delay: Option<Duration>,
    pub kind: PlanKind,
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

impl Plan {
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
        }
    }
}
