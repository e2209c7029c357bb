//! What a filter hands Envoy's router in request headers: the chosen cluster, the hash input,
//! timeouts and retries (`x-envoy-upstream-rq-timeout-ms`...): shared by both adapters.

use std::time::Duration;

use crate::decision::Forwarding;
use crate::route::RetryPolicy;
use crate::Request;

/// Request header the filter writes the chosen cluster into. The Envoy route table has a
/// route matching on its presence with `cluster_header: x-waypoint-cluster` (and removes it
/// before the request goes upstream with `request_headers_to_remove`).
pub const CLUSTER_HEADER: &str = "x-waypoint-cluster";
/// Request header carrying the consistent-hash input the core extracted (DestinationRule
/// `consistentHash`); the generated routes' `hash_policy` hashes it for ring hash and Maglev
/// clusters, and remove it before the request goes upstream.
pub const HASH_HEADER: &str = "x-waypoint-hash";

/// The value a forwarding's consistent-hash key takes for `req` (`None`: no consistent hash,
/// or the request lacks the key and Envoy picks as without a hash).
pub fn hash_input(fwd: &Forwarding<'_>, req: &Request<'_>) -> Option<Box<str>> {
    let key = fwd.traffic_policy?.load_balancer.as_ref()?.hash_key()?;
    key.input(req).map(|v| v.into())
}

/// Envoy router headers we own: removed from every request, then set from the decision, so a
/// client cannot pick its own timeout or retries (Envoy only strips them for external clients).
pub const ROUTER_HEADERS: [&str; 5] = [
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-max-retries",
    "x-envoy-retry-on",
    "x-envoy-retriable-status-codes",
];

/// Router control headers carrying a route's timeout and retry policy (Envoy's
/// `x-envoy-upstream-rq-timeout-ms` and friends).
pub fn router_header_values(
    timeout: Option<Duration>,
    retries: Option<&RetryPolicy>,
    backend_timeout: Option<Duration>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(t) = timeout {
        out.push(("x-envoy-upstream-rq-timeout-ms", t.as_millis().to_string()));
    }
    let per_try = retries.and_then(|r| r.per_try_timeout).or(backend_timeout);
    if let Some(t) = per_try {
        out.push((
            "x-envoy-upstream-rq-per-try-timeout-ms",
            t.as_millis().to_string(),
        ));
    }
    if let Some(r) = retries {
        out.push(("x-envoy-max-retries", r.attempts.to_string()));
        let mut on = r.retry_on.clone();
        if !r.codes.is_empty() {
            if !on.iter().any(|c| c == "retriable-status-codes") {
                on.push("retriable-status-codes".to_string());
            }
            let codes: Vec<String> = r.codes.iter().map(u16::to_string).collect();
            out.push(("x-envoy-retriable-status-codes", codes.join(",")));
        }
        if !on.is_empty() {
            out.push(("x-envoy-retry-on", on.join(",")));
        }
    }
    out
}
