//! Every bootstrap in envoy-configs/ passes `envoy --mode validate` with the module loaded, and
//! a bad waypoint config makes Envoy reject the listener with our message naming the problem.

use waypoint_tests::envoy_harness::{repo_root, scratch_dir, validate};

#[test]
fn every_envoy_config_validates() {
    let dir = repo_root().join("envoy-configs");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    entries.sort();
    for path in entries {
        // The example configs use paths relative to the repository root.
        let out = validate(&path, &repo_root());
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{} failed validation:\n{text}",
            path.display()
        );
        assert!(text.contains("OK"), "{}: {text}", path.display());
        assert!(
            text.contains("waypoint filter waypoint: config loaded"),
            "{}: the module did not load its config:\n{text}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 1, "no Envoy configs found in {}", dir.display());
}

/// A minimal bootstrap with the module and the given filter_config JSON.
fn bootstrap_with(filter_config: &serde_json::Value) -> String {
    let boot = serde_json::json!({
        "static_resources": {"listeners": [{
            "name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "l",
                    "route_config": {"virtual_hosts": [{"name": "a", "domains": ["*"], "routes": [
                        {"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]},
                    "http_filters": [
                        {"name": "waypoint", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                            "dynamic_module_config": {"name": "waypoint"},
                            "filter_name": "waypoint",
                            "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": filter_config.to_string()}}},
                        {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
                    ]
                }
            }]}]
        }]}
    });
    serde_yaml::to_string(&boot).unwrap_or_default()
}

/// A waypoint, a bound service, and a VirtualService with an invalid weight.
const BAD_FIELD: &str = concat!(
    waypoint_core::waypoint_gateway_yaml!("bookinfo"),
    r#"apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo, labels: {istio.io/use-waypoint: waypoint}}
spec: {clusterIP: 10.96.0.11, ports: [{port: 9080, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
      weight: lots
"#
);

#[test]
fn bad_config_is_rejected_with_our_message() {
    let dir = scratch_dir("badconfig");
    for (name, cfg, want) in [
        (
            "missing-file",
            serde_json::json!({"waypoint": "bookinfo/waypoint", "config_paths": ["/nonexistent/waypoint.yaml"]}),
            vec!["/nonexistent/waypoint.yaml", "no such file"],
        ),
        (
            "bad-waypoint",
            serde_json::json!({"waypoint": "no-namespace", "config_inline": ""}),
            vec!["field waypoint", "namespace/name"],
        ),
        (
            "bad-resource",
            serde_json::json!({"waypoint": "bookinfo/waypoint",
                "config_inline": "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\n---\nkind: VirtualService\nmetadata: {name: broken, namespace: bookinfo}\n"}),
            vec!["VirtualService", "broken", "apiVersion"],
        ),
        (
            "bad-field",
            serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": BAD_FIELD}),
            vec!["VirtualService bookinfo/broken", "field spec.http[0]"],
        ),
    ] {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, bootstrap_with(&cfg)).expect("write bootstrap");
        let out = validate(&path, &dir);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "{name}: Envoy accepted a bad config:\n{text}"
        );
        assert!(
            text.contains("waypoint filter waypoint: rejected"),
            "{name}: {text}"
        );
        for w in want {
            assert!(text.contains(w), "{name}: expected {w:?} in:\n{text}");
        }
        assert!(
            text.contains("Failed to initialize dynamic module"),
            "{name}: {text}"
        );
    }
}
