//! What the module hands Envoy's router: the headers it owns (cluster choice, retry-route
//! steering, timeouts and retries) and Istio's cluster names. Depends on the core only.

use std::time::Duration;

use waypoint_core::istio::is_default_retry_policy;
use waypoint_core::route::{BackendRef, RetryPolicy};

// Shared with the proxy-wasm filter (filter/wasm): they live in the core.
pub use waypoint_core::router_headers::{
    hash_input, router_header_values, CLUSTER_HEADER, HASH_HEADER, ROUTER_HEADERS,
};

/// Request header that steers the `waypoint` route table to its route without retry
/// conditions, for rules whose retry policy is not Istio's default (removed upstream too).
pub const RETRY_HEADER: &str = "x-waypoint-retry";

/// Request header naming the rule whose generated route carries an EnvoyFilter's per-rule
/// rate limits (`vhost.route.name`); the route table matches it, and removes it upstream.
pub const ROUTE_HEADER: &str = "x-waypoint-route";

/// Istio's cluster name: `outbound|<port>|<subset>|<host>`. We keep Istio's convention so one
/// Envoy config (or an xDS server generating it) can hold one cluster per service/port/subset
/// and the filter selects among them with `cluster_header`; the router then does load
/// balancing, timeouts, retries and outlier detection per cluster as in Istio.
pub fn cluster_name_of(b: &BackendRef, port: u16) -> String {
    waypoint_core::names::cluster_name(port, b.subset.as_deref().unwrap_or(""), &b.host)
}

/// The router control headers of one forwarding rule, for both route-table layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPlan {
    /// `RouteTable::Rematch`: every timeout and retry header.
    pub all: Vec<(&'static str, String)>,
    /// `RouteTable::Waypoint`: the headers to send ...
    pub waypoint: Vec<(&'static str, String)>,
    /// ... and whether Envoy must match the table again (to reach the `x-waypoint-retry`
    /// route, for a retry policy other than Istio's default).
    pub waypoint_rematch: bool,
}

impl RouterPlan {
    pub fn new(
        timeout: Option<Duration>,
        retries: Option<&RetryPolicy>,
        backend_timeout: Option<Duration>,
    ) -> RouterPlan {
        let all = router_header_values(timeout, retries, backend_timeout);
        let (waypoint, waypoint_rematch) = match retries {
            // The catch-all route carries this very policy (and Istio's host predicates).
            Some(r) if is_default_retry_policy(r) => {
                (router_header_values(timeout, None, backend_timeout), false)
            }
            // No retries, or other conditions than the route's: the retry route has none, so
            // the headers say everything (no x-envoy-retry-on there = no retries).
            _ => {
                let mut h = vec![(RETRY_HEADER, "1".to_string())];
                h.extend(all.iter().cloned());
                (h, true)
            }
        };
        RouterPlan {
            all,
            waypoint,
            waypoint_rematch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_plan_restates_only_what_the_waypoint_table_lacks() {
        let default = waypoint_core::istio::default_retry_policy();
        let custom = RetryPolicy {
            attempts: 3,
            retry_on: vec!["5xx".into()],
            ..default.clone()
        };
        let timeout = Some(Duration::from_millis(1500));
        // Istio's default retries: the catch-all route has them; only the timeout is sent.
        let p = RouterPlan::new(timeout, Some(&default), None);
        assert!(!p.waypoint_rematch);
        assert_eq!(
            p.waypoint,
            vec![("x-envoy-upstream-rq-timeout-ms", "1500".to_string())]
        );
        assert!(p.all.iter().any(|(k, _)| *k == "x-envoy-retry-on"));
        // Other retries: steer to the retry route and state them in headers.
        let p = RouterPlan::new(None, Some(&custom), None);
        assert!(p.waypoint_rematch);
        assert_eq!(p.waypoint[0], (RETRY_HEADER, "1".to_string()));
        assert_eq!(&p.waypoint[1..], p.all.as_slice());
        assert!(p.all.contains(&("x-envoy-max-retries", "3".to_string())));
        assert!(p.all.contains(&("x-envoy-retry-on", "5xx".to_string())));
        // No retries (Istio: attempts 0 means no retry policy): the retry route, no conditions.
        let p = RouterPlan::new(None, None, None);
        assert!(p.waypoint_rematch);
        assert_eq!(p.waypoint, vec![(RETRY_HEADER, "1".to_string())]);
        assert!(p.all.is_empty());
    }
}
