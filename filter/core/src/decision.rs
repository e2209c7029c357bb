//! The decision output: one plain struct per request saying what the data path must do
//! (local reply, or forward with mutations), and why (matched rule, policies, trace).

use std::time::Duration;

use crate::error::ResourceId;
use crate::route::{
    BackendRef, Cors, HeaderOps, Mirror, RetryPolicy, RuleId, TrafficPolicy, WeightedBackend,
};
use crate::service::{Endpoint, ServiceInfo};

/// What the data path does with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Forward to `Decision::forward`.
    Route,
    /// AuthorizationPolicy denied: 403 `RBAC: access denied`.
    Deny,
    Redirect,
    DirectResponse,
    FaultAbort,
    /// No rule of the service's route config matched: 404.
    NotFound,
    /// A request addressed to a workload (pod IP): no service route applies; forward to the
    /// original destination `Decision::passthrough` (Istio's waypoint `direct-http` chain).
    Passthrough,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Route => "route",
            Action::Deny => "deny",
            Action::Redirect => "redirect",
            Action::DirectResponse => "direct_response",
            Action::FaultAbort => "fault_abort",
            Action::NotFound => "not_found",
            Action::Passthrough => "passthrough",
        }
    }
}

/// A response the waypoint generates itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    pub body: String,
    /// Response headers to send (e.g. `location`, content-type, route response headers).
    pub headers: Vec<(String, String)>,
    /// gRPC status for gRPC fault aborts.
    pub grpc_status: Option<String>,
}

/// Forwarding instructions.
#[derive(Debug, Clone)]
pub struct Forwarding<'s> {
    /// The chosen backend reference (service, subset, port as written/resolved).
    pub backend: &'s BackendRef,
    /// The resolved service, when it is known to the registry.
    pub service: Option<&'s ServiceInfo>,
    /// Service port to use.
    pub port: u16,
    /// Endpoints of the service (subset applied), without copying them.
    pub endpoints: Endpoints<'s>,
    /// All candidates with weights (for splits), including the chosen one.
    pub candidates: &'s [WeightedBackend],
    /// Index of the chosen one in `candidates` (with `Decision::rule_position`, a stable key
    /// for per-backend data a runtime precomputes from the snapshot).
    pub backend_index: usize,
    /// Request header mutations, route level then backend level (apply in order).
    pub request_headers: [&'s HeaderOps; 2],
    /// Response header mutations, route level then backend level.
    pub response_headers: [&'s HeaderOps; 2],
    /// Path (with query) after rewrite, when rewritten.
    pub path: Option<String>,
    /// Authority after rewrite, when rewritten.
    pub authority: Option<String>,
    pub timeout: Option<Duration>,
    pub backend_timeout: Option<Duration>,
    pub retries: Option<&'s RetryPolicy>,
    /// Delay to inject before forwarding (already rolled against its percentage).
    pub fault_delay: Option<Duration>,
    pub mirrors: &'s [Mirror],
    pub cors: Option<&'s Cors>,
    /// DestinationRule policy for this backend (subset policy merged over the top-level one).
    pub traffic_policy: Option<&'s TrafficPolicy>,
}

/// A rule's place in the snapshot's route tables, fixed when the snapshot is built: the
/// service's index in the registry and the entry's index in that service's route table
/// (`None`: the service's default rule). A stable id for per-rule data a runtime precomputes
/// from one snapshot (see `Snapshot::service_routes`), instead of keying it by address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RulePosition {
    pub service: usize,
    pub entry: Option<usize>,
}

/// The decision for one request.
#[derive(Debug, Clone)]
pub struct Decision<'s> {
    pub action: Action,
    /// Set for every action but `Route`.
    pub local: Option<LocalResponse>,
    /// Set for `Route`.
    pub forward: Option<Forwarding<'s>>,
    /// Set for `Passthrough`: the original destination (pod IP and port) to forward to.
    pub passthrough: Option<std::net::SocketAddr>,
    /// The rule that matched, if any.
    pub matched_rule: Option<&'s RuleId>,
    /// Where the rule that decided sits in the snapshot (also set for a service's default
    /// rule, which is not a `matched_rule`); `None` when no rule was reached.
    pub rule_position: Option<RulePosition>,
    /// The service the destination resolved to.
    pub service: Option<&'s ServiceInfo>,
    /// Policies that applied, with their verdicts.
    /// Inline for up to 4 policies (no allocation on the common path).
    pub policies: smallvec::SmallVec<[PolicyResult<'s>; 4]>,
    /// A CUSTOM policy matched: the data path asks this ext-authz provider before the action
    /// takes effect (Istio's layers: CUSTOM, then DENY, then ALLOW). A provider deny answers
    /// the request with the provider's response; an allow lets the action proceed, so with
    /// `Action::Deny` (DENY/ALLOW denied) the request still gets this decision's 403.
    pub ext_authz: Option<&'s str>,
    /// Why: which rules were tried (only when asked for).
    pub trace: Vec<String>,
}

/// One AuthorizationPolicy that applied to the request, and whether its rules matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyResult<'s> {
    pub policy: &'s ResourceId,
    /// `ALLOW`, `DENY`, `AUDIT` or `CUSTOM`.
    pub action: &'static str,
    pub matched: bool,
    pub dry_run: bool,
}

/// The endpoints a forward may use: a view into the snapshot (subset membership computed at
/// build time), so deciding allocates nothing for them.
#[derive(Debug, Clone, Copy)]
pub enum Endpoints<'s> {
    /// None known.
    None,
    /// Every endpoint of the service.
    All(&'s [Endpoint]),
    /// The endpoints at these indexes (a DestinationRule subset, precomputed).
    Indexed(&'s [Endpoint], &'s [u32]),
    /// The endpoints whose labels include these (subset not precomputed).
    Filtered(
        &'s [Endpoint],
        &'s std::collections::BTreeMap<String, String>,
    ),
}

impl<'s> Endpoints<'s> {
    /// Number of endpoints.
    pub fn len(&self) -> usize {
        match self {
            Endpoints::None => 0,
            Endpoints::All(all) => all.len(),
            Endpoints::Indexed(_, idx) => idx.len(),
            Endpoints::Filtered(..) => self.iter().count(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th endpoint.
    pub fn get(&self, i: usize) -> Option<&'s Endpoint> {
        match *self {
            Endpoints::None => None,
            Endpoints::All(all) => all.get(i),
            Endpoints::Indexed(all, idx) => idx.get(i).and_then(|&j| all.get(j as usize)),
            Endpoints::Filtered(..) => self.iter().nth(i),
        }
    }

    /// All endpoints in order.
    pub fn iter(&self) -> impl Iterator<Item = &'s Endpoint> + 's {
        let this = *self;
        (0..).map_while(move |i| match this {
            Endpoints::Filtered(all, labels) => {
                // Walk from the i-th match: O(n) per step is fine for the uncached path.
                all.iter()
                    .filter(|e| labels.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
                    .nth(i)
            }
            other => other.get(i),
        })
    }

    /// Collected as references (for adapters that index or shuffle them).
    pub fn to_vec(&self) -> Vec<&'s Endpoint> {
        self.iter().collect()
    }
}
