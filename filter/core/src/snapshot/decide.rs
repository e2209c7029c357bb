//! One decision per request, in the order a waypoint applies them: resolve the destination,
//! authorize (CUSTOM → DENY → ALLOW), match a route (first match wins), then act on it.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use smallvec::SmallVec;

use super::rewrite::rewrite_path;
use super::{RouteSource, Snapshot};
use crate::authn::{JwtRule, RequestAuth};
use crate::authz::{
    evaluate, evaluate_tcp, normalize_path_stable, Action as AuthzAction, AuthzInput, AuthzOutcome,
    CompiledPolicy, PolicyTargets,
};
use crate::decision::{
    Action, Decision, Endpoints, Forwarding, LocalResponse, PolicyResult, RulePosition,
};
use crate::gateway::routes_apply_to_port;
use crate::local_reply;
use crate::random::RandomSource;
use crate::request::{parse_ip, split_host_port, Request};
use crate::route::Subset;
use crate::route::{
    BackendRef, DestinationPolicy, Forward, Redirect, RedirectPort, RouteEntry, Rule, RuleAction,
    TrafficPolicy,
};
use crate::route_match::request_matches_auth;
use crate::service::ServiceInfo;

/// Why no service could be chosen for a request (reported as 404 with a trace line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("destination {0:?} is not a known service, VIP or endpoint")]
    UnknownDestination(String),
    #[error("service {0} does not use this waypoint")]
    NotBound(String),
    /// A pod IP of a workload that uses this waypoint: no service route applies, the request
    /// goes to this original destination (see `Snapshot::resolve_destination`).
    #[error("destination {0} is a workload address: no service route applies")]
    Workload(SocketAddr),
}

/// Body Envoy's RBAC filter sends on deny; Istio users grep for it.
pub const RBAC_DENIED_BODY: &str = "RBAC: access denied";

struct Tracer {
    on: bool,
    lines: Vec<String>,
}

impl Tracer {
    // Inlined: off (every data-path request), a call is one flag test, not a jump into code
    // that touches its own cache lines.
    #[inline(always)]
    fn add(&mut self, f: impl FnOnce() -> String) {
        if self.on {
            self.lines.push(f());
        }
    }
}

fn local(status: u16, body: &str, headers: Vec<(String, String)>) -> LocalResponse {
    LocalResponse {
        status,
        body: body.to_string(),
        headers,
        grpc_status: None,
    }
}

fn action_name(a: AuthzAction) -> &'static str {
    match a {
        AuthzAction::Allow => "ALLOW",
        AuthzAction::Deny => "DENY",
        AuthzAction::Audit => "AUDIT",
        AuthzAction::Custom => "CUSTOM",
    }
}

/// A destination the snapshot resolved to one of its services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedService {
    /// Index into the snapshot's service registry.
    pub index: usize,
    /// The service port (a pod's target port is mapped back to it).
    pub port: u16,
    /// The destination IP when the destination was an address (a VIP or a pod IP).
    pub ip: Option<IpAddr>,
}

impl Snapshot {
    /// Resolve a destination (`ip:port` or `host:port`) to a service and port. A pod IP of a
    /// workload using this waypoint is no service ([`DecideError::Workload`]): the waypoint's
    /// own policies apply to it and it is forwarded as addressed.
    pub fn resolve_destination(&self, destination: &str) -> Result<ResolvedService, DecideError> {
        // The usual destination, a service VIP and one of its ports: one hash lookup. Any other
        // spelling takes the parse below, which resolves these the same way.
        if let Some((index, port, ip)) = self.registry.by_vip_port(destination) {
            return Ok(ResolvedService {
                index,
                port,
                ip: Some(ip),
            });
        }
        let (host, port) = split_host_port(destination);
        let port = port.unwrap_or(80);
        // Only an IPv6 literal has a ':' and only an IPv4 one starts with a digit; skip the
        // address parser for the usual service hostname.
        let maybe_ip =
            host.contains(':') || host.as_bytes().first().is_some_and(u8::is_ascii_digit);
        if let Some(ip) = maybe_ip.then(|| parse_ip(host)).flatten() {
            if let Some(index) = self.registry.index_by_vip(ip) {
                return Ok(ResolvedService {
                    index,
                    port,
                    ip: Some(ip),
                });
            }
            // Workload-addressed traffic: a pod IP. Istio's waypoint sends it through its
            // `direct-http` / `direct-tcp` chains (pilot listener_waypoint.go, "Direct pod
            // access chain", 1.28-1.31): the waypoint's own filters and policies
            // (`buildWaypointHTTPFilters(nil)`), no VirtualService / HTTPRoute
            // (`buildWaypointInboundHTTPRouteConfig` with no service: the default route), and
            // the `encap` cluster to the original destination. Only a pod of a service using
            // this waypoint takes that chain; any other pod stays its service's (not bound: 404).
            let eps = self.registry.indexes_by_endpoint(ip);
            if eps.iter().any(|i| self.routes[*i].is_some()) {
                return Err(DecideError::Workload(SocketAddr::new(ip, port)));
            }
            return eps
                .first()
                .map(|&i| {
                    // The pod port is a target port; map it back to the service port.
                    let svc = &self.registry.services[i];
                    let sport = svc
                        .ports
                        .iter()
                        .find(|p| p.target_port == Some(port))
                        .map(|p| p.port)
                        .unwrap_or(port);
                    ResolvedService {
                        index: i,
                        port: sport,
                        ip: Some(ip),
                    }
                })
                .ok_or_else(|| DecideError::UnknownDestination(destination.to_string()));
        }
        let ns = self
            .waypoint
            .as_ref()
            .map(|w| w.namespace.as_str())
            .unwrap_or("default");
        self.registry
            .index_by_host(host, ns)
            .map(|index| ResolvedService {
                index,
                port,
                ip: None,
            })
            .ok_or_else(|| DecideError::UnknownDestination(destination.to_string()))
    }

    fn applicable_policies(&self, svc_idx: usize) -> SmallVec<[&CompiledPolicy; 8]> {
        self.policy_order[svc_idx]
            .iter()
            .map(|&i| &self.policies[i])
            .collect()
    }

    /// Policies that target the waypoint itself (Gateway / GatewayClass `targetRefs`, or an
    /// unreadable policy of its namespace), as `build` selects them for every service. Istio's
    /// waypoint applies these on its direct-workload chains (`buildWaypointHTTPFilters` with no
    /// service), which is where traffic to an address that is no service goes.
    fn waypoint_policies(&self) -> SmallVec<[&CompiledPolicy; 8]> {
        let Some(w) = self.waypoint.as_ref() else {
            return SmallVec::new();
        };
        let targets_waypoint = |p: &CompiledPolicy| match &p.targets {
            PolicyTargets::Refs(refs) => refs.iter().any(|t| {
                t.group == "gateway.networking.k8s.io"
                    && match t.kind.as_str() {
                        "Gateway" => t.name == w.name && t.namespace == w.namespace,
                        "GatewayClass" => {
                            p.id.namespace == self.root_namespace && t.name == w.class
                        }
                        _ => false,
                    }
            }),
            PolicyTargets::Unknown => p.id.namespace == w.namespace,
            PolicyTargets::Selector | PolicyTargets::Unscoped => false,
        };
        let rank = |p: &CompiledPolicy| match p.action {
            AuthzAction::Custom => 0,
            AuthzAction::Deny => 1,
            AuthzAction::Allow => 2,
            AuthzAction::Audit => 3,
        };
        let mut out: SmallVec<[&CompiledPolicy; 8]> = self
            .policies
            .iter()
            .filter(|p| targets_waypoint(p))
            .collect();
        out.sort_by_key(|p| rank(p));
        out
    }

    /// The policies for `destination`: its service's (waypoint-wide included), or the
    /// waypoint's own when it is no known service or endpoint; with the destination address.
    fn policies_for(
        &self,
        destination: &str,
    ) -> (SmallVec<[&CompiledPolicy; 8]>, Option<IpAddr>, Option<u16>) {
        match self.resolve_destination(destination) {
            Ok(r) => (self.applicable_policies(r.index), r.ip, Some(r.port)),
            Err(_) => {
                let (host, port) = split_host_port(destination);
                (self.waypoint_policies(), parse_ip(host), port)
            }
        }
    }

    /// Authorize an opaque TCP connection to `destination` with Istio's TCP semantics
    /// ([`evaluate_tcp`]): the service's policies, or the waypoint's own for an address that is
    /// no service. `allowed == false`: refuse before relaying a byte.
    pub fn authorize_tcp<'s>(
        &'s self,
        source_principal: Option<&str>,
        source_ip: Option<IpAddr>,
        destination: &str,
        want_trace: bool,
    ) -> AuthzOutcome<'s> {
        let (policies, dest_ip, dest_port) = self.policies_for(destination);
        let req = Request {
            method: "",
            scheme: "",
            authority: "",
            path: "",
            headers: &[],
            source_principal,
            source_ip,
            destination,
            sni: None,
        };
        evaluate_tcp(
            &policies,
            &AuthzInput {
                request: &req,
                path: "",
                dest_ip,
                dest_port,
                auth: None,
            },
            want_trace,
        )
    }

    /// Authorize an HTTP request to an address that is no known service (pass-through) with
    /// the waypoint's own policies. `path` is the request path already normalized with
    /// [`normalize_path_stable`] under `self.mesh().path_normalization`.
    pub fn authorize_passthrough<'s>(
        &'s self,
        req: &Request<'_>,
        path: &str,
        want_trace: bool,
    ) -> AuthzOutcome<'s> {
        self.authorize_passthrough_authenticated(req, None, path, want_trace)
    }

    /// [`Self::authorize_passthrough`] with the request's verified JWT attributes.
    pub fn authorize_passthrough_authenticated<'s>(
        &'s self,
        req: &Request<'_>,
        auth: Option<&RequestAuth>,
        path: &str,
        want_trace: bool,
    ) -> AuthzOutcome<'s> {
        let (policies, dest_ip, dest_port) = self.policies_for(req.destination);
        evaluate(
            &policies,
            &AuthzInput {
                request: req,
                path,
                dest_ip,
                dest_port,
                auth,
            },
            want_trace,
        )
    }

    /// The service and DestinationRule policy of a backend reference: precomputed at build
    /// time for every backend of every route (keyed by the reference's address), looked up by
    /// name for anything else.
    fn resolve_backend(
        &self,
        backend: &BackendRef,
    ) -> (Option<&ServiceInfo>, Option<&DestinationPolicy>) {
        let key = backend as *const BackendRef as usize;
        let (svc, host) = match self.backend_cache.get(&key) {
            Some(&(svc, dp)) => {
                let svc = svc.map(|i| &self.registry.services[i]);
                return (svc, dp.map(|i| &self.destination_list[i]));
            }
            None => (
                self.registry
                    .index_by_host(&backend.host, &backend.namespace)
                    .map(|i| &self.registry.services[i]),
                backend.host.as_str(),
            ),
        };
        let dp = svc
            .and_then(|s| self.destination_policies.get(&s.hostname))
            .or_else(|| self.destination_policies.get(host))
            .map(|&i| &self.destination_list[i]);
        (svc, dp)
    }

    /// Decide what to do with `req`. `rng` drives weighted splits and fault percentages;
    /// `want_trace` fills `Decision::trace` with the rules tried and why. A local reply comes
    /// out as Envoy sends it: `text/plain` for a body, the gRPC form to a gRPC request.
    #[inline]
    pub fn decide<'s>(
        &'s self,
        req: &Request<'_>,
        rng: &mut dyn RandomSource,
        want_trace: bool,
    ) -> Decision<'s> {
        self.decide_authenticated(req, None, rng, want_trace)
    }

    /// The JWT rules (RequestAuthentication) that apply to a request for `destination`: its
    /// service's and the waypoint's, or the waypoint's alone for an address that is no
    /// service. Empty: nothing to authenticate.
    pub fn jwt_rules_for(&self, destination: &str) -> SmallVec<[&JwtRule; 4]> {
        let idx: &[usize] = match self.resolve_destination(destination) {
            Ok(r) => &self.jwt.by_service[r.index],
            Err(_) => &self.jwt.waypoint,
        };
        idx.iter().map(|&i| &self.jwt.rules[i]).collect()
    }

    /// Every compiled JWT rule (what the Envoy config generator turns into providers).
    pub fn jwt_rules(&self) -> &[JwtRule] {
        &self.jwt.rules
    }

    /// [`Self::decide`] for a request whose JWT was verified ([`crate::authn::authenticate`]):
    /// `auth` feeds `requestPrincipals` / `request.auth.*` and claim route matches.
    pub fn decide_authenticated<'s>(
        &'s self,
        req: &Request<'_>,
        auth: Option<&RequestAuth>,
        rng: &mut dyn RandomSource,
        want_trace: bool,
    ) -> Decision<'s> {
        let mut d = self.decide_request(req, auth, rng, want_trace);
        if let Some(l) = d.local.as_mut() {
            local_reply::add_text_content_type(l);
            if local_reply::is_grpc_request(req.header("content-type")) {
                local_reply::to_grpc(l);
            }
        }
        d
    }

    // One caller: inlined so the large `Decision` is built in its caller's frame, not copied
    // out of this one (two memcpy calls per request otherwise).
    #[inline(always)]
    fn decide_request<'s>(
        &'s self,
        req: &Request<'_>,
        auth: Option<&RequestAuth>,
        rng: &mut dyn RandomSource,
        want_trace: bool,
    ) -> Decision<'s> {
        let mut t = Tracer {
            on: want_trace,
            lines: Vec::new(),
        };
        let mut d = Decision {
            action: Action::NotFound,
            local: None,
            forward: None,
            passthrough: None,
            matched_rule: None,
            rule_position: None,
            service: None,
            policies: SmallVec::new(),
            ext_authz: None,
            trace: Vec::new(),
        };
        let (svc_idx, port, dest_ip) = match self.resolve_destination(req.destination) {
            Ok(r) => (r.index, r.port, r.ip),
            Err(DecideError::Workload(addr)) => {
                t.add(|| format!("destination {addr} is a workload address: no service route"));
                self.decide_workload(&mut d, &mut t, req, auth, addr);
                d.trace = t.lines;
                return d;
            }
            Err(e) => {
                t.add(|| e.to_string());
                d.local = Some(local(404, "", Vec::new()));
                d.trace = t.lines;
                return d;
            }
        };
        let svc = &self.registry.services[svc_idx];
        d.service = Some(svc);
        let Some(routes) = self.routes[svc_idx].as_ref() else {
            let e = DecideError::NotBound(format!("{}/{}", svc.namespace, svc.name));
            t.add(|| e.to_string());
            d.local = Some(local(404, "", Vec::new()));
            d.trace = t.lines;
            return d;
        };
        t.add(|| {
            format!(
                "destination {} -> {} {}/{} port {port}",
                req.destination,
                kind_name(svc),
                svc.namespace,
                svc.name
            )
        });

        // Envoy's HCM normalizes the path per MeshConfig `pathNormalization` (default BASE)
        // before RBAC and routing, and forwards the normalized path; we repeat its pass until
        // the path is stable (see `normalize_path_stable`: a double-encoded path is judged and
        // forwarded as what the application will read, the same in both runtimes).
        let Some(normalized) = normalize_path_stable(self.mesh.path_normalization, req.path) else {
            // Envoy rejects paths it cannot normalize (e.g. an encoded NUL) with 400.
            t.add(|| format!("path {:?} cannot be normalized: 400", req.path));
            d.action = Action::DirectResponse;
            d.local = Some(local(400, "Bad Request", Vec::new()));
            d.trace = t.lines;
            return d;
        };
        if want_trace && normalized != req.path {
            t.add(|| format!("path normalized: {} -> {}", req.path, normalized));
        }
        let path_only = match normalized.find('?') {
            Some(i) => &normalized[..i],
            None => &normalized[..],
        };

        // Authorization first: Envoy's RBAC filters run before the router.
        let policies = self.applicable_policies(svc_idx);
        if !policies.is_empty() {
            let outcome = evaluate(
                &policies,
                &AuthzInput {
                    request: req,
                    path: &normalized,
                    dest_ip,
                    dest_port: Some(port),
                    auth,
                },
                want_trace,
            );
            t.lines.extend(outcome.trace);
            d.policies = outcome
                .verdicts
                .iter()
                .map(|v| PolicyResult {
                    policy: v.policy,
                    action: action_name(v.action),
                    matched: v.matched,
                    dry_run: v.dry_run,
                })
                .collect();
            d.ext_authz = outcome.custom;
            if let Some(p) = outcome.custom {
                t.add(|| format!("authz: CUSTOM provider {p} is asked first; it must allow"));
            }
            if !outcome.allowed {
                t.add(|| "authz: denied (403)".to_string());
                d.action = Action::Deny;
                d.local = Some(local(
                    403,
                    RBAC_DENIED_BODY,
                    vec![("content-type".into(), "text/plain".into())],
                ));
                d.trace = t.lines;
                return d;
            }
            t.add(|| "authz: allowed".to_string());
        } else {
            t.add(|| "authz: no AuthorizationPolicy applies; allowed".to_string());
        }

        // Routing: first match wins over the ordered entries.
        // Gateway API routes whose parentRefs name other ports do not cover this one: the
        // service's default route applies (Istio augmentPortMatch; mesh-ports conformance).
        let uncovered_port = routes.source == RouteSource::GatewayApi
            && !routes_apply_to_port(&routes.entries, Some(port));
        let (entry_index, entry, rule): (Option<usize>, Option<&RouteEntry>, &Rule) =
            if routes.source == RouteSource::Default || uncovered_port {
                t.add(|| {
                    format!(
                        "no route config for {} port {port}; default route to the service",
                        svc.hostname
                    )
                });
                (None, None, &routes.default_rule)
            } else {
                let mut found = None;
                for (i, e) in routes.entries.iter().enumerate() {
                    let hit = request_matches_auth(&e.matcher, req, auth, path_only, Some(port));
                    t.add(|| {
                        format!(
                            "{} rule {} (entry {i}): {}",
                            e.rule.id.resource(),
                            e.rule.id.rule,
                            if hit { "matched" } else { "no match" }
                        )
                    });
                    if hit {
                        found = Some((i, e));
                        break;
                    }
                }
                match found {
                    Some((i, e)) => (Some(i), Some(e), &*e.rule),
                    None => {
                        t.add(|| "no rule matched: 404".to_string());
                        d.local = Some(local(404, "", Vec::new()));
                        d.trace = t.lines;
                        return d;
                    }
                }
            };
        d.rule_position = Some(RulePosition {
            service: svc_idx,
            entry: entry_index,
        });
        if rule.id.kind != "default" {
            d.matched_rule = Some(&rule.id);
        }
        match &rule.action {
            RuleAction::Redirect(r) => {
                let location = redirect_location(r, req, path_only, entry);
                t.add(|| format!("redirect {} to {location}", r.status));
                let mut headers = vec![("location".to_string(), location)];
                headers.extend(r.response_headers.set.iter().cloned());
                headers.extend(r.response_headers.add.iter().cloned());
                d.action = Action::Redirect;
                d.local = Some(local(r.status, "", headers));
            }
            RuleAction::DirectResponse(dr) => {
                t.add(|| format!("direct response {}", dr.status));
                let mut headers: Vec<(String, String)> = dr.response_headers.set.clone();
                headers.extend(dr.response_headers.add.iter().cloned());
                d.action = Action::DirectResponse;
                d.local = Some(local(dr.status, dr.body.as_deref().unwrap_or(""), headers));
            }
            RuleAction::Forward(f) => {
                self.forward(&mut d, &mut t, f, entry, req, path_only, svc, port, rng);
                // The upstream receives the normalized path (Envoy rewrites `:path`).
                if let (Some(fwd), Cow::Owned(p)) = (d.forward.as_mut(), normalized) {
                    if fwd.path.is_none() {
                        fwd.path = Some(p);
                    }
                }
            }
        }
        d.trace = t.lines;
        d
    }

    /// A request addressed to a workload (`addr`, a pod IP): the waypoint's own policies
    /// with HTTP semantics on the normalized path, then pass-through to `addr` unchanged.
    fn decide_workload<'s>(
        &'s self,
        d: &mut Decision<'s>,
        t: &mut Tracer,
        req: &Request<'_>,
        auth: Option<&RequestAuth>,
        addr: SocketAddr,
    ) {
        let Some(normalized) = normalize_path_stable(self.mesh.path_normalization, req.path) else {
            t.add(|| format!("path {:?} cannot be normalized: 400", req.path));
            d.action = Action::DirectResponse;
            d.local = Some(local(400, "Bad Request", Vec::new()));
            return;
        };
        let outcome = self.authorize_passthrough_authenticated(req, auth, &normalized, t.on);
        t.lines.extend(outcome.trace);
        d.policies = outcome
            .verdicts
            .iter()
            .map(|v| PolicyResult {
                policy: v.policy,
                action: action_name(v.action),
                matched: v.matched,
                dry_run: v.dry_run,
            })
            .collect();
        d.ext_authz = outcome.custom;
        if !outcome.allowed {
            t.add(|| "authz: denied (403)".to_string());
            d.action = Action::Deny;
            d.local = Some(local(
                403,
                RBAC_DENIED_BODY,
                vec![("content-type".into(), "text/plain".into())],
            ));
            return;
        }
        t.add(|| format!("pass-through to {addr}"));
        d.action = Action::Passthrough;
        d.passthrough = Some(addr);
    }

    #[allow(clippy::too_many_arguments)]
    fn forward<'s>(
        &'s self,
        d: &mut Decision<'s>,
        t: &mut Tracer,
        f: &'s Forward,
        entry: Option<&'s RouteEntry>,
        req: &Request<'_>,
        path_only: &str,
        svc: &'s ServiceInfo,
        port: u16,
        rng: &mut dyn RandomSource,
    ) {
        let total: u64 = f.backends.iter().map(|b| u64::from(b.weight)).sum();
        if total == 0 {
            // Istio answers 500 when every backend weight is 0 or none is valid.
            t.add(|| "no backend with a non-zero weight: 500".to_string());
            d.action = Action::DirectResponse;
            d.local = Some(local(500, "", Vec::new()));
            return;
        }
        let mut draw = rng.below(total);
        let mut chosen = &f.backends[0];
        let mut backend_index = 0;
        for (i, b) in f.backends.iter().enumerate() {
            if draw < u64::from(b.weight) {
                chosen = b;
                backend_index = i;
                break;
            }
            draw -= u64::from(b.weight);
        }
        if f.backends.len() > 1 {
            t.add(|| {
                format!(
                    "weighted split over {} backends; picked {}{} (weight {}/{total})",
                    f.backends.len(),
                    chosen.backend.host,
                    chosen
                        .backend
                        .subset
                        .as_deref()
                        .map(|s| format!(" subset {s}"))
                        .unwrap_or_default(),
                    chosen.weight
                )
            });
        }
        if let Some(reason) = &chosen.invalid {
            t.add(|| format!("backend {} is invalid ({reason}): 500", chosen.backend.host));
            d.action = Action::DirectResponse;
            d.local = Some(local(500, "", Vec::new()));
            return;
        }
        let backend = &chosen.backend;
        let bport = backend.port.unwrap_or(port);
        let (bsvc, dpol) = self.resolve_backend(backend);
        let traffic_policy: Option<&'s TrafficPolicy> =
            dpol.and_then(|p| p.policy_for(backend.subset.as_deref(), bport));
        let mut endpoints = Endpoints::None;
        if let Some(subset) = &backend.subset {
            match dpol.and_then(|p| p.subsets.get(subset)) {
                Some(ss) => {
                    if let Some(s) = bsvc {
                        let key = (
                            s as *const ServiceInfo as usize,
                            ss as *const Subset as usize,
                        );
                        endpoints = match self.subset_endpoints.get(&key) {
                            Some(idx) => Endpoints::Indexed(&s.endpoints, idx),
                            None => Endpoints::Filtered(&s.endpoints, &ss.labels),
                        };
                    }
                }
                None => {
                    // Envoy: route to a cluster that does not exist → 503 (NC).
                    t.add(|| {
                        format!(
                            "subset {subset} of {} is not defined by any DestinationRule: 503",
                            backend.host
                        )
                    });
                    d.action = Action::DirectResponse;
                    d.local = Some(local(503, "no healthy upstream", Vec::new()));
                    return;
                }
            }
        } else if let Some(s) = bsvc {
            endpoints = Endpoints::All(&s.endpoints);
        }

        // Built in place in the decision (a `Forwarding` is a few hundred bytes: building it
        // on the stack and moving it in cost a memcpy per request).
        let fwd = d.forward.insert(Forwarding {
            backend,
            service: bsvc,
            port: bport,
            endpoints,
            candidates: &f.backends,
            backend_index,
            request_headers: [&chosen.request_headers, &f.request_headers],
            response_headers: [&chosen.response_headers, &f.response_headers],
            path: None,
            authority: None,
            timeout: f.timeout,
            backend_timeout: f.backend_timeout,
            retries: f.retries.as_ref(),
            fault_delay: None,
            mirrors: &f.mirrors,
            cors: f.cors.as_ref(),
            traffic_policy,
        });
        // Fault injection: the fault filter delays, then aborts (Envoy HTTP fault filter).
        if let Some(fault) = &f.fault {
            if let Some((delay, pct)) = fault.delay {
                if rng.chance(pct) {
                    fwd.fault_delay = Some(delay);
                    t.add(|| format!("fault delay {} ms", delay.as_millis()));
                }
            }
            if let Some(abort) = &fault.abort {
                if rng.chance(abort.percent) {
                    t.add(|| format!("fault abort {}", abort.http_status));
                    d.action = Action::FaultAbort;
                    let mut lr = local(abort.http_status, "fault filter abort", Vec::new());
                    lr.grpc_status = abort.grpc_status.clone();
                    d.local = Some(lr);
                    return;
                }
            }
        }

        let mut path = None;
        let mut authority = None;
        if let Some(rw) = &f.rewrite {
            if let Some(prw) = &rw.path {
                let new_path =
                    rewrite_path(path_only, prw, entry.and_then(|e| e.matcher.path.as_ref()));
                let full = match req.query() {
                    Some(q) => format!("{new_path}?{q}"),
                    None => new_path,
                };
                t.add(|| format!("path rewritten to {full}"));
                path = Some(full);
            }
            if let Some(a) = &rw.authority {
                t.add(|| format!("authority rewritten to {a}"));
                authority = Some(a.clone());
            }
        }
        t.add(|| {
            format!(
                "forward to {}{} port {bport} ({} endpoints)",
                backend.host,
                backend
                    .subset
                    .as_deref()
                    .map(|s| format!(" subset {s}"))
                    .unwrap_or_default(),
                endpoints.len()
            )
        });
        let _ = svc;
        fwd.path = path;
        fwd.authority = authority;
        d.action = Action::Route;
    }
}

fn kind_name(s: &ServiceInfo) -> &'static str {
    match s.kind {
        crate::service::ServiceKind::Service => "Service",
        crate::service::ServiceKind::ServiceEntry => "ServiceEntry",
    }
}

/// Build the `location` of a redirect from the request (its normalized path `path_only`) and
/// the redirect spec.
fn redirect_location(
    r: &Redirect,
    req: &Request<'_>,
    path_only: &str,
    entry: Option<&RouteEntry>,
) -> String {
    let scheme = r.scheme.as_deref().unwrap_or(req.scheme);
    let (req_host, req_port) = split_host_port(req.authority);
    let host = r.host.as_deref().unwrap_or(req_host);
    let port = match &r.port {
        RedirectPort::Set(p) => Some(*p),
        RedirectPort::ProtocolDefault => None,
        // Keep the request's port, unless the scheme changed (then the new scheme's default).
        RedirectPort::Keep => {
            if r.scheme.as_deref().is_some_and(|s| s != req.scheme) {
                None
            } else {
                req_port
            }
        }
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let path = match &r.path {
        Some(p) => rewrite_path(path_only, p, entry.and_then(|e| e.matcher.path.as_ref())),
        None => path_only.to_string(),
    };
    let query = req.query().map(|q| format!("?{q}")).unwrap_or_default();
    let host_fmt = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match port {
        Some(p) if p != default_port => format!("{scheme}://{host_fmt}:{p}{path}{query}"),
        _ => format!("{scheme}://{host_fmt}{path}{query}"),
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
