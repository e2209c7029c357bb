//! A listener update (LDS from a file) swaps the module's config snapshot: new requests decide
//! with the new config while a request already in flight finishes with the one it started on.

use std::path::Path;
use std::time::{Duration, Instant};

use waypoint_tests::envoy_harness::{free_port, http_get, scratch_dir, Envoy, Upstream};

fn manifests(default_subset: &str) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: waypoint, namespace: bookinfo}}
spec: {{gatewayClassName: istio-waypoint, listeners: [{{name: mesh, port: 15008, protocol: HBONE}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: bookinfo, labels: {{istio.io/use-waypoint: waypoint}}}}
spec: {{clusterIP: 10.96.0.11, ports: [{{port: 9080, name: http}}]}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: bookinfo}}
spec:
  host: reviews
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: bookinfo}}
spec:
  hosts: [reviews]
  http:
  - name: slow
    match: [{{headers: {{x-slow: {{exact: "1"}}}}}}]
    fault: {{delay: {{fixedDelay: 1500ms, percentage: {{value: 100}}}}}}
    route: [{{destination: {{host: reviews, subset: {default_subset}}}}}]
  - name: default
    route: [{{destination: {{host: reviews, subset: {default_subset}}}}}]
"#
    )
}

fn listener(port: u16, subset: &str) -> serde_json::Value {
    serde_json::json!({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": "waypoint",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "waypoint",
                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                    {"match": {"prefix": "/", "headers": [{"name": "x-waypoint-cluster", "present_match": true}]},
                     "route": {"cluster_header": "x-waypoint-cluster", "timeout": "0s"},
                     "request_headers_to_remove": ["x-waypoint-cluster"]}]}]},
                "http_filters": [
                    {"name": "waypoint", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                        "dynamic_module_config": {"name": "waypoint"},
                        "filter_name": "waypoint",
                        "filter_config": {"@type": "type.googleapis.com/google.protobuf.Struct",
                            "value": {"waypoint": "bookinfo/waypoint", "config_inline": manifests(subset)}}}},
                    {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
                ]
            }
        }]}]
    })
}

/// Write the LDS file atomically (Envoy reloads on a move into the watched directory).
fn write_lds(dir: &Path, port: u16, subset: &str) {
    let body = serde_json::json!({"resources": [listener(port, subset)]});
    let tmp = dir.join("lds.tmp");
    std::fs::write(&tmp, body.to_string()).expect("write lds");
    std::fs::rename(&tmp, dir.join("lds.json")).expect("rename lds");
}

#[test]
fn listener_update_swaps_config_without_touching_in_flight_requests() {
    let dir = scratch_dir("reload");
    let lds_dir = dir.join("lds");
    std::fs::create_dir_all(&lds_dir).expect("mkdir");
    let v1 = Upstream::start("reviews-v1").expect("upstream");
    let v2 = Upstream::start("reviews-v2").expect("upstream");
    let (admin, port) = (free_port(), free_port());
    write_lds(&lds_dir, port, "v1");
    let cluster = |subset: &str, p: u16| {
        let name = format!("outbound|9080|{subset}|reviews.bookinfo.svc.cluster.local");
        serde_json::json!({"name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}]}]}})
    };
    let boot = serde_json::json!({
        "node": {"id": "waypoint-test", "cluster": "waypoint"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "dynamic_resources": {"lds_config": {
            "path_config_source": {"path": lds_dir.join("lds.json").display().to_string(),
                                   "watched_directory": {"path": lds_dir.display().to_string()}},
            "resource_api_version": "V3"}},
        "static_resources": {"clusters": [cluster("v1", v1.port), cluster("v2", v2.port)]}
    });
    let boot_path = dir.join("envoy.json");
    std::fs::write(&boot_path, boot.to_string()).expect("write bootstrap");
    let envoy = Envoy::start(&boot_path, admin, &dir).unwrap_or_else(|e| panic!("{e}"));

    let who = |extra: &[(&str, &str)]| -> Option<String> {
        http_get(port, "reviews.bookinfo.svc.cluster.local:9080", "/r", extra)
            .ok()
            .and_then(|r| r.upstream())
    };
    // Wait for the LDS listener.
    let deadline = Instant::now() + Duration::from_secs(20);
    while who(&[]).as_deref() != Some("reviews-v1") {
        assert!(
            Instant::now() < deadline,
            "listener never served:\n{}",
            envoy.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A request that is in flight (held by the 1.5 s fault delay) while the config changes.
    let slow = std::thread::spawn(move || {
        http_get(
            port,
            "reviews.bookinfo.svc.cluster.local:9080",
            "/slow",
            &[("x-slow", "1")],
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    write_lds(&lds_dir, port, "v2");
    let deadline = Instant::now() + Duration::from_secs(20);
    while who(&[]).as_deref() != Some("reviews-v2") {
        assert!(
            Instant::now() < deadline,
            "config update never applied:\n{}",
            envoy.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let old = slow
        .join()
        .expect("join")
        .unwrap_or_else(|e| panic!("slow request: {e}"));
    assert_eq!(old.status, 200, "{}", old.body);
    assert_eq!(
        old.upstream().as_deref(),
        Some("reviews-v1"),
        "in-flight request changed config"
    );
    for _ in 0..5 {
        assert_eq!(who(&[]).as_deref(), Some("reviews-v2"));
    }
    assert!(
        envoy
            .log_text()
            .matches("config loaded for waypoint bookinfo/waypoint")
            .count()
            >= 2,
        "expected two config loads:\n{}",
        envoy.log_text()
    );
}
