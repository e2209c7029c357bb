//! Envoy's own route configurations (inline in connection managers, or from RDS) as route
//! rows: matches, clusters or `cluster_header`, weights.

use serde_json::Value;

use super::clusters::parse_istio_cluster;
use super::{dump_configs, walk};
use crate::admin::proxy_config::view::{BackendView, RouteView};

/// Envoy's own route configurations (inline in connection managers, or from RDS), one row
/// per route.
pub(super) fn envoy_routes(dump: &Value) -> Vec<RouteView> {
    let mut configs: Vec<(String, &Value)> = Vec::new();
    for l in dump_configs(dump, ".ListenersConfigDump") {
        for key in ["static_listeners", "dynamic_listeners"] {
            for x in l[key].as_array().into_iter().flatten() {
                let listener = if x["listener"].is_object() {
                    &x["listener"]
                } else {
                    &x["active_state"]["listener"]
                };
                let lname = listener["name"].as_str().unwrap_or("?").to_string();
                walk(listener, &mut |m| {
                    if let Some(rc) = m.get("route_config") {
                        configs.push((lname.clone(), rc));
                    }
                });
            }
        }
    }
    // Inline route configs are listed here again: only RDS ones are new.
    for r in dump_configs(dump, ".RoutesConfigDump") {
        for key in ["static_route_configs", "dynamic_route_configs"] {
            for x in r[key].as_array().into_iter().flatten() {
                let rc = &x["route_config"];
                let same = |seen: &Value| {
                    seen == rc || (rc["name"].is_string() && seen["name"] == rc["name"])
                };
                if configs.iter().any(|(_, seen)| same(seen)) {
                    continue;
                }
                let name = rc["name"].as_str().unwrap_or("?").to_string();
                configs.push((name, rc));
            }
        }
    }
    let mut out = Vec::new();
    for (owner, rc) in configs {
        for vh in rc["virtual_hosts"].as_array().into_iter().flatten() {
            let vname = vh["name"].as_str().unwrap_or("?");
            let domains: Vec<String> = vh["domains"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect();
            for r in vh["routes"].as_array().into_iter().flatten() {
                out.push(envoy_route(&format!("{owner}/{vname}"), &domains, r));
            }
        }
    }
    out
}

fn envoy_route(service: &str, domains: &[String], r: &Value) -> RouteView {
    let m = &r["match"];
    let mut parts = Vec::new();
    for (key, label) in [
        ("prefix", "prefix"),
        ("path", "exact"),
        ("path_separated_prefix", "path-prefix"),
    ] {
        if let Some(p) = m[key].as_str() {
            parts.push(format!("path {label} {p:?}"));
        }
    }
    if let Some(re) = m["safe_regex"]["regex"].as_str() {
        parts.push(format!("path regex {re:?}"));
    }
    if m["connect_matcher"].is_object() {
        parts.push("CONNECT".into());
    }
    for h in m["headers"].as_array().into_iter().flatten() {
        let name = h["name"].as_str().unwrap_or("?");
        let not = if h["invert_match"].as_bool() == Some(true) {
            "not "
        } else {
            ""
        };
        let sm = &h["string_match"];
        let what = if h["present_match"].as_bool() == Some(true) {
            Some("present".to_string())
        } else if let Some(re) = sm["safe_regex"]["regex"].as_str() {
            Some(format!("regex {re:?}"))
        } else {
            ["exact", "prefix", "suffix", "contains"]
                .iter()
                .find_map(|k| sm[*k].as_str().map(|x| format!("{k} {x:?}")))
        };
        match what {
            Some(w) => parts.push(format!("header {name} {not}{w}")),
            None => parts.push(format!("header {name} {not}(matcher)")),
        }
    }
    let backend = |cluster: Option<&str>, header: Option<&str>, weight: u32| BackendView {
        host: cluster.and_then(parse_istio_cluster).map(|(_, _, h)| h),
        namespace: None,
        subset: cluster
            .and_then(parse_istio_cluster)
            .and_then(|(_, s, _)| (!s.is_empty()).then_some(s)),
        port: cluster.and_then(parse_istio_cluster).map(|(p, _, _)| p),
        weight,
        cluster: cluster.map(str::to_string),
        cluster_header: header.map(str::to_string),
        invalid: None,
    };
    let route = &r["route"];
    let mut backends = Vec::new();
    if let Some(c) = route["cluster"].as_str() {
        backends.push(backend(Some(c), None, 100));
    }
    if let Some(h) = route["cluster_header"].as_str() {
        backends.push(backend(None, Some(h), 100));
    }
    for wc in route["weighted_clusters"]["clusters"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let w = wc["weight"].as_u64().unwrap_or(0) as u32;
        backends.push(backend(
            wc["name"].as_str(),
            wc["cluster_header"].as_str(),
            w,
        ));
    }
    let (action, suffix) = if r["direct_response"].is_object() {
        let status = r["direct_response"]["status"].as_u64().unwrap_or(0);
        ("direct_response", format!(" -> {status}"))
    } else if r["redirect"].is_object() {
        ("redirect", String::new())
    } else {
        ("forward", String::new())
    };
    RouteView {
        table: "envoy".into(),
        service: service.to_string(),
        domains: domains.to_vec(),
        port: None,
        matcher: if parts.is_empty() {
            format!("*{suffix}")
        } else {
            format!("{}{suffix}", parts.join(" && "))
        },
        action: action.into(),
        backends,
        resource: None,
        rule: r["name"].as_str().map(str::to_string),
        source: "envoy".into(),
        timeout_ms: route["timeout"].as_str().and_then(duration_ms),
        retries: route["retry_policy"]["num_retries"]
            .as_u64()
            .map(|n| n as u32),
        fault: None,
        mirrors: Vec::new(),
    }
}

/// A protobuf JSON duration (`"10s"`, `"0.250s"`) in milliseconds.
fn duration_ms(s: &str) -> Option<u64> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    Some((secs * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn weighted_cluster_header_route() {
        let r = envoy_route(
            "main_internal/all",
            &["*".into()],
            &json!({"match": {"prefix": "/"}, "route": {"timeout": "0s",
                "weighted_clusters": {"clusters": [{"cluster_header": "x-waypoint-cluster", "weight": 1}]}}}),
        );
        assert_eq!(r.matcher, "path prefix \"/\"");
        assert_eq!(r.backends.len(), 1);
        assert_eq!(r.backends[0].weight, 1);
        assert_eq!(
            r.backends[0].cluster_header.as_deref(),
            Some("x-waypoint-cluster")
        );
    }
}
