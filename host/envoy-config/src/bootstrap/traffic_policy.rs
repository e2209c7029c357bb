//! A DestinationRule traffic policy as Envoy cluster settings (pilot
//! `cluster_traffic_policy.go`): load balancer, circuit breakers, timeouts, outlier detection.

use std::time::Duration;

use serde_json::{json, Value};
use waypoint_core::route::{ConnectionPool, LoadBalancer, OutlierDetection, TrafficPolicy};

use super::hardening::duration;

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Request header the module writes the consistent-hash input into (`router::HASH_HEADER` of
/// the module); the waypoint routes hash it, the router's upstream filter removes it.
pub const HASH_HEADER: &str = "x-waypoint-hash";

/// The router of the L7 listener, with an upstream filter removing [`HASH_HEADER`] from what
/// goes upstream. Not the route's `request_headers_to_remove`: Envoy 1.40 applies that before
/// the ring hash reads the header (every request then hashed to nothing, a random endpoint).
pub fn router_dropping_hash_header() -> Value {
    json!({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
        "upstream_http_filters": [
            {"name": "envoy.filters.http.header_mutation", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {"request_mutations": [{"remove": HASH_HEADER}]}}},
            {"name": "envoy.filters.http.upstream_codec", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"}}]}})
}

/// The route `hash_policy` of the waypoint routes: the header the module fills for clusters
/// with a consistent-hash balancer (Envoy ignores it for the others). Istio puts the key
/// itself on each route (route.go `consistentHashToHashPolicy`); here routes are shared by
/// every cluster, so the module extracts the key (the core's `HashKey::input`).
pub fn route_hash_policy() -> Value {
    json!([{"header": {"header_name": HASH_HEADER}}])
}

/// Apply `policy` (the cluster's, after subset and port-level merging) to cluster `c`. Every
/// cluster gets Istio's default circuit breakers (`u32::MAX` each, pilot
/// `getDefaultCircuitBreakerThresholds`), with what the rule sets over them.
pub fn apply(c: &mut Value, policy: Option<&TrafficPolicy>) {
    let pool = policy.and_then(|p| p.connection_pool.as_ref());
    apply_pool(c, pool);
    if let Some(od) = policy.and_then(|p| p.outlier_detection.as_ref()) {
        apply_outlier(c, od);
    }
    if let Some(lb) = policy.and_then(|p| p.load_balancer.as_ref()) {
        apply_lb(c, lb);
    }
}

fn apply_pool(c: &mut Value, pool: Option<&ConnectionPool>) {
    // Istio: a value of 0 means "not set" (its FIXME: proto3 cannot tell them apart).
    let limit = |v: Option<u32>| v.filter(|v| *v > 0).unwrap_or(u32::MAX);
    let p = pool.cloned().unwrap_or_default();
    c["circuit_breakers"] = json!({"thresholds": [{
        "max_connections": limit(p.max_connections),
        "max_pending_requests": limit(p.http1_max_pending_requests),
        "max_requests": limit(p.http2_max_requests),
        "max_retries": limit(p.max_retries),
        "track_remaining": true,
    }]});
    if let Some(t) = p.connect_timeout {
        c["connect_timeout"] = json!(duration(t));
    }
    let per_conn = p.max_requests_per_connection.filter(|n| *n > 0);
    if p.idle_timeout.is_none() && per_conn.is_none() {
        return;
    }
    let opts = &mut c["typed_extension_protocol_options"][HTTP_PROTOCOL_OPTIONS];
    if opts.is_null() {
        *opts = json!({
            "@type": format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"),
            "explicit_http_config": {"http_protocol_options": {}}});
    }
    let common = &mut opts["common_http_protocol_options"];
    if let Some(t) = p.idle_timeout {
        common["idle_timeout"] = json!(duration(t));
    }
    if let Some(n) = per_conn {
        common["max_requests_per_connection"] = json!(n);
    }
}

/// Pilot `applyOutlierDetection`: success-rate ejection off, each consecutive-error detector
/// enforced when set (Envoy's default 5 consecutive 5xx otherwise), and the panic threshold
/// at `minHealthPercent` (0 unless set, which the waypoint does not support: every endpoint
/// may be ejected, and then the cluster answers 503 `no healthy upstream`).
fn apply_outlier(c: &mut Value, od: &OutlierDetection) {
    let mut out = json!({"enforcing_success_rate": 0});
    if let Some(n) = od.consecutive_5xx_errors {
        out["consecutive_5xx"] = json!(n);
        out["enforcing_consecutive_5xx"] = json!(if n > 0 { 100 } else { 0 });
    }
    if let Some(n) = od.consecutive_gateway_errors {
        out["consecutive_gateway_failure"] = json!(n);
        out["enforcing_consecutive_gateway_failure"] = json!(if n > 0 { 100 } else { 0 });
    }
    let set = |out: &mut Value, key: &str, d: Option<Duration>| {
        if let Some(d) = d {
            out[key] = json!(duration(d));
        }
    };
    set(&mut out, "interval", od.interval);
    set(&mut out, "base_ejection_time", od.base_ejection_time);
    if let Some(p) = od.max_ejection_percent.filter(|p| *p > 0) {
        out["max_ejection_percent"] = json!(p);
    }
    c["outlier_detection"] = out;
    c["common_lb_config"]["healthy_panic_threshold"] = json!({"value": 0.0});
}

/// Pilot `applyLoadBalancer` / `ApplyRingHashLoadBalancer`. Round robin is Envoy's default;
/// PASSTHROUGH (original destination) is not supported and warned about by the core.
fn apply_lb(c: &mut Value, lb: &LoadBalancer) {
    match lb {
        LoadBalancer::RoundRobin | LoadBalancer::Passthrough => {}
        LoadBalancer::LeastRequest => c["lb_policy"] = json!("LEAST_REQUEST"),
        LoadBalancer::Random => c["lb_policy"] = json!("RANDOM"),
        LoadBalancer::ConsistentHash(_) => {
            c["lb_policy"] = json!("RING_HASH");
            c["ring_hash_lb_config"] = json!({"minimum_ring_size": 1024});
        }
        LoadBalancer::Maglev(_) => c["lb_policy"] = json!("MAGLEV"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_core::route::HashKey;

    #[test]
    fn every_cluster_gets_istio_default_thresholds() {
        let mut c = json!({"name": "a"});
        apply(&mut c, None);
        let t = &c["circuit_breakers"]["thresholds"][0];
        for k in [
            "max_connections",
            "max_pending_requests",
            "max_requests",
            "max_retries",
        ] {
            assert_eq!(t[k], json!(u32::MAX), "{k}");
        }
        assert!(c.get("outlier_detection").is_none());
        assert!(c.get("lb_policy").is_none());
        assert!(c.get("typed_extension_protocol_options").is_none());
    }

    #[test]
    fn pool_outlier_and_balancer_translate_as_istio_does() {
        let policy = TrafficPolicy {
            load_balancer: Some(LoadBalancer::ConsistentHash(HashKey::SourceIp)),
            connection_pool: Some(ConnectionPool {
                max_connections: Some(1),
                connect_timeout: Some(Duration::from_millis(250)),
                http1_max_pending_requests: Some(2),
                http2_max_requests: Some(0),
                max_requests_per_connection: Some(1),
                max_retries: Some(4),
                idle_timeout: Some(Duration::from_secs(30)),
            }),
            outlier_detection: Some(OutlierDetection {
                consecutive_5xx_errors: Some(3),
                consecutive_gateway_errors: Some(0),
                interval: Some(Duration::from_secs(1)),
                base_ejection_time: Some(Duration::from_secs(60)),
                max_ejection_percent: Some(50),
            }),
        };
        let mut c = json!({"name": "a", "connect_timeout": "10s"});
        apply(&mut c, Some(&policy));
        let t = &c["circuit_breakers"]["thresholds"][0];
        assert_eq!(t["max_connections"], json!(1));
        assert_eq!(t["max_pending_requests"], json!(2));
        assert_eq!(t["max_requests"], json!(u32::MAX), "0 means unset");
        assert_eq!(t["max_retries"], json!(4));
        assert_eq!(c["connect_timeout"], json!("0.25s"));
        let common = &c["typed_extension_protocol_options"][HTTP_PROTOCOL_OPTIONS]
            ["common_http_protocol_options"];
        assert_eq!(common["idle_timeout"], json!("30s"));
        assert_eq!(common["max_requests_per_connection"], json!(1));
        let od = &c["outlier_detection"];
        assert_eq!(od["consecutive_5xx"], json!(3));
        assert_eq!(od["enforcing_consecutive_5xx"], json!(100));
        assert_eq!(od["enforcing_consecutive_gateway_failure"], json!(0));
        assert_eq!(od["base_ejection_time"], json!("60s"));
        assert_eq!(od["max_ejection_percent"], json!(50));
        assert_eq!(od["enforcing_success_rate"], json!(0));
        assert_eq!(
            c["common_lb_config"]["healthy_panic_threshold"]["value"],
            json!(0.0)
        );
        assert_eq!(c["lb_policy"], json!("RING_HASH"));
        for (lb, want) in [
            (LoadBalancer::LeastRequest, json!("LEAST_REQUEST")),
            (LoadBalancer::Random, json!("RANDOM")),
            (LoadBalancer::Maglev(HashKey::SourceIp), json!("MAGLEV")),
            (LoadBalancer::RoundRobin, Value::Null),
        ] {
            let mut c = json!({});
            let p = TrafficPolicy {
                load_balancer: Some(lb.clone()),
                ..TrafficPolicy::default()
            };
            apply(&mut c, Some(&p));
            assert_eq!(c["lb_policy"], want, "{lb:?}");
        }
    }
}
