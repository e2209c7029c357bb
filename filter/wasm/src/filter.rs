//! Per-request logic over the `Stream` trait: read the request and connection facts, call the
//! core, and apply its decision (cluster header, header ops, rewrites, local replies).

use waypoint_core::decision::{Action, Decision, Forwarding, LocalResponse};
use waypoint_core::route::HeaderOps;
use waypoint_core::router_headers::{
    hash_input, router_header_values, CLUSTER_HEADER, HASH_HEADER, ROUTER_HEADERS,
};
use waypoint_core::{CorsAction, RandomSource, Request};

use crate::config::{PrincipalFrom, WasmConfig};

/// Body of an authorization deny, the same as Envoy's RBAC filter (and the module) sends.
pub const DENY_BODY: &str = "RBAC: access denied";

/// What the filter needs from the host: the proxy-wasm calls, behind a trait so the logic is
/// tested without Envoy.
pub trait Stream {
    /// Every request header (name, value), in order.
    fn request_headers(&self) -> Vec<(String, String)>;
    /// An Envoy attribute (`["connection", "uri_san_peer_certificate"]`) as text.
    fn property(&self, path: &[&str]) -> Option<String>;
    /// Set (`Some`) or remove (`None`) a request header.
    fn set_request_header(&mut self, name: &str, value: Option<&str>);
    fn add_request_header(&mut self, name: &str, value: &str);
    fn set_response_header(&mut self, name: &str, value: Option<&str>);
    fn add_response_header(&mut self, name: &str, value: &str);
    /// Answer locally (the request goes no further).
    fn send_reply(&mut self, status: u16, headers: &[(&str, &str)], body: &str);
    fn log_warn(&self, msg: &str);
}

/// What the request-headers hook tells the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Go on to the router.
    Continue,
    /// Replied locally.
    Replied,
    /// Hold the request for the fault delay, then forward (`None`) or send the abort.
    Delay(std::time::Duration, Option<LocalResponse>),
}

/// Per-request state kept for the response.
#[derive(Debug, Default)]
pub struct RequestState {
    /// Route response header ops to apply (owned copies of the non-empty ones).
    pub response_ops: Vec<HeaderOps>,
    /// `access-control-*` headers of an allowed CORS origin.
    pub cors_response: Vec<(&'static str, String)>,
}

/// Decide one request and apply the decision.
pub fn on_request<S: Stream>(
    cfg: &WasmConfig,
    s: &mut S,
    rng: &mut dyn RandomSource,
    state: &mut RequestState,
) -> Outcome {
    let headers = s.request_headers();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let principal = principal(cfg, s);
    // Several SPIFFE IDs (`%DOWNSTREAM_PEER_URI_SAN%` joins them with `,`): which one policy
    // should judge is undefined, so the request is refused, as the module does.
    let several = principal.as_deref().is_some_and(|p| {
        p.split(',')
            .filter(|san| san.trim().starts_with("spiffe://"))
            .nth(1)
            .is_some()
    });
    if several {
        s.send_reply(403, &[], DENY_BODY);
        return Outcome::Replied;
    }
    let destination = s
        .property(&["filter_state", &cfg.destination_key])
        .filter(|d| !d.is_empty());
    let inputs = cfg.snapshot.connection_inputs();
    let source_ip = inputs
        .source_ip
        .then(|| s.property(&["source", "address"]))
        .flatten()
        .and_then(|a| parse_ip(&a));
    let sni = inputs
        .sni
        .then(|| s.property(&["connection", "requested_server_name"]))
        .flatten()
        .filter(|n| !n.is_empty());
    let authority = get(":authority").or_else(|| get("host")).unwrap_or("");
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = Request {
        method: get(":method").unwrap_or("GET"),
        scheme: get(":scheme").unwrap_or("http"),
        authority,
        path: get(":path").unwrap_or("/"),
        headers: &pairs,
        source_principal: principal.as_deref(),
        source_ip,
        // As the module: the listener's original destination, else the router's
        // `x-envoy-original-dst-host`, else the authority.
        destination: destination
            .as_deref()
            .or_else(|| get("x-envoy-original-dst-host"))
            .unwrap_or(authority),
        sni: sni.as_deref(),
    };
    let d = cfg.snapshot.decide(&req, rng, false);
    let hash = d.forward.as_ref().and_then(|f| hash_input(f, &req));
    let origin = get("origin").map(str::to_string);
    let acrm = get("access-control-request-method").is_some();
    let method = req.method.to_string();
    let present: Vec<&str> = ROUTER_HEADERS
        .iter()
        .chain([&HASH_HEADER, &CLUSTER_HEADER])
        .copied()
        .filter(|h| get(h).is_some())
        .collect();
    apply(
        s,
        &d,
        state,
        &Client {
            method: &method,
            origin: origin.as_deref(),
            acrm,
            present: &present,
            hash: hash.as_deref(),
        },
    )
}

/// What applying reads of the client's request.
struct Client<'a> {
    method: &'a str,
    origin: Option<&'a str>,
    acrm: bool,
    /// Router control headers the client sent (removed before ours are set).
    present: &'a [&'a str],
    hash: Option<&'a str>,
}

fn apply<S: Stream>(
    s: &mut S,
    d: &Decision<'_>,
    state: &mut RequestState,
    client: &Client<'_>,
) -> Outcome {
    // A CUSTOM (ext_authz) provider needs a native ext_authz filter the Wasm filter cannot
    // enable per request: fail closed, as Envoy's ext_authz with failure_mode_allow=false.
    if let Some(provider) = d.ext_authz {
        s.log_warn(&format!(
            "waypoint: CUSTOM provider {provider:?} is not supported by the Wasm filter; denying"
        ));
        s.send_reply(403, &[], DENY_BODY);
        return Outcome::Replied;
    }
    match (d.action, &d.forward, &d.local) {
        (Action::Route, Some(fwd), _) => forward(s, fwd, state, client),
        // A workload-addressed request goes as it came to its original destination's cluster
        // (Istio's `direct-http` chain: no route applies).
        (Action::Passthrough, _, _) if d.passthrough.is_some() => {
            for h in client.present {
                s.set_request_header(h, None);
            }
            if let Some(addr) = d.passthrough {
                let cluster = waypoint_core::names::passthrough_cluster_name(addr);
                s.set_request_header(CLUSTER_HEADER, Some(&cluster));
            }
            Outcome::Continue
        }
        (action, fwd, Some(local)) => {
            let delay = fwd
                .as_ref()
                .and_then(|f| f.fault_delay)
                .filter(|t| !t.is_zero() && action == Action::FaultAbort);
            match delay {
                Some(t) => Outcome::Delay(t, Some(local.clone())),
                None => {
                    reply(s, action, local);
                    Outcome::Replied
                }
            }
        }
        // A decision without its payload is a core bug: fail closed.
        (action, _, None) => {
            let (status, body) = if action == Action::Deny {
                (403, DENY_BODY)
            } else {
                (500, "")
            };
            s.send_reply(status, &[], body);
            Outcome::Replied
        }
    }
}

/// Send a decision's local reply (already in Envoy's form: text/plain, or gRPC).
pub fn reply<S: Stream>(s: &mut S, action: Action, local: &LocalResponse) {
    let body = if action == Action::Deny && local.body.is_empty() {
        DENY_BODY
    } else {
        local.body.as_str()
    };
    let headers: Vec<(&str, &str)> = local
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    s.send_reply(local.status, &headers, body);
}

fn forward<S: Stream>(
    s: &mut S,
    fwd: &Forwarding<'_>,
    state: &mut RequestState,
    client: &Client<'_>,
) -> Outcome {
    // CORS preflight is answered here, as Envoy's CORS filter does before routing.
    if let Some(cors) = fwd.cors {
        match cors.evaluate(client.method, client.origin, client.acrm) {
            CorsAction::None => {}
            CorsAction::Preflight(h) => {
                let headers: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
                s.send_reply(200, &headers, "");
                return Outcome::Replied;
            }
            CorsAction::Decorate(h) => state.cors_response = h,
        }
    }
    for ops in fwd.request_headers.iter().filter(|o| !o.is_empty()) {
        apply_ops(s, ops, Side::Request);
    }
    state.response_ops = fwd
        .response_headers
        .iter()
        .filter(|o| !o.is_empty())
        .map(|o| (*o).clone())
        .collect();
    if let Some(path) = &fwd.path {
        s.set_request_header(":path", Some(path));
    }
    if let Some(authority) = &fwd.authority {
        s.set_request_header(":authority", Some(authority));
    }
    // A client's router control headers must not steer Envoy's router.
    for h in client.present {
        s.set_request_header(h, None);
    }
    for (name, value) in router_header_values(fwd.timeout, fwd.retries, fwd.backend_timeout) {
        s.set_request_header(name, Some(&value));
    }
    if let Some(h) = client.hash {
        s.set_request_header(HASH_HEADER, Some(h));
    }
    let cluster = waypoint_core::names::cluster_name(
        fwd.port,
        fwd.backend.subset.as_deref().unwrap_or(""),
        &fwd.backend.host,
    );
    // Envoy's Wasm host clears the route cache when a filter changes request headers, so the
    // route table matches again and its `cluster_header` route reads this.
    s.set_request_header(CLUSTER_HEADER, Some(&cluster));
    match fwd.fault_delay.filter(|t| !t.is_zero()) {
        Some(t) => Outcome::Delay(t, None),
        None => Outcome::Continue,
    }
}

/// Response headers: the route's response header ops and CORS headers.
pub fn on_response<S: Stream>(s: &mut S, state: &RequestState) {
    for ops in &state.response_ops {
        apply_ops(s, ops, Side::Response);
    }
    for (k, v) in &state.cors_response {
        s.set_response_header(k, Some(v));
    }
}

#[derive(Clone, Copy)]
enum Side {
    Request,
    Response,
}

/// Header mutations in Envoy's order: set, then add, then remove.
fn apply_ops<S: Stream>(s: &mut S, ops: &HeaderOps, side: Side) {
    for (k, v) in &ops.set {
        match side {
            Side::Request => s.set_request_header(k, Some(v)),
            Side::Response => s.set_response_header(k, Some(v)),
        }
    }
    for (k, v) in &ops.add {
        match side {
            Side::Request => s.add_request_header(k, v),
            Side::Response => s.add_response_header(k, v),
        }
    }
    for k in &ops.remove {
        match side {
            Side::Request => s.set_request_header(k, None),
            Side::Response => s.set_response_header(k, None),
        }
    }
}

/// The source principal: the peer certificate's URI SAN (mTLS on this listener), else the
/// filter state an HBONE-terminating listener left, as `principal_from` says.
fn principal<S: Stream>(cfg: &WasmConfig, s: &S) -> Option<String> {
    let from_cert = || {
        s.property(&["connection", "uri_san_peer_certificate"])
            .filter(|p| p.starts_with("spiffe://"))
    };
    let from_state = || {
        s.property(&["filter_state", &cfg.principal_key])
            .filter(|p| !p.is_empty())
    };
    match cfg.principal_from {
        PrincipalFrom::Auto => from_cert().or_else(from_state),
        PrincipalFrom::FilterState => from_state(),
        PrincipalFrom::PeerCertificate => from_cert(),
    }
}

/// `1.2.3.4:80`, `[::1]:80`, or a bare IP.
fn parse_ip(s: &str) -> Option<std::net::IpAddr> {
    s.parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| s.parse::<std::net::IpAddr>())
        .ok()
}
