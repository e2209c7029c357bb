//! DestinationRule compiler tests: errors with field paths, load balancers, connection pools,
//! outlier detection, port-level overrides, subsets and ignored-but-valid fields.

use std::time::Duration;

use crate::route::{HashKey, LoadBalancer};

use super::test_support::*;

#[test]
fn errors_name_field_paths() {
    let cases: Vec<(&str, &str)> = vec![
        ("host: reviews\nbogus: 1\n", "spec"),
        ("trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n", "spec.host"),
        ("host: reviews\ntrafficPolicy: {}\n", "spec.trafficPolicy"),
        ("host: reviews\ntrafficPolicy: {loadBalancer: {simple: FASTEST}}\n", "spec.trafficPolicy.loadBalancer.simple"),
        ("host: reviews\ntrafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}\n", "spec.trafficPolicy.loadBalancer"),
        ("host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x, useSourceIp: true}}}\n", "spec.trafficPolicy.loadBalancer.consistentHash"),
        ("host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {ttl: 1s}}}}\n", "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name"),
        ("host: reviews\ntrafficPolicy: {connectionPool: {}}\n", "spec.trafficPolicy.connectionPool"),
        ("host: reviews\ntrafficPolicy: {connectionPool: {tcp: {maxConnections: -1}}}\n", "spec.trafficPolicy.connectionPool.tcp.maxConnections"),
        ("host: reviews\ntrafficPolicy: {connectionPool: {tcp: {connectTimeout: 0s}}}\n", "spec.trafficPolicy.connectionPool.tcp.connectTimeout"),
        ("host: reviews\ntrafficPolicy: {connectionPool: {http: {http2MaxRequests: abc}}}\n", "spec.trafficPolicy.connectionPool.http.http2MaxRequests"),
        ("host: reviews\ntrafficPolicy: {outlierDetection: {maxEjectionPercent: 120}}\n", "spec.trafficPolicy.outlierDetection.maxEjectionPercent"),
        ("host: reviews\ntrafficPolicy: {outlierDetection: {interval: 5}}\n", "spec.trafficPolicy.outlierDetection.interval"),
        ("host: reviews\ntrafficPolicy: {portLevelSettings: [{port: {number: 80}}]}\n", "spec.trafficPolicy.portLevelSettings[0]"),
        ("host: reviews\ntrafficPolicy: {portLevelSettings: [{loadBalancer: {simple: RANDOM}}]}\n", "spec.trafficPolicy.portLevelSettings[0].port"),
        ("host: reviews\nsubsets:\n- name: v1\n- name: v1\n", "spec.subsets[1].name"),
        ("host: reviews\nsubsets:\n- labels: {version: v1}\n", "spec.subsets[0].name"),
        ("host: reviews\nsubsets:\n- name: v_1\n", "spec.subsets[0].name"),
        ("host: a..b\n", "spec.host"),
        ("host: reviews\nexportTo: ['*', other]\n", "spec.exportTo"),
        ("host: reviews\nexportTo: [other]\nworkloadSelector: {matchLabels: {app: a}}\n", "spec.exportTo"),
        ("host: reviews\nsubsets:\n- name: v1\n  trafficPolicy: {loadBalancer: {simple: NOPE}}\n", "spec.subsets[0].trafficPolicy.loadBalancer.simple"),
    ];
    for (spec, field) in cases {
        let (dr, d) = compile_dr(spec);
        assert!(dr.is_none(), "expected rejection for:\n{spec}");
        let fields = error_fields(&d);
        assert!(
            fields
                .iter()
                .any(|f| f == field || f.starts_with(&format!("{field}."))),
            "expected an error at {field}, got {:?}\nspec:\n{spec}",
            d.errors
        );
    }
}

#[test]
fn load_balancers() {
    let cases: Vec<(&str, Option<LoadBalancer>)> = vec![
        ("{simple: ROUND_ROBIN}", Some(LoadBalancer::RoundRobin)),
        ("{simple: LEAST_REQUEST}", Some(LoadBalancer::LeastRequest)),
        ("{simple: LEAST_CONN}", Some(LoadBalancer::LeastRequest)),
        ("{simple: RANDOM}", Some(LoadBalancer::Random)),
        ("{simple: PASSTHROUGH}", Some(LoadBalancer::Passthrough)),
        ("{simple: UNSPECIFIED}", None),
        (
            "{consistentHash: {httpHeaderName: X-User}}",
            Some(LoadBalancer::ConsistentHash(HashKey::Header(
                "x-user".into(),
            ))),
        ),
        (
            "{consistentHash: {httpCookie: {name: session, ttl: 0s}}}",
            Some(LoadBalancer::ConsistentHash(HashKey::Cookie(
                "session".into(),
            ))),
        ),
        (
            "{consistentHash: {useSourceIp: true}}",
            Some(LoadBalancer::ConsistentHash(HashKey::SourceIp)),
        ),
        (
            "{consistentHash: {httpQueryParameterName: user}}",
            Some(LoadBalancer::ConsistentHash(HashKey::QueryParameter(
                "user".into(),
            ))),
        ),
        (
            "{consistentHash: {httpHeaderName: x, ringHash: {minimumRingSize: 1024}}}",
            Some(LoadBalancer::ConsistentHash(HashKey::Header("x".into()))),
        ),
        (
            "{consistentHash: {httpHeaderName: x, maglev: {tableSize: 65537}}}",
            Some(LoadBalancer::Maglev(HashKey::Header("x".into()))),
        ),
    ];
    for (lb, want) in cases {
        let (dr, d) = compile_dr(&format!(
            "host: reviews\ntrafficPolicy:\n  loadBalancer: {lb}\n"
        ));
        let dr = dr.unwrap_or_else(|| panic!("{lb}: {:?}", d.errors));
        assert_eq!(dr.policy.traffic_policy.load_balancer, want, "{lb}");
    }
}

#[test]
fn pool_outlier_ports_and_subsets() {
    let (dr, d) = compile_dr(
        "host: reviews\ntrafficPolicy:\n  loadBalancer: {simple: LEAST_REQUEST}\n  connectionPool:\n    tcp: {maxConnections: 100, connectTimeout: 30ms, tcpKeepalive: {time: 7200s}}\n    http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 1, maxRetries: 3, idleTimeout: 30s}\n  outlierDetection: {consecutive5xxErrors: 7, consecutiveGatewayErrors: 5, interval: 5m, baseEjectionTime: 15m, maxEjectionPercent: 50}\n  portLevelSettings:\n  - port: {number: 9080}\n    loadBalancer: {simple: RANDOM}\n  tls: {mode: SIMPLE}\nsubsets:\n- name: v1\n  labels: {version: v1}\n- name: v2\n  labels: {version: v2}\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n",
    );
    let dr = dr.unwrap_or_else(|| panic!("{:?}", d.errors));
    assert_eq!(dr.host, "reviews.default.svc.cluster.local");
    assert_eq!(dr.policy.source, "DestinationRule/default/dr");
    let tp = &dr.policy.traffic_policy;
    let cp = tp.connection_pool.clone().expect("pool");
    assert_eq!(cp.max_connections, Some(100));
    assert_eq!(cp.connect_timeout, Some(Duration::from_millis(30)));
    assert_eq!(cp.http1_max_pending_requests, Some(10));
    assert_eq!(cp.http2_max_requests, Some(1000));
    assert_eq!(cp.max_requests_per_connection, Some(1));
    assert_eq!(cp.max_retries, Some(3));
    assert_eq!(cp.idle_timeout, Some(Duration::from_secs(30)));
    let od = tp.outlier_detection.clone().expect("outlier");
    assert_eq!(od.consecutive_5xx_errors, Some(7));
    assert_eq!(od.consecutive_gateway_errors, Some(5));
    assert_eq!(od.interval, Some(Duration::from_secs(300)));
    assert_eq!(od.base_ejection_time, Some(Duration::from_secs(900)));
    assert_eq!(od.max_ejection_percent, Some(50));
    // Port-level settings replace the rule-level policy for that port (unset fields too).
    let p = dr.policy.port_policies.get(&9080).expect("port policy");
    assert_eq!(p.load_balancer, Some(LoadBalancer::Random));
    assert_eq!(p.connection_pool, None);
    // Subsets: labels, and the subset's own fields over the rule's.
    let v1 = dr.policy.subsets.get("v1").expect("v1");
    assert_eq!(v1.labels.get("version").map(String::as_str), Some("v1"));
    assert!(v1.traffic_policy.is_none());
    let v2 = dr
        .policy
        .subsets
        .get("v2")
        .and_then(|s| s.traffic_policy.clone())
        .expect("v2 policy");
    assert_eq!(v2.load_balancer, Some(LoadBalancer::RoundRobin));
    assert_eq!(v2.connection_pool, tp.connection_pool);
    // Ignored-but-valid fields are warnings naming them.
    let warned: Vec<&str> = d.warnings.iter().map(|w| w.field.as_str()).collect();
    assert!(
        warned.contains(&"spec.trafficPolicy.tls.mode"),
        "{warned:?}"
    );
    assert!(
        warned.contains(&"spec.trafficPolicy.connectionPool.tcp.tcpKeepalive"),
        "{warned:?}"
    );
}

/// The policy of each cluster (subset × port) as pilot `MergeTrafficPolicy` resolves it.
#[test]
fn cluster_policies_merge_subsets_and_ports() {
    let (dr, d) = compile_dr(
        "host: reviews\ntrafficPolicy:\n  loadBalancer: {simple: LEAST_REQUEST}\n  connectionPool: {tcp: {maxConnections: 5}}\n  portLevelSettings:\n  - port: {number: 9080}\n    loadBalancer: {simple: RANDOM}\n  - port: {number: 9081}\n    outlierDetection: {consecutive5xxErrors: 2}\nsubsets:\n- name: v1\n  labels: {version: v1}\n- name: v2\n  labels: {version: v2}\n  trafficPolicy:\n    connectionPool: {http: {http1MaxPendingRequests: 1}}\n    portLevelSettings:\n    - port: {number: 9081}\n      loadBalancer: {consistentHash: {useSourceIp: true}}\n",
    );
    let dr = dr.unwrap_or_else(|| panic!("{:?}", d.errors));
    let p = &dr.policy;
    let lb = |subset: Option<&str>, port: u16| {
        p.policy_for(subset, port)
            .map(|t| (t.load_balancer.clone(), t.connection_pool.clone()))
    };
    let top_pool = p.traffic_policy.connection_pool.clone();
    let v2_pool = p.subsets["v2"]
        .traffic_policy
        .as_ref()
        .and_then(|t| t.connection_pool.clone());
    assert_eq!(
        v2_pool.as_ref().and_then(|c| c.http1_max_pending_requests),
        Some(1)
    );
    let cases = [
        (
            None,
            80,
            Some((Some(LoadBalancer::LeastRequest), top_pool.clone())),
        ),
        // Port-level settings replace the whole policy (the pool is not inherited).
        (None, 9080, Some((Some(LoadBalancer::Random), None))),
        // A subset without a policy takes the rule's, port-level included.
        (Some("v1"), 9080, Some((Some(LoadBalancer::Random), None))),
        // A subset's fields over the rule's, for the rule's port-level settings too.
        (
            Some("v2"),
            80,
            Some((Some(LoadBalancer::LeastRequest), v2_pool.clone())),
        ),
        (
            Some("v2"),
            9080,
            Some((Some(LoadBalancer::Random), v2_pool.clone())),
        ),
        // The subset's own port-level settings win for their port.
        (
            Some("v2"),
            9081,
            Some((Some(LoadBalancer::ConsistentHash(HashKey::SourceIp)), None)),
        ),
        (Some("v3"), 80, None),
    ];
    for (subset, port, want) in cases {
        assert_eq!(lb(subset, port), want, "{subset:?} {port}");
    }
}

#[test]
fn unsupported_settings_are_warnings() {
    let (dr, d) = compile_dr(
        "host: reviews\ntrafficPolicy:\n  tls: {mode: ISTIO_MUTUAL}\n  loadBalancer:\n    simple: ROUND_ROBIN\n    localityLbSetting: {enabled: true}\n  portLevelSettings:\n  - port: {number: 80}\n    tls: {mode: MUTUAL}\nsubsets:\n- name: v1\n  trafficPolicy: {tls: {mode: DISABLE}, loadBalancer: {simple: PASSTHROUGH}}\n",
    );
    assert!(dr.is_some(), "{:?}", d.errors);
    let warned: Vec<&str> = d.warnings.iter().map(|w| w.field.as_str()).collect();
    for field in [
        "spec.trafficPolicy.loadBalancer.localityLbSetting",
        "spec.trafficPolicy.portLevelSettings[0].tls.mode",
        "spec.subsets[0].trafficPolicy.tls.mode",
        "spec.subsets[0].trafficPolicy.loadBalancer.simple",
    ] {
        assert!(warned.contains(&field), "{field} not in {warned:?}");
    }
    // ISTIO_MUTUAL is what HBONE does: no warning.
    assert!(
        !warned.contains(&"spec.trafficPolicy.tls.mode"),
        "{warned:?}"
    );
    let (_, d) = compile_dr("host: reviews\ntrafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x, ringHash: {}, maglev: {}}}}\n");
    assert!(
        error_fields(&d)
            .iter()
            .any(|f| f == "spec.trafficPolicy.loadBalancer.consistentHash"),
        "{:?}",
        d.errors
    );
}

#[test]
fn hosts_selector_and_export() {
    // (host as written, resolved)
    for (host, want) in [
        ("reviews", "reviews.default.svc.cluster.local"),
        (
            "reviews.default.svc.cluster.local",
            "reviews.default.svc.cluster.local",
        ),
        ("api2.example.com", "api2.example.com"),
        ("ghost", "ghost.default.svc.cluster.local"),
        ("*.example.org", "*.example.org"),
    ] {
        let (dr, d) = compile_dr(&format!("host: '{host}'\n"));
        let dr = dr.unwrap_or_else(|| panic!("{host}: {:?}", d.errors));
        assert_eq!(dr.host, want, "{host}");
    }
    let (dr, d) = compile_dr(
        "host: reviews\nexportTo: ['.']\nworkloadSelector: {matchLabels: {app: reviews}}\n",
    );
    let dr = dr.expect("compiles");
    assert_eq!(dr.export_to, vec!["."]);
    assert_eq!(
        dr.workload_selector
            .and_then(|s| s.get("app").cloned())
            .as_deref(),
        Some("reviews")
    );
    assert!(d
        .warnings
        .iter()
        .any(|w| w.field == "spec.workloadSelector"));
}

#[test]
fn merging_rules_for_one_host() {
    let compile = |name: &str, seq: usize, spec: &str| {
        let mut r = raw(&dr_yaml(spec).replace("name: dr", &format!("name: {name}")));
        r.seq = seq;
        let (dr, d) = super::compile_destination_rule(&r, &bookinfo());
        dr.unwrap_or_else(|| panic!("{:?}", d.errors))
    };
    let a = compile(
        "a",
        0,
        "host: reviews\nsubsets:\n- name: v1\n  labels: {version: v1}\n",
    );
    let b = compile("b", 1, "host: reviews\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}\nsubsets:\n- name: v1\n  labels: {version: other}\n- name: v2\n  labels: {version: v2}\n");
    let c = compile(
        "c",
        2,
        "host: reviews\ntrafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n",
    );
    let sel = compile(
        "sel",
        3,
        "host: reviews\nworkloadSelector: {matchLabels: {app: x}}\nsubsets:\n- name: v9\n",
    );
    let m = super::merge_destination_rules(&[&c, &sel, &b, &a]).expect("merged");
    assert_eq!(m.source, "DestinationRule/default/a");
    // a has no policy, so the oldest one that has one (b) supplies it.
    assert_eq!(m.traffic_policy.load_balancer, Some(LoadBalancer::Random));
    let names: Vec<&str> = m.subsets.keys().map(String::as_str).collect();
    assert_eq!(names, vec!["v1", "v2"]);
    assert_eq!(
        m.subsets["v1"].labels.get("version").map(String::as_str),
        Some("v1")
    );
    assert!(super::merge_destination_rules(&[&sel]).is_none());
}
