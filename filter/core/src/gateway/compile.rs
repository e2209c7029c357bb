//! One HTTPRoute / GRPCRoute resource compiled rule by rule: matches, filters, backends,
//! timeouts and retries become `RouteEntry`s (one per match), as Istio's `convertHTTPRoute`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use gateway_api::apis::experimental::grpcroutes::GrpcRouteSpec;
use gateway_api::apis::experimental::httproutes::{
    HttpRouteParentRefs, HttpRouteRulesBackendRefs, HttpRouteRulesFilters, HttpRouteRulesRetry,
    HttpRouteRulesTimeouts, HttpRouteSpec,
};

use crate::error::{Diagnostics, ResourceId};
use crate::matchers::StringMatch;
use crate::resource::RawResource;
use crate::route::{
    DirectResponse, Forward, HeaderOps, Mirror, Redirect, RequestMatch, RetryPolicy, Rewrite,
    RouteEntry, Rule, RuleAction, RuleId, WeightedBackend,
};
use crate::service::ServiceLookup;

use super::backends::{resolve, Invalid, RefSpec, ReferenceGrants};
use super::filters::{convert, retype, FilterEffect, RedirectSpec, RewriteSpec};
use super::matches::{grpc_match, http_match};
use super::parents::ParentRef;
use super::precedence::MatchRank;
use super::{CompiledEntry, CompiledRoute, GATEWAY_GROUP};

/// Which route resource is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteKind {
    Http,
    Grpc,
}

impl RouteKind {
    fn kind(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
        }
    }
    fn versions(self) -> &'static [&'static str] {
        match self {
            RouteKind::Http => &["v1", "v1beta1", "v1alpha2"],
            RouteKind::Grpc => &["v1", "v1alpha2"],
        }
    }
}

/// A rule in the shape shared by both kinds (GRPC pieces re-typed into the HTTPRoute types).
struct RuleIr {
    name: Option<String>,
    /// Compiled matches, or (field below the match, message).
    matches: Vec<Result<RequestMatch, (String, String)>>,
    filters: Vec<HttpRouteRulesFilters>,
    backends: Vec<HttpRouteRulesBackendRefs>,
    timeouts: Option<HttpRouteRulesTimeouts>,
    retry: Option<HttpRouteRulesRetry>,
}

struct RouteIr {
    hostnames: Vec<String>,
    parent_refs: Vec<HttpRouteParentRefs>,
    rules: Vec<RuleIr>,
}

fn http_ir(spec: HttpRouteSpec) -> RouteIr {
    // CRD default for an absent `rules`: one rule matching PathPrefix `/` with no backendRefs
    // (so every request gets 500), as the API server would store it.
    let rules = spec
        .rules
        .unwrap_or_else(|| vec![Default::default()])
        .into_iter()
        .map(|r| {
            // "If no matches are specified, the default is a prefix path match on "/"".
            let matches = match r.matches.as_deref() {
                None | Some([]) => vec![Ok(RequestMatch {
                    path: Some(StringMatch::path_prefix("/")),
                    ..Default::default()
                })],
                Some(ms) => ms.iter().map(http_match).collect(),
            };
            RuleIr {
                name: r.name,
                matches,
                filters: r.filters.unwrap_or_default(),
                backends: r.backend_refs.unwrap_or_default(),
                timeouts: r.timeouts,
                retry: r.retry,
            }
        })
        .collect();
    RouteIr {
        hostnames: spec.hostnames.unwrap_or_default(),
        parent_refs: spec.parent_refs.unwrap_or_default(),
        rules,
    }
}

fn grpc_ir(spec: GrpcRouteSpec) -> Result<RouteIr, (String, String)> {
    let mut rules = Vec::new();
    for (i, r) in spec.rules.unwrap_or_default().into_iter().enumerate() {
        // "If no matches are specified, the implementation MUST match every gRPC request."
        let matches = match r.matches.as_deref() {
            None | Some([]) => vec![Ok(RequestMatch::default())],
            Some(ms) => ms.iter().map(grpc_match).collect(),
        };
        rules.push(RuleIr {
            name: r.name,
            matches,
            filters: retype(&r.filters.unwrap_or_default())
                .map_err(|e| (format!("spec.rules[{i}].filters"), e))?,
            backends: retype(&r.backend_refs.unwrap_or_default())
                .map_err(|e| (format!("spec.rules[{i}].backendRefs"), e))?,
            timeouts: None,
            retry: None,
        });
    }
    Ok(RouteIr {
        hostnames: spec.hostnames.unwrap_or_default(),
        parent_refs: retype(&spec.parent_refs.unwrap_or_default())
            .map_err(|e| ("spec.parentRefs".to_string(), e))?,
        rules,
    })
}

pub(crate) fn compile_route(
    raw: &RawResource,
    services: &dyn ServiceLookup,
    grants: &ReferenceGrants,
    kind: RouteKind,
) -> (Option<CompiledRoute>, Diagnostics) {
    let mut d = Diagnostics::default();
    let id = raw.id();
    if raw.kind != kind.kind() || raw.group() != GATEWAY_GROUP {
        d.error(id.error(
            "apiVersion",
            format!(
                "expected {GATEWAY_GROUP} {}, got {} {}",
                kind.kind(),
                raw.api_version,
                raw.kind
            ),
        ));
        return (None, d);
    }
    if !kind.versions().contains(&raw.version()) {
        d.warn(id.error(
            "apiVersion",
            format!("unknown version {:?}, parsed as v1", raw.version()),
        ));
    }
    let ir = match kind {
        RouteKind::Http => raw.parse_spec::<HttpRouteSpec>().map(http_ir),
        RouteKind::Grpc => raw
            .parse_spec::<GrpcRouteSpec>()
            .and_then(|s| grpc_ir(s).map_err(|(f, m)| id.error(f, m))),
    };
    let ir = match ir {
        Ok(ir) => ir,
        Err(e) => {
            d.error(e);
            return (None, d);
        }
    };
    let mut parents = Vec::new();
    for (i, p) in ir.parent_refs.iter().enumerate() {
        match ParentRef::from_spec(p, &raw.namespace) {
            Ok(p) => parents.push(p),
            Err(m) => d.error(id.error(format!("spec.parentRefs[{i}]"), m)),
        }
    }
    // Istio enforces ReferenceGrants for backends only on Gateway parents (`!mesh`); a route
    // with any mesh parent is compiled with mesh semantics.
    let grants = if parents.iter().any(ParentRef::is_mesh) {
        None
    } else {
        Some(grants)
    };
    let ctx = Ctx {
        id: &id,
        kind,
        services,
        grants,
    };
    let mut entries = Vec::new();
    for (i, rule) in ir.rules.iter().enumerate() {
        entries.extend(ctx.rule(i, rule, &mut d));
    }
    let route = CompiledRoute {
        id,
        parents,
        hostnames: ir.hostnames,
        creation_timestamp: raw.creation_timestamp.clone(),
        seq: raw.seq,
        entries,
    };
    (Some(route), d)
}

struct Ctx<'a> {
    id: &'a ResourceId,
    kind: RouteKind,
    services: &'a dyn ServiceLookup,
    grants: Option<&'a ReferenceGrants>,
}

/// The rule's action before path modifiers are tied to a match.
enum Plan {
    Status500,
    Redirect(RedirectSpec, HeaderOps),
    Forward(Box<Forward>, Option<RewriteSpec>),
}

impl Ctx<'_> {
    fn err(&self, d: &mut Diagnostics, field: String, msg: impl Into<String>) {
        d.error(self.id.error(field, msg));
    }

    fn rule(&self, i: usize, rule: &RuleIr, d: &mut Diagnostics) -> Vec<CompiledEntry> {
        let field = format!("spec.rules[{i}]");
        let mut matches = Vec::new();
        for (j, m) in rule.matches.iter().enumerate() {
            match m {
                Ok(m) => matches.push((j, m.clone())),
                Err((sub, msg)) => {
                    // Istio drops a rule whose match cannot be converted.
                    self.err(d, format!("{field}.matches[{j}].{sub}"), msg.clone());
                    return Vec::new();
                }
            }
        }
        let id = RuleId {
            kind: self.kind.kind(),
            namespace: self.id.namespace.clone(),
            name: self.id.name.clone(),
            rule: rule.name.clone().unwrap_or_else(|| i.to_string()),
        };
        let plan = self.plan(&field, rule, d);
        let shared = match &plan {
            Plan::Status500 => Some(status_500()),
            Plan::Redirect(r, _) if r.path.is_none() => Some(self.action(&plan, None, &field, d)),
            Plan::Forward(_, rw) if rw.as_ref().is_none_or(|r| r.path.is_none()) => {
                Some(self.action(&plan, None, &field, d))
            }
            _ => None,
        }
        .map(|action| {
            Arc::new(Rule {
                id: id.clone(),
                action,
            })
        });
        matches
            .into_iter()
            .map(|(j, matcher)| {
                let rule = match &shared {
                    Some(r) => r.clone(),
                    None => Arc::new(Rule {
                        id: id.clone(),
                        action: self.action(&plan, matcher.path.as_ref(), &field, d),
                    }),
                };
                CompiledEntry {
                    rank: MatchRank::of(&matcher),
                    entry: RouteEntry { matcher, rule },
                    rule_index: i,
                    match_index: j,
                }
            })
            .collect()
    }

    /// Tie the plan to one match's path (for ReplacePrefixMatch).
    fn action(
        &self,
        plan: &Plan,
        path: Option<&StringMatch>,
        field: &str,
        d: &mut Diagnostics,
    ) -> RuleAction {
        let resolve =
            |pm: &super::filters::PathModifier, d: &mut Diagnostics| match pm.resolve(path) {
                Ok(p) => Some(p),
                Err(m) => {
                    self.err(d, format!("{field}.filters"), m);
                    None
                }
            };
        match plan {
            Plan::Status500 => status_500(),
            Plan::Redirect(r, response_headers) => {
                let path = match &r.path {
                    None => None,
                    Some(pm) => match resolve(pm, d) {
                        Some(p) => Some(p),
                        None => return status_500(),
                    },
                };
                RuleAction::Redirect(Redirect {
                    scheme: r.scheme.clone(),
                    host: r.host.clone(),
                    port: r.port.clone(),
                    path,
                    status: r.status,
                    response_headers: response_headers.clone(),
                })
            }
            Plan::Forward(f, rw) => {
                let mut f = (**f).clone();
                if let Some(rw) = rw {
                    let path = match &rw.path {
                        None => None,
                        Some(pm) => match resolve(pm, d) {
                            Some(p) => Some(p),
                            None => return status_500(),
                        },
                    };
                    f.rewrite = Some(Rewrite {
                        path,
                        authority: rw.host.clone(),
                    });
                }
                RuleAction::Forward(f)
            }
        }
    }

    fn plan(&self, field: &str, rule: &RuleIr, d: &mut Diagnostics) -> Plan {
        let mut fwd = Forward::default();
        let mut redirect: Option<RedirectSpec> = None;
        let mut rewrite: Option<RewriteSpec> = None;
        let mut fatal = false;
        for (j, f) in rule.filters.iter().enumerate() {
            let ff = format!("{field}.filters[{j}]");
            match convert(f) {
                Err((sub, msg)) => {
                    self.err(d, format!("{ff}.{sub}"), msg);
                    fatal = true;
                }
                // A repeated modifier replaces the earlier one (Istio); the CRD forbids repeats.
                Ok(FilterEffect::RequestHeaders(h)) => fwd.request_headers = h,
                Ok(FilterEffect::ResponseHeaders(h)) => fwd.response_headers = h,
                Ok(FilterEffect::Redirect(r)) => redirect = Some(r),
                Ok(FilterEffect::Rewrite(r)) => rewrite = Some(r),
                Ok(FilterEffect::Cors(c)) => fwd.cors = Some(c),
                Ok(FilterEffect::Mirror(spec, percent)) => {
                    match self.resolve(&spec) {
                        (backend, None) => fwd.mirrors.push(Mirror { backend, percent }),
                        // Istio drops a mirror with an unusable backend; the rule still works.
                        (_, Some(why)) => {
                            self.invalid(d, format!("{ff}.requestMirror.backendRef"), &why)
                        }
                    }
                }
                Ok(FilterEffect::Unsupported(msg)) => {
                    self.err(
                        d,
                        format!("{ff}.type"),
                        format!("{msg}; the rule answers 500"),
                    );
                    fatal = true;
                }
            }
        }
        if redirect.is_some() && rewrite.is_some() {
            self.err(
                d,
                format!("{field}.filters"),
                "RequestRedirect and URLRewrite cannot be used together",
            );
            fatal = true;
        }
        // Backends: weight defaults to 1; zero-weight backends never get traffic.
        let mut total: i64 = 0;
        for (k, b) in rule.backends.iter().enumerate() {
            let bf = format!("{field}.backendRefs[{k}]");
            let weight = b.weight.unwrap_or(1);
            if weight < 0 {
                self.err(d, format!("{bf}.weight"), "weight must be >= 0");
                continue;
            }
            total += i64::from(weight);
            if weight == 0 {
                continue;
            }
            let (backend, invalid) = self.resolve(&RefSpec {
                group: b.group.clone(),
                kind: b.kind.clone(),
                name: b.name.clone(),
                namespace: b.namespace.clone(),
                port: b.port,
            });
            if let Some(why) = &invalid {
                self.invalid(d, bf.clone(), why);
            }
            let mut wb = WeightedBackend {
                backend,
                weight: weight as u32,
                request_headers: HeaderOps::default(),
                response_headers: HeaderOps::default(),
                invalid: invalid.map(|i| i.reason),
            };
            // backendRef filters share the rule-level conversion; Istio applies only the
            // header modifiers here and rejects the rest.
            for (j, f) in b.filters.iter().flatten().enumerate() {
                let ff = format!("{bf}.filters[{j}]");
                let effect = retype::<_, HttpRouteRulesFilters>(f)
                    .map_err(|e| ("type".to_string(), e))
                    .and_then(|f| convert(&f));
                match effect {
                    Ok(FilterEffect::RequestHeaders(h)) => wb.request_headers = h,
                    Ok(FilterEffect::ResponseHeaders(h)) => wb.response_headers = h,
                    Ok(other) => {
                        self.err(
                            d,
                            format!("{ff}.type"),
                            format!(
                                "unsupported backendRef filter {}; the rule answers 500",
                                effect_name(&other)
                            ),
                        );
                        fatal = true;
                    }
                    Err((sub, msg)) => {
                        self.err(d, format!("{ff}.{sub}"), msg);
                        fatal = true;
                    }
                }
            }
            fwd.backends.push(wb);
        }
        if fatal {
            return Plan::Status500;
        }
        if let Some(r) = redirect {
            if !rule.backends.is_empty() {
                d.warn(self.id.error(
                    format!("{field}.backendRefs"),
                    "ignored: the rule has a RequestRedirect filter",
                ));
            }
            return Plan::Redirect(r, fwd.response_headers);
        }
        // "If all entries in BackendRefs are invalid, and there are also no filters
        // specified in this route rule, all traffic which matches this rule MUST receive a
        // 500"; Istio answers 500 whenever the weights sum to zero (incl. no backendRefs).
        if total == 0 {
            return Plan::Status500;
        }
        self.timeouts(field, rule, &mut fwd, d);
        Plan::Forward(Box::new(fwd), rewrite)
    }

    /// Report an unusable reference: a warning when the route stays accepted (unresolved
    /// reference), an error when the reference is malformed.
    fn invalid(&self, d: &mut Diagnostics, field: String, why: &Invalid) {
        let e = self
            .id
            .error(field, format!("{}; traffic to it answers 500", why.reason));
        if why.unresolved {
            d.warn(e);
        } else {
            d.error(e);
        }
    }

    fn resolve(&self, r: &RefSpec) -> (crate::route::BackendRef, Option<Invalid>) {
        resolve(
            r,
            self.kind.kind(),
            &self.id.namespace,
            self.services,
            self.grants,
        )
    }

    /// `timeouts` (request, backendRequest; "0s" disables) and `retry` (Istio defaults:
    /// 2 attempts, retry on connection errors plus the listed codes).
    fn timeouts(&self, field: &str, rule: &RuleIr, fwd: &mut Forward, d: &mut Diagnostics) {
        if let Some(t) = &rule.timeouts {
            fwd.timeout = self.duration(d, format!("{field}.timeouts.request"), &t.request);
            fwd.backend_timeout = self.duration(
                d,
                format!("{field}.timeouts.backendRequest"),
                &t.backend_request,
            );
        }
        if let Some(r) = &rule.retry {
            let attempts = match r.attempts {
                None => 2,
                Some(a) => u32::try_from(a).unwrap_or_else(|_| {
                    self.err(d, format!("{field}.retry.attempts"), "must be >= 0");
                    0
                }),
            };
            let mut codes = Vec::new();
            for (k, c) in r.codes.iter().flatten().enumerate() {
                match u16::try_from(*c).ok().filter(|c| (400..=599).contains(c)) {
                    Some(c) => codes.push(c),
                    None => self.err(d, format!("{field}.retry.codes[{k}]"), "must be 400..=599"),
                }
            }
            let mut retry_on: Vec<String> = Vec::new();
            if attempts > 0 {
                // "Implementations SHOULD retry on connection errors (disconnect, reset,
                // timeout, TCP failure) if a retry stanza is configured." (GEP-1731). Istio's
                // list, plus Envoy's `reset` (disconnect / reset / per-try timeout), so that an
                // attempt cut by `timeouts.backendRequest` is retried.
                retry_on.extend(
                    [
                        "connect-failure",
                        "refused-stream",
                        "unavailable",
                        "cancelled",
                        "reset",
                    ]
                    .map(String::from),
                );
                if !codes.is_empty() {
                    retry_on.push("retriable-status-codes".into());
                }
            }
            fwd.retries = Some(RetryPolicy {
                attempts,
                per_try_timeout: fwd.backend_timeout,
                retry_on,
                codes,
                backoff: self.duration(d, format!("{field}.retry.backoff"), &r.backoff),
            });
        }
    }

    /// A Gateway API duration (GEP-2257: `1h2m3s4ms`); zero means "none".
    fn duration(&self, d: &mut Diagnostics, field: String, v: &Option<String>) -> Option<Duration> {
        let s = v.as_deref()?;
        match gateway_api::Duration::from_str(s) {
            Ok(g) => {
                let dur = Duration::from_nanos(u64::try_from(g.as_nanos()).unwrap_or(u64::MAX));
                (!dur.is_zero()).then_some(dur)
            }
            Err(e) => {
                self.err(d, field, format!("invalid duration {s:?}: {e}"));
                None
            }
        }
    }
}

fn status_500() -> RuleAction {
    RuleAction::DirectResponse(DirectResponse {
        status: 500,
        body: None,
        response_headers: HeaderOps::default(),
    })
}

fn effect_name(e: &FilterEffect) -> &'static str {
    match e {
        FilterEffect::RequestHeaders(_) => "RequestHeaderModifier",
        FilterEffect::ResponseHeaders(_) => "ResponseHeaderModifier",
        FilterEffect::Mirror(..) => "RequestMirror",
        FilterEffect::Redirect(_) => "RequestRedirect",
        FilterEffect::Rewrite(_) => "URLRewrite",
        FilterEffect::Cors(_) => "CORS",
        FilterEffect::Unsupported(_) => "ExtensionRef",
    }
}
