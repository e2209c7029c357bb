//! Per-stream filter logic over the safe `StreamHandle` trait: build the decision input, call
//! the core, and apply the decision (local reply, or mutations + cluster choice + delay).

use std::borrow::Cow;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use waypoint_core::decision::{Action, Decision, Forwarding, LocalResponse, RulePosition};
use waypoint_core::route::HeaderOps;
use waypoint_core::{CorsAction, RandomSource, Request, SplitMix64};

use smallvec::SmallVec;

use crate::config::{FilterConfig, MetadataLevel, PrincipalFrom, RouteTable};
use crate::ext_authz;
use crate::header_block::{HeaderBlock, Known};
use crate::metrics::StreamTelemetry;
use crate::router::{
    cluster_name_of, hash_input, CLUSTER_HEADER, HASH_HEADER, ROUTER_HEADERS, ROUTE_HEADER,
};
use crate::stream::{Attribute, HeaderKind, HeadersStatus, LogLevel, StreamHandle};
use crate::timer;

/// Dynamic-metadata namespace for `%DYNAMIC_METADATA(waypoint:decision)%` and friends.
pub const METADATA_NS: &str = "waypoint";
/// Body of an authorization deny, the same as Envoy's RBAC filter sends.
pub const DENY_BODY: &str = "RBAC: access denied";
/// Request header that makes the filter panic (only with the `test-panic` feature).
#[cfg(any(test, feature = "test-panic"))]
pub const TEST_PANIC_HEADER: &str = "x-waypoint-test-panic";

/// Timeout of a mirrored request when the route sets none.
const MIRROR_TIMEOUT_MS: u64 = 10_000;
/// Largest request body copied for a mirror (Envoy's default per-connection buffer limit);
/// a larger request goes upstream as usual but is not mirrored.
pub const MIRROR_BODY_LIMIT: usize = 1024 * 1024;

/// Event id used for the fault-delay wake-up.
const DELAY_EVENT: u64 = 1;

/// Where the stream is; decides the status when a panic has to fail closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing done yet.
    New,
    /// Building the input or deciding: authorization is not established, a failure is a 403.
    Deciding,
    /// Applying a decision (`Deny` stays a 403, everything else a 500).
    Applying(Action),
    /// Waiting for the fault delay.
    Delayed,
    /// Request side done.
    Forwarded,
    /// A local reply was sent (by the decision or by a failure).
    Replied,
}

/// Per-stream state. One per HTTP stream; lives on one Envoy worker thread.
#[derive(Debug)]
pub struct HttpFilter {
    config: Arc<FilterConfig>,
    phase: Phase,
    /// Response header mutations to apply on the response path (owned copies of the
    /// non-empty ones: usually none, so nothing is allocated).
    response_ops: Vec<HeaderOps>,
    /// `access-control-*` headers for the response when a CORS policy allowed the origin.
    /// The rare per-stream states are boxed so the filter Envoy creates and drops per request
    /// stays small.
    cors_response: Option<Box<CorsHeaders>>,
    /// A fault abort waiting for its fault delay (Envoy's fault filter delays, then aborts).
    delayed_reply: Option<Box<(Action, LocalResponse)>>,
    /// The request headers ended the stream (no body), so mirrors can be sent headers-only.
    bodiless: bool,
    /// Mirrors waiting for the request body.
    pending_mirror: Option<Box<PendingMirror>>,
    /// The request's consistent-hash input for the chosen cluster (DestinationRule
    /// `consistentHash`), read while deciding, written into `x-waypoint-hash` when forwarding.
    hash_input: Option<Box<str>>,
    /// The decision's facts for Istio's metrics, counted when the stream completes.
    telemetry: Option<Box<StreamTelemetry>>,
}

/// CORS response headers of an allowed origin: (origin, allow credentials, expose headers).
type CorsHeaders = Vec<(&'static str, String)>;

/// Mirror callouts decided at request headers, sent once the body is complete.
#[derive(Debug)]
struct PendingMirror {
    /// (cluster, timeout ms) of every mirror whose percentage roll passed.
    targets: Vec<(String, u64)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl PendingMirror {
    fn send<S: StreamHandle>(mut self, s: &mut S) {
        if !self.body.is_empty() {
            // The copy is whole: state its length (a chunked original's framing is gone).
            self.headers.retain(|(k, _)| {
                !k.eq_ignore_ascii_case("content-length")
                    && !k.eq_ignore_ascii_case("transfer-encoding")
            });
            self.headers
                .push(("content-length".to_string(), self.body.len().to_string()));
        }
        for (cluster, timeout) in &self.targets {
            if !s.callout(cluster, &self.headers, &self.body, *timeout) {
                s.log(
                    LogLevel::Warn,
                    &format!("waypoint: mirror to {cluster} not sent"),
                );
            }
        }
    }
}

/// Headers only this filter and its route table use (never sent upstream or to mirrors).
fn is_own_header(name: &str) -> bool {
    name.len() > 11 && name.as_bytes()[..11].eq_ignore_ascii_case(b"x-waypoint-")
}

thread_local! {
    static RNG: RefCell<SplitMix64> = RefCell::new(SplitMix64(seed()));
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is randomly keyed per process and thread; mix in the clock for good measure.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

impl HttpFilter {
    pub fn new(config: Arc<FilterConfig>) -> Self {
        HttpFilter {
            config,
            phase: Phase::New,
            response_ops: Vec::new(),
            cors_response: None,
            hash_input: None,
            delayed_reply: None,
            bodiless: true,
            pending_mirror: None,
            telemetry: None,
        }
    }

    /// The stream is complete (response sent or stream reset): count it in Istio's metrics.
    pub fn on_stream_complete<S: StreamHandle>(&mut self, s: &mut S) {
        let (Some(t), Some(ids)) = (self.telemetry.take(), self.config.metrics.istio) else {
            return;
        };
        let config = Arc::clone(&self.config);
        if catch_unwind(AssertUnwindSafe(|| {
            crate::metrics::record(s, &config, &ids, *t)
        }))
        .is_err()
        {
            s.log(LogLevel::Error, "waypoint: panic while recording metrics");
        }
    }

    /// Request headers, with panics caught: a panic fails closed (403 before authorization
    /// was established or on a deny, 500 otherwise) and never unwinds into Envoy.
    pub fn on_request_headers<S: StreamHandle>(
        &mut self,
        s: &mut S,
        end_of_stream: bool,
    ) -> HeadersStatus {
        self.bodiless = end_of_stream;
        if cfg!(feature = "bench-noop") {
            return HeadersStatus::Continue;
        }
        match catch_unwind(AssertUnwindSafe(|| self.request_headers(s))) {
            Ok(status) => status,
            Err(panic) => self.fail_closed(s, "request_headers", &panic_message(&panic)),
        }
    }

    /// Response headers, with panics caught (logged; the response goes on unchanged, since
    /// the request was authorized and the upstream already answered).
    pub fn on_response_headers<S: StreamHandle>(&mut self, s: &mut S) -> HeadersStatus {
        match catch_unwind(AssertUnwindSafe(|| self.response_headers(s))) {
            Ok(status) => status,
            Err(panic) => {
                s.log(
                    LogLevel::Error,
                    &format!(
                        "waypoint: panic in response_headers: {}",
                        panic_message(&panic)
                    ),
                );
                HeadersStatus::Continue
            }
        }
    }

    /// The fault-delay wake-up fired on the worker thread: resume the request.
    pub fn on_scheduled<S: StreamHandle>(&mut self, s: &mut S, event_id: u64) {
        if event_id == DELAY_EVENT && self.phase == Phase::Delayed {
            match self.delayed_reply.take().map(|b| *b) {
                Some((action, local)) => self.reply(s, action, &local),
                None => {
                    self.phase = Phase::Forwarded;
                    s.continue_decoding();
                }
            }
        }
    }

    /// Whether the request has no body (normally set by `on_request_headers`).
    pub fn set_bodiless(&mut self, bodiless: bool) {
        self.bodiless = bodiless;
    }

    /// Send the fail-closed reply for a failure in `hook`.
    pub fn fail_closed<S: StreamHandle>(
        &mut self,
        s: &mut S,
        hook: &str,
        why: &str,
    ) -> HeadersStatus {
        let (status, body) = match self.phase {
            Phase::New | Phase::Deciding | Phase::Applying(Action::Deny) => (403, DENY_BODY),
            _ => (500, "waypoint: internal error"),
        };
        s.log(
            LogLevel::Error,
            &format!("waypoint: {hook} failed ({why}); failing closed with {status}"),
        );
        if self.phase == Phase::Replied {
            return HeadersStatus::StopIteration;
        }
        self.phase = Phase::Replied;
        let replied = catch_unwind(AssertUnwindSafe(|| {
            s.set_metadata(METADATA_NS, "decision", "error");
            s.send_local_reply(status, &[], body, "waypoint_failed_closed");
        }));
        if replied.is_err() {
            s.log(LogLevel::Error, "waypoint: local reply failed");
        }
        HeadersStatus::StopIteration
    }

    fn request_headers<S: StreamHandle>(&mut self, s: &mut S) -> HeadersStatus {
        let start = std::time::Instant::now();
        self.phase = Phase::Deciding;
        let conn = ConnectionFacts::read(s, &self.config);
        if conn.several_identities {
            s.log(
                LogLevel::Debug,
                "waypoint: peer presented several SPIFFE IDs; request refused",
            );
            self.phase = Phase::Replied;
            s.set_metadata(METADATA_NS, "decision", "deny");
            s.send_local_reply(403, &[], DENY_BODY, "waypoint_several_peer_identities");
            return HeadersStatus::StopIteration;
        }
        let config = Arc::clone(&self.config);
        // The decision reads the headers where Envoy keeps them (no copy); applying it changes
        // them, so what applying still reads is copied first, and usually nothing is: only a
        // client's control headers or a CORS policy need the request's own headers.
        let decided = s.with_headers(HeaderKind::Request, |headers| {
            #[cfg(any(test, feature = "test-panic"))]
            if headers.get(TEST_PANIC_HEADER) == Some("decide") {
                panic!("test panic requested before the decision");
            }
            let authority = headers
                .known(Known::Authority)
                .or_else(|| headers.known(Known::Host))
                .unwrap_or("");
            let destination = conn
                .destination
                .as_deref()
                .or_else(|| {
                    headers
                        .has_control_headers()
                        .then(|| headers.get("x-envoy-original-dst-host"))
                        .flatten()
                })
                .unwrap_or(authority);
            let req = Request {
                method: headers.known(Known::Method).unwrap_or("GET"),
                scheme: headers.known(Known::Scheme).unwrap_or("http"),
                authority,
                path: headers.known(Known::Path).unwrap_or("/"),
                headers: headers.pairs(),
                source_principal: conn.principal.as_deref(),
                source_ip: conn.source_ip,
                destination,
                sni: conn.sni.as_deref(),
            };
            // RequestAuthentication first (Envoy's jwt_authn runs before RBAC).
            let authn = match config.engine.authenticate(&req) {
                Ok(a) => a,
                Err(u) => {
                    let www = u.www_authenticate(&req);
                    return Err((u.body(), www));
                }
            };
            let decision = RNG.with(|r| {
                let mut rng = r.borrow_mut();
                config
                    .engine
                    .decide_authenticated(&req, authn.auth.as_ref(), &mut *rng)
            });
            let hash = decision.forward.as_ref().and_then(|f| hash_input(f, &req));
            let cors = decision.forward.as_ref().is_some_and(|f| f.cors.is_some());
            #[cfg(any(test, feature = "test-panic"))]
            let cors = cors || headers.get(TEST_PANIC_HEADER).is_some();
            let kept = if cors || headers.has_control_headers() {
                headers.to_block()
            } else {
                HeaderBlock::default()
            };
            let grpc = waypoint_core::local_reply::is_grpc_request(headers.get("content-type"));
            Ok((decision, kept, authn, hash, grpc))
        });
        // jwt_authn's payload headers never go further; the token and outputs as the core says.
        for k in 0..config.engine.jwt_rule_count() {
            s.remove_header(HeaderKind::Request, &crate::jwt::payload_header(k));
        }
        let (decision, kept, authn, hash, grpc) = match decided {
            Ok(d) => d,
            Err((body, www)) => {
                self.phase = Phase::Replied;
                s.set_metadata(METADATA_NS, "decision", "deny");
                s.send_local_reply(
                    401,
                    &[("www-authenticate".to_string(), www)],
                    &body,
                    "jwt_authn_access_denied",
                );
                return HeadersStatus::StopIteration;
            }
        };
        self.hash_input = hash;
        self.telemetry = Some(Box::new(StreamTelemetry::new(
            start,
            &decision,
            &config.engine.registry().services,
            conn.principal.as_deref(),
            conn.source_ip,
            grpc,
        )));
        for name in &authn.remove_headers {
            s.remove_header(HeaderKind::Request, name);
        }
        for (name, value) in &authn.set_headers {
            s.set_header(HeaderKind::Request, name, value);
        }
        self.phase = Phase::Applying(decision.action);
        #[cfg(any(test, feature = "test-panic"))]
        if kept.get(TEST_PANIC_HEADER) == Some("apply") {
            panic!("test panic requested while applying the decision");
        }
        self.apply(s, &decision, &kept)
    }

    /// Apply a decision to the stream: metadata and counters, then forward or reply.
    /// `headers` holds what applying reads of the request's own headers: the router control
    /// headers a client sent and, for a CORS policy, the whole request (else it may be empty).
    pub(crate) fn apply<S: StreamHandle>(
        &mut self,
        s: &mut S,
        decision: &Decision<'_>,
        headers: &HeaderBlock,
    ) -> HeadersStatus {
        self.phase = Phase::Applying(decision.action);
        let config = Arc::clone(&self.config);
        let mut meta = Meta::default();
        record(&config, s, decision, &mut meta);
        if matches!(decision.action, Action::Route | Action::Passthrough) {
            // CUSTOM matched: the provider's native ext_authz filter checks (enabled here);
            // without one, fail closed like Envoy's ext_authz with failure_mode_allow=false.
            let no_filter = |p: &&str| !ext_authz::enable(s, &config, p);
            if let Some(provider) = decision.ext_authz.filter(no_filter) {
                s.log(
                    LogLevel::Warn,
                    &format!(
                        "waypoint: CUSTOM provider {provider:?} has no ext_authz filter; denying"
                    ),
                );
                let local = LocalResponse {
                    status: 403,
                    body: DENY_BODY.to_string(),
                    headers: Vec::new(),
                    grpc_status: None,
                };
                self.phase = Phase::Applying(Action::Deny);
                meta.flush(s);
                self.reply(s, Action::Deny, &local);
                return HeadersStatus::StopIteration;
            }
        }
        if decision.action == Action::Deny {
            // DENY/ALLOW denied, but a CUSTOM provider is asked first (Istio's layers: CUSTOM,
            // then DENY, then ALLOW): its ext_authz filter answers a provider deny; the RBAC
            // guard after it sends this 403 when the provider allows. Nothing is forwarded:
            // no cluster is chosen.
            if let Some(provider) = decision.ext_authz {
                if ext_authz::deny_after_provider(s, &config, provider) {
                    meta.flush(s);
                    self.phase = Phase::Forwarded;
                    return HeadersStatus::Continue;
                }
            }
        }
        if let (Action::Passthrough, Some(addr)) = (decision.action, decision.passthrough) {
            return self.passthrough(s, addr, headers, meta);
        }
        match (&decision.forward, &decision.local) {
            (Some(fwd), _) if decision.action == Action::Route => {
                let limit_route = config.engine.limit_route(decision);
                self.forward(s, decision.rule_position, fwd, headers, limit_route, meta)
            }
            (_, Some(local)) => {
                meta.flush(s);
                let delay = decision
                    .forward
                    .as_ref()
                    .and_then(|f| f.fault_delay)
                    .filter(|d| !d.is_zero());
                if let Some(delay) = delay.filter(|_| decision.action == Action::FaultAbort) {
                    if self.delay(s, delay) {
                        self.delayed_reply = Some(Box::new((decision.action, local.clone())));
                        return HeadersStatus::StopAllIterationAndBuffer;
                    }
                }
                self.reply(s, decision.action, local);
                HeadersStatus::StopIteration
            }
            _ => {
                meta.flush(s);
                // A decision without its payload is a core bug: fail closed.
                let local = LocalResponse {
                    status: if decision.action == Action::Deny {
                        403
                    } else {
                        500
                    },
                    body: if decision.action == Action::Deny {
                        DENY_BODY.to_string()
                    } else {
                        String::new()
                    },
                    headers: Vec::new(),
                    grpc_status: None,
                };
                self.reply(s, decision.action, &local);
                HeadersStatus::StopIteration
            }
        }
    }

    fn reply<S: StreamHandle>(&mut self, s: &mut S, action: Action, local: &LocalResponse) {
        // The core's reply is already in Envoy's form (text/plain, or gRPC to a gRPC request).
        let headers = local.headers.clone();
        let body = if action == Action::Deny && local.body.is_empty() {
            DENY_BODY
        } else {
            local.body.as_str()
        };
        self.phase = Phase::Replied;
        s.send_local_reply(
            local.status,
            &headers,
            body,
            &format!("waypoint_{}", action.as_str()),
        );
    }

    fn forward<S: StreamHandle>(
        &mut self,
        s: &mut S,
        rule: Option<RulePosition>,
        fwd: &Forwarding<'_>,
        headers: &HeaderBlock,
        limit_route: Option<&str>,
        mut meta: Meta<'_>,
    ) -> HeadersStatus {
        // CORS preflight is answered here, as Envoy's CORS filter does before routing.
        if let Some(cors) = fwd.cors {
            let method = headers.known(Known::Method).unwrap_or_default();
            let acrm = headers.get("access-control-request-method").is_some();
            match cors.evaluate(method, headers.get("origin"), acrm) {
                CorsAction::None => {}
                CorsAction::Preflight(h) => {
                    let reply = LocalResponse {
                        status: 200,
                        body: String::new(),
                        headers: h.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                        grpc_status: None,
                    };
                    meta.flush(s);
                    self.reply(s, Action::DirectResponse, &reply);
                    return HeadersStatus::StopIteration;
                }
                CorsAction::Decorate(h) => self.cors_response = Some(Box::new(h)),
            }
        }
        for ops in fwd.request_headers.iter().filter(|o| !o.is_empty()) {
            apply_ops(s, HeaderKind::Request, ops);
        }
        self.response_ops = fwd
            .response_headers
            .iter()
            .filter(|o| !o.is_empty())
            .map(|o| (*o).clone())
            .collect();
        if let Some(path) = &fwd.path {
            s.set_header(HeaderKind::Request, ":path", path);
        }
        if let Some(authority) = &fwd.authority {
            s.set_header(HeaderKind::Request, ":authority", authority);
        }
        // Router control headers a client sent must not steer Envoy's router; removing is a
        // host call, so only for headers that are actually present.
        let control = headers.has_control_headers();
        if control {
            for h in ROUTER_HEADERS {
                if headers.get(h).is_some() {
                    s.remove_header(HeaderKind::Request, h);
                }
            }
            if limit_route.is_none() && headers.get(ROUTE_HEADER).is_some() {
                s.remove_header(HeaderKind::Request, ROUTE_HEADER);
            }
        }
        // When neither the client nor the route's header ops can have put one of these
        // headers in, appending is enough (Envoy's set is a remove plus an append); otherwise
        // set replaces, e.g. a client-sent x-waypoint-cluster.
        let append = !control
            && fwd
                .request_headers
                .iter()
                .all(|o| o.set.is_empty() && o.add.is_empty());
        let put = |s: &mut S, name: &str, value: &str| {
            if append {
                s.add_header(HeaderKind::Request, name, value)
            } else {
                s.set_header(HeaderKind::Request, name, value)
            }
        };
        let plan = self.config.engine.router_plan(rule, fwd);
        let (router_headers, rematch) = match self.config.route_table {
            RouteTable::Rematch => (&plan.all, true),
            RouteTable::Waypoint => (&plan.waypoint, plan.waypoint_rematch),
        };
        // A rule an EnvoyFilter rate limit patch names has its own generated route (its
        // per-route limit and `rate_limits`): select it, and match the table again.
        let rematch = rematch || limit_route.is_some();
        if let Some(name) = limit_route {
            put(s, ROUTE_HEADER, name);
        }
        for (name, value) in router_headers {
            put(s, name, value);
        }
        self.mirror(s, fwd);
        let cluster = self.config.engine.cluster_name(rule, fwd);
        put(s, CLUSTER_HEADER, &cluster);
        // The route's hash policy hashes this header (ring hash / Maglev clusters); a client's
        // own is never hashed.
        match self.hash_input.take() {
            Some(h) => put(s, HASH_HEADER, &h),
            None if control && headers.get(HASH_HEADER).is_some() => {
                s.remove_header(HeaderKind::Request, HASH_HEADER)
            }
            None => {}
        }
        if self.config.metadata == MetadataLevel::Full {
            meta.push("cluster", Cow::Owned(cluster.into_owned()));
        }
        meta.flush(s);
        // Envoy picked the route before this filter ran: re-match so the route table sees
        // our headers (and the rewritten authority/path), or, in the generated table whose
        // catch-all route reads x-waypoint-cluster itself, only recompute that route's
        // cluster (Envoy's refreshRouteCluster: no second match).
        if rematch {
            s.clear_route_cache();
        } else {
            s.refresh_route_cluster();
        }
        if let Some(delay) = fwd.fault_delay.filter(|d| !d.is_zero()) {
            if self.delay(s, delay) {
                return HeadersStatus::StopAllIterationAndBuffer;
            }
        }
        self.phase = Phase::Forwarded;
        HeadersStatus::Continue
    }

    /// A workload-addressed request: to the original destination's `passthrough|ip:port`
    /// cluster as it came (Istio's `direct-http` chain: no route, no router headers).
    fn passthrough<S: StreamHandle>(
        &mut self,
        s: &mut S,
        addr: std::net::SocketAddr,
        headers: &HeaderBlock,
        mut meta: Meta<'_>,
    ) -> HeadersStatus {
        // Router control headers a client sent must not steer Envoy's router.
        if headers.has_control_headers() {
            for h in ROUTER_HEADERS {
                if headers.get(h).is_some() {
                    s.remove_header(HeaderKind::Request, h);
                }
            }
            if headers.get(HASH_HEADER).is_some() {
                s.remove_header(HeaderKind::Request, HASH_HEADER);
            }
        }
        let cluster = waypoint_core::names::passthrough_cluster_name(addr);
        s.set_header(HeaderKind::Request, CLUSTER_HEADER, &cluster);
        if self.config.metadata == MetadataLevel::Full {
            meta.push("cluster", Cow::Owned(cluster));
        }
        meta.flush(s);
        match self.config.route_table {
            RouteTable::Rematch => s.clear_route_cache(),
            RouteTable::Waypoint => s.refresh_route_cluster(),
        }
        self.phase = Phase::Forwarded;
        HeadersStatus::Continue
    }

    /// Send each mirror (after its percentage roll) as a fire-and-forget callout with the
    /// mutated request headers and `-shadow` appended to the host, as Envoy's shadowing does.
    /// A request with a body is mirrored when its body has arrived: a copy is collected as it
    /// streams upstream (up to `MIRROR_BODY_LIMIT`; the main request is never held back).
    fn mirror<S: StreamHandle>(&mut self, s: &mut S, fwd: &Forwarding<'_>) {
        if fwd.mirrors.is_empty() {
            return;
        }
        let timeout = fwd
            .timeout
            .map(|t| t.as_millis() as u64)
            .unwrap_or(MIRROR_TIMEOUT_MS);
        let targets: Vec<(String, u64)> = fwd
            .mirrors
            .iter()
            .filter(|m| RNG.with(|r| r.borrow_mut().chance(m.percent)))
            .map(|m| {
                let port = m.backend.port.unwrap_or(fwd.port);
                (cluster_name_of(&m.backend, port), timeout)
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        let headers: Vec<(String, String)> = s
            .headers(HeaderKind::Request)
            .iter()
            .filter(|(k, _)| !is_own_header(k))
            .map(|(k, v)| {
                let v = if k == ":authority" {
                    waypoint_core::names::shadow_authority(v)
                } else {
                    v.to_string()
                };
                (k.to_string(), v)
            })
            .collect();
        let pending = PendingMirror {
            targets,
            headers,
            body: Vec::new(),
        };
        if self.bodiless {
            pending.send(s);
        } else {
            self.pending_mirror = Some(Box::new(pending));
        }
    }

    /// Request body data: copied for a pending mirror, sent with it at the end of the body.
    /// Never changes the main request; a panic only drops the mirror.
    pub fn on_request_body<S: StreamHandle>(&mut self, s: &mut S, end_of_stream: bool) {
        if self.pending_mirror.is_none() {
            return;
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            let Some(p) = self.pending_mirror.as_mut() else {
                return;
            };
            s.append_received_request_body(&mut p.body);
            if p.body.len() > MIRROR_BODY_LIMIT {
                s.log(
                    LogLevel::Debug,
                    &format!(
                        "waypoint: request body over {MIRROR_BODY_LIMIT} bytes; mirror skipped"
                    ),
                );
                self.pending_mirror = None;
            } else if end_of_stream {
                if let Some(p) = self.pending_mirror.take() {
                    p.send(s);
                }
            }
        }));
        if r.is_err() {
            self.pending_mirror = None;
            s.log(
                LogLevel::Error,
                "waypoint: panic while mirroring; mirror dropped",
            );
        }
    }

    /// Request trailers end the body: send a pending mirror (without the trailers).
    pub fn on_request_trailers<S: StreamHandle>(&mut self, s: &mut S) {
        if let Some(p) = self.pending_mirror.take() {
            if catch_unwind(AssertUnwindSafe(|| p.send(s))).is_err() {
                s.log(
                    LogLevel::Error,
                    "waypoint: panic while mirroring; mirror dropped",
                );
            }
        }
    }

    /// Arm the shared timer to wake this stream after `delay`; false if that failed (the
    /// caller then goes on without the delay).
    fn delay<S: StreamHandle>(&mut self, s: &mut S, delay: std::time::Duration) -> bool {
        if let Some(wake) = s.scheduler() {
            if timer::schedule(delay, DELAY_EVENT, wake) {
                self.phase = Phase::Delayed;
                return true;
            }
        }
        s.log(
            LogLevel::Warn,
            "waypoint: could not schedule fault delay; not delaying",
        );
        false
    }

    fn response_headers<S: StreamHandle>(&mut self, s: &mut S) -> HeadersStatus {
        for ops in &self.response_ops {
            apply_ops(s, HeaderKind::Response, ops);
        }
        if let Some(h) = self.cors_response.as_deref() {
            for (k, v) in h {
                s.set_header(HeaderKind::Response, k, v);
            }
        }
        HeadersStatus::Continue
    }
}

/// What the connection says about the source and destination.
#[derive(Debug, Default, PartialEq, Eq)]
struct ConnectionFacts {
    principal: Option<String>,
    /// The peer presented more than one SPIFFE ID (a certificate with several URI SANs:
    /// Envoy accepts it and joins them with `,`). An X.509-SVID has exactly one; which one
    /// policy should judge is undefined, so the request is refused.
    several_identities: bool,
    source_ip: Option<IpAddr>,
    destination: Option<String>,
    sni: Option<String>,
}

impl ConnectionFacts {
    fn read<S: StreamHandle>(s: &S, cfg: &FilterConfig) -> Self {
        // mTLS terminated by this listener: the peer certificate's SPIFFE URI SAN. Otherwise
        // an HBONE-terminating listener put the principal into filter state.
        let from_cert = || {
            s.attribute(Attribute::PeerUriSan).and_then(|sans| {
                let mut ids = sans
                    .split(',')
                    .map(str::trim)
                    .filter(|san| san.starts_with("spiffe://"));
                let first = ids.next().map(str::to_string)?;
                // Several: keep them all, so the check below refuses the request.
                let several = ids.next().is_some();
                Some(if several { sans.clone() } else { first })
            })
        };
        let from_state = || s.filter_state(&cfg.principal_key).filter(|p| !p.is_empty());
        let principal = match cfg.principal_from {
            PrincipalFrom::Auto => from_cert().or_else(from_state),
            PrincipalFrom::FilterState => from_state(),
            PrincipalFrom::PeerCertificate => from_cert(),
        };
        // `%DOWNSTREAM_PEER_URI_SAN%` (the HBONE listener's filter state) and the peer
        // attribute list every URI SAN, comma-separated.
        let several_identities = principal.as_deref().is_some_and(|p| {
            p.split(',')
                .filter(|san| san.trim().starts_with("spiffe://"))
                .nth(1)
                .is_some()
        });
        // Only the facts some policy reads: each is a call into Envoy and a copy.
        let needs = cfg.engine.connection_inputs();
        let source_ip = needs
            .source_ip
            .then(|| s.attribute(Attribute::SourceAddress))
            .flatten()
            .and_then(|a| parse_ip(&a));
        let destination = s
            .filter_state(&cfg.destination_key)
            .filter(|d| !d.is_empty());
        let sni = needs
            .sni
            .then(|| s.attribute(Attribute::RequestedServerName))
            .flatten()
            .filter(|n| !n.is_empty());
        ConnectionFacts {
            principal,
            several_identities,
            source_ip,
            destination,
            sni,
        }
    }
}

/// `1.2.3.4:80`, `[::1]:80`, or a bare IP.
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| s.parse::<IpAddr>())
        .ok()
}

/// Header mutations in Envoy's order: set, then add, then remove (Gateway API
/// RequestHeaderModifier; Istio `headers.request` has the same set/add/remove fields).
fn apply_ops<S: StreamHandle>(s: &mut S, kind: HeaderKind, ops: &HeaderOps) {
    for (k, v) in &ops.set {
        s.set_header(kind, k, v);
    }
    for (k, v) in &ops.add {
        s.add_header(kind, k, v);
    }
    for k in &ops.remove {
        s.remove_header(kind, k);
    }
}

/// Text of a caught panic payload.
pub fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".to_string()
    }
}

/// Dynamic metadata (collected into `meta`, written once) and counters for one decision.
fn record<'m, 'd: 'm, S: StreamHandle>(
    config: &'m FilterConfig,
    s: &mut S,
    d: &Decision<'d>,
    meta: &mut Meta<'m>,
) {
    let (route, idx) = config.engine.route(d);
    if let Some(id) = config.metrics.requests {
        // Counted in the module and flushed in batches; Envoy's own labelled counter only for
        // a route the snapshot does not know (never expected).
        if !idx.is_some_and(|i| config.counts.add(d.action, i)) {
            s.increment_counter(id, &[d.action.as_str(), &route], 1);
        }
    }
    let level = config.metadata;
    if level == MetadataLevel::None {
        return;
    }
    meta.push("decision", Cow::Borrowed(d.action.as_str()));
    meta.push("route", route);
    if level == MetadataLevel::Full {
        if let Some(svc) = d.service {
            meta.push("service", Cow::Borrowed(svc.hostname.as_str()));
        }
    }
    // Which policies decided is what one needs to debug a deny; on allowed requests it is
    // written only at `full` (each key is a metadata merge in Envoy).
    if !d.policies.is_empty() && (level == MetadataLevel::Full || d.action == Action::Deny) {
        let policies = d
            .policies
            .iter()
            .map(|p| {
                format!(
                    "{} {}/{} {}{}",
                    p.action,
                    p.policy.namespace,
                    p.policy.name,
                    if p.matched { "matched" } else { "not-matched" },
                    if p.dry_run { " dry-run" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        meta.push("policy", Cow::Owned(policies));
    }
}

/// Dynamic metadata of one decision, written with one batched call (one metadata merge in
/// Envoy instead of one per key).
#[derive(Debug, Default)]
pub(crate) struct Meta<'a> {
    entries: SmallVec<[(&'static str, Cow<'a, str>); 6]>,
}

impl<'a> Meta<'a> {
    fn push(&mut self, key: &'static str, value: Cow<'a, str>) {
        self.entries.push((key, value));
    }

    /// Write everything collected so far (a no-op when empty).
    fn flush<S: StreamHandle>(&mut self, s: &mut S) {
        if self.entries.is_empty() {
            return;
        }
        {
            let pairs: SmallVec<[(&str, &str); 6]> =
                self.entries.iter().map(|(k, v)| (*k, v.as_ref())).collect();
            s.set_metadata_batch(METADATA_NS, &pairs);
        }
        self.entries.clear();
    }
}
