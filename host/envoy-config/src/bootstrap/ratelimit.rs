//! Rate limits from EnvoyFilters attached to the waypoint, in Envoy's own filters:
//! `envoy.filters.http.local_ratelimit` before our module (where Istio's HTTP_FILTER
//! INSERT_BEFORE would put it), `envoy.filters.http.ratelimit` just before the router (Istio's
//! task inserts it there: after our module picked the cluster, so `destination_cluster` and
//! the `cluster.<name>.ratelimit.*` stats name it), the rate limit service's cluster, and
//! route-level configs and `rate_limits` on routes per limited service.
//!
//! The waypoint's route table matches every request with one route (the module picks the
//! rule), so a service's route-level limit becomes a copy of the generic routes matching the
//! tunnel's original destination (`waypoint.original_dst`, the service VIP and port) and
//! carrying the `typed_per_filter_config` and `rate_limits` (one bucket per service port, for
//! its VIPs; a pod-addressed request has no service route, so the filter's own config). A
//! patch naming one rule (`vhost.route.name`) gets copies that also match
//! `x-waypoint-route: <rule>`, which the module sets for that rule before it has the table
//! matched again; their local config is read by a second local_ratelimit after the module.
//! What cannot be mapped (services with no address) is returned as notes.

use serde_json::{json, Value};
use waypoint_core::ratelimit::{RlsTarget, FILTER_NAME, GLOBAL_FILTER_NAME};
use waypoint_core::Snapshot;

/// The module's header selecting a rule's route (filter/envoy's `router::ROUTE_HEADER`).
const ROUTE_HEADER: &str = "x-waypoint-route";
/// The second local_ratelimit, after the module: it limits by the per-rule routes' configs.
const PER_RULE_LOCAL: &str = "waypoint.per_rule_local_ratelimit";

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Insert the filters and per-service routes into the main_internal `listener`; returns what
/// could not be mapped.
pub fn wire(listener: &mut Value, snapshot: &Snapshot) -> Vec<String> {
    let limits = &snapshot.rate_limits;
    let mut notes = Vec::new();
    if limits.is_empty() && limits.global.is_empty() {
        return notes;
    }
    let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
    if let Some(chain) = hcm["http_filters"].as_array_mut() {
        let at = chain
            .iter()
            .position(|f| f["name"] == "waypoint")
            .unwrap_or(0);
        for (i, f) in limits.filters.iter().enumerate() {
            chain.insert(
                at + i,
                json!({"name": FILTER_NAME, "typed_config": f.config.envoy_json}),
            );
        }
        let router = chain
            .iter()
            .position(|f| f["name"] == "envoy.filters.http.router")
            .unwrap_or(chain.len());
        for (i, g) in limits.global.iter().enumerate() {
            chain.insert(
                router + i,
                json!({"name": GLOBAL_FILTER_NAME, "typed_config": g.config.envoy_json}),
            );
        }
    }
    // Per-rule configs: a second local_ratelimit after the module, which picked the rule; a
    // no-op but on the per-rule routes, which carry its config under its own name.
    let per_rule_local = limits.per_rule().any(|r| r.config.is_some());
    if per_rule_local {
        if let Some(chain) = hcm["http_filters"].as_array_mut() {
            let at = chain
                .iter()
                .position(|f| f["name"] == "waypoint")
                .map(|i| i + 1)
                .unwrap_or(chain.len());
            chain.insert(
                at,
                json!({"name": PER_RULE_LOCAL, "typed_config": {
                    "@type": waypoint_core::ratelimit::TYPE_URL, "stat_prefix": "per_rule"}}),
            );
        }
    }
    let Some(routes) = hcm["route_config"]["virtual_hosts"][0]["routes"].as_array_mut() else {
        return notes;
    };
    let generic = routes.clone();
    let mut limited = Vec::new();
    let mut rule_routes = Vec::new();
    let names: Vec<&str> = {
        let mut n: Vec<&str> = limits
            .per_rule()
            .filter_map(|r| r.route_name.as_deref())
            .collect();
        n.sort_unstable();
        n.dedup();
        n
    };
    for si in snapshot.bound_services() {
        let svc = &snapshot.registry.services[si];
        for p in &svc.ports {
            let service_route = limits.envoy_route(&svc.hostname, p.port);
            let rules: Vec<(&str, waypoint_core::ratelimit::EnvoyRoute)> = names
                .iter()
                .filter_map(|n| Some((*n, limits.envoy_rule_route(&svc.hostname, p.port, n)?)))
                .collect();
            if service_route.is_none() && rules.is_empty() {
                continue;
            }
            let route = service_route
                .clone()
                .unwrap_or(waypoint_core::ratelimit::EnvoyRoute {
                    config: None,
                    rate_limits: None,
                });
            // The service's VIPs on its port. Not its pods: a pod-addressed request gets no
            // service route (Istio's direct-http chain has its own route table, which a
            // patch naming the service's vhost never reaches), so no route-level limit.
            let dsts: Vec<String> = svc.vips.iter().map(|ip| addr(*ip, p.port)).collect();
            if dsts.is_empty() {
                notes.push(format!(
                    "{}:{}: no VIP, so Envoy has no route for its route-level rate limit",
                    svc.hostname, p.port
                ));
                continue;
            }
            let pattern = dsts
                .iter()
                .map(|d| regex_escape(d))
                .collect::<Vec<_>>()
                .join("|");
            // The rule's own route, selected after the module by `x-waypoint-route` (the
            // module sets it for a rule a patch names, then has the table matched again).
            for (name, rr) in &rules {
                for g in &generic {
                    let mut r = g.clone();
                    r["name"] = json!(format!("ratelimit|{}:{}|{name}", svc.hostname, p.port));
                    r["match"]["filter_state"] = json!([{"key": "waypoint.original_dst",
                        "string_match": {"safe_regex": {"regex": format!("^(?:{pattern})$")}}}]);
                    let mut headers = r["match"]["headers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    headers.push(json!({"name": ROUTE_HEADER, "string_match": {"exact": name}}));
                    r["match"]["headers"] = json!(headers);
                    let mut remove = r["request_headers_to_remove"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    remove.push(json!(ROUTE_HEADER));
                    r["request_headers_to_remove"] = json!(remove);
                    let mut per_filter = serde_json::Map::new();
                    if let Some(c) = &route.config {
                        per_filter.insert(FILTER_NAME.into(), c.clone());
                    }
                    if let Some(c) = &rr.config {
                        per_filter.insert(PER_RULE_LOCAL.into(), c.clone());
                    }
                    if !per_filter.is_empty() {
                        r["typed_per_filter_config"] = Value::Object(per_filter);
                    }
                    if let Some(l) = &rr.rate_limits {
                        r["route"]["rate_limits"] = l.clone();
                    }
                    rule_routes.push(r);
                }
            }
            if service_route.is_none() {
                continue;
            }
            for g in &generic {
                let mut r = g.clone();
                r["name"] = json!(format!("ratelimit|{}:{}", svc.hostname, p.port));
                r["match"]["filter_state"] = json!([{"key": "waypoint.original_dst",
                    "string_match": {"safe_regex": {"regex": format!("^(?:{pattern})$")}}}]);
                if let Some(c) = &route.config {
                    r["typed_per_filter_config"] = json!({ FILTER_NAME: c });
                }
                if let Some(l) = &route.rate_limits {
                    r["route"]["rate_limits"] = l.clone();
                }
                limited.push(r);
            }
        }
    }
    if !limited.is_empty() || !rule_routes.is_empty() {
        rule_routes.extend(limited);
        rule_routes.extend(generic);
        *routes = rule_routes;
    }
    notes
}

/// The clusters CLUSTER ADD patches define (as written, the deprecated cluster-level
/// `http2_protocol_options` moved into `HttpProtocolOptions`), and HTTP/2 for an outbound
/// cluster that serves as a rate limit service (gRPC). `clusters`: the generated ones.
pub fn clusters(clusters: &mut Vec<Value>, snapshot: &Snapshot) {
    let limits = &snapshot.rate_limits;
    for c in &limits.clusters {
        let mut v = c.envoy_json.clone();
        if let Some(m) = v.as_object_mut() {
            let h2 = m
                .remove("http2_protocol_options")
                .or_else(|| m.remove("http2ProtocolOptions"));
            if let Some(h2) = h2 {
                m.insert("typed_extension_protocol_options".into(), h2_options(h2));
            }
        }
        clusters.retain(|g| g["name"] != c.name.as_str());
        clusters.push(v);
    }
    for g in &limits.global {
        if !matches!(g.target, Some(RlsTarget::Service { .. }))
            || limits.clusters.iter().any(|c| c.name == g.config.cluster)
        {
            continue;
        }
        if let Some(c) = clusters
            .iter_mut()
            .find(|c| c["name"] == g.config.cluster.as_str())
        {
            let o = &mut c["typed_extension_protocol_options"][HTTP_PROTOCOL_OPTIONS];
            o["@type"] = json!(format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"));
            o["explicit_http_config"] = json!({"http2_protocol_options": {}});
        }
    }
}

fn h2_options(h2: Value) -> Value {
    json!({ HTTP_PROTOCOL_OPTIONS: {
        "@type": format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"),
        "explicit_http_config": {"http2_protocol_options": h2}}})
}

fn addr(ip: std::net::IpAddr, port: u16) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => format!("{v4}:{port}"),
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use waypoint_core::{BuildOptions, Snapshot};

    use super::super::{generate, Options};

    const SERVICE: &str = "apiVersion: v1
kind: Namespace
metadata: {name: default, labels: {istio.io/use-waypoint: waypoint}}
---
apiVersion: v1
kind: Service
metadata: {name: front, namespace: default}
spec: {clusterIP: 10.96.7.1, ports: [{name: http, port: 80}]}
---
";

    fn main_internal(filter: &str) -> Value {
        let yaml = format!(
            "{}{SERVICE}{filter}",
            waypoint_core::waypoint_gateway_yaml!("default")
        );
        let loaded = waypoint_loader::load_text(&yaml, "test", "default");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let (snapshot, diags) = Snapshot::build(&loaded.resources, &BuildOptions::default());
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        let boot = generate(&snapshot, &Options::default());
        boot["static_resources"]["listeners"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["name"] == "main_internal"))
            .cloned()
            .expect("main_internal")
    }

    fn hcm(l: &Value) -> &Value {
        &l["filter_chains"][0]["filters"][0]["typed_config"]
    }

    const FILTER: &str = "apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: rl, namespace: default}
spec:
  targetRefs: [{kind: Gateway, name: waypoint}]
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          '@type': type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          value: {stat_prefix: all}
  - applyTo: HTTP_ROUTE
    match: {routeConfiguration: {vhost: {name: 'front.default.svc.cluster.local:80'}}}
    patch:
      operation: MERGE
      value:
        route: {rate_limits: [{actions: [{generic_key: {descriptor_value: front}}]}]}
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            '@type': type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            stat_prefix: front
            token_bucket: {max_tokens: 2, fill_interval: 1s}
";

    #[test]
    fn the_filter_goes_before_the_module_and_limited_services_get_their_routes() {
        let plain = main_internal("");
        let l = main_internal(FILTER);
        let names: Vec<&str> = hcm(&l)["http_filters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "envoy.filters.http.local_ratelimit",
                "waypoint",
                "envoy.filters.http.router"
            ]
        );
        // The TypedStruct is unwrapped into the plain config Envoy reads.
        let f = &hcm(&l)["http_filters"][0]["typed_config"];
        assert_eq!(f["@type"], waypoint_core::ratelimit::TYPE_URL);
        assert_eq!(f["stat_prefix"], "all");
        let routes = hcm(&l)["route_config"]["virtual_hosts"][0]["routes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let generic = hcm(&plain)["route_config"]["virtual_hosts"][0]["routes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // One copy of each generic route for front's VIP, then the generic routes unchanged.
        assert_eq!(routes.len(), 2 * generic.len());
        assert_eq!(&routes[generic.len()..], &generic[..]);
        for (r, g) in routes.iter().zip(&generic) {
            assert_eq!(
                r["route"]["weighted_clusters"],
                g["route"]["weighted_clusters"]
            );
            assert_eq!(
                r["match"]["filter_state"][0]["string_match"]["safe_regex"]["regex"],
                "^(?:10\\.96\\.7\\.1:80)$"
            );
            let c = &r["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"];
            assert_eq!(c["stat_prefix"], "front");
            assert_eq!(
                r["route"]["rate_limits"][0]["actions"][0]["generic_key"]["descriptor_value"],
                "front"
            );
        }
    }

    const GLOBAL: &str = "apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: global, namespace: default}
spec:
  targetRefs: [{kind: Gateway, name: waypoint}]
  configPatches:
  - applyTo: HTTP_FILTER
    match: {listener: {filterChain: {filter: {subFilter: {name: envoy.filters.http.router}}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.ratelimit
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
          domain: d
          rate_limit_service:
            grpc_service: {envoy_grpc: {cluster_name: rate_limit_cluster}}
            transport_api_version: V3
  - applyTo: CLUSTER
    patch:
      operation: ADD
      value:
        name: rate_limit_cluster
        type: STRICT_DNS
        connect_timeout: 1s
        http2_protocol_options: {}
        load_assignment:
          cluster_name: rate_limit_cluster
          endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.9, port_value: 8081}}}}]}]
  - applyTo: VIRTUAL_HOST
    patch:
      operation: MERGE
      value: {rate_limits: [{actions: [{destination_cluster: {}}]}]}
";

    #[test]
    fn the_global_filter_goes_before_the_router_with_its_cluster() {
        let yaml = format!(
            "{}{SERVICE}{GLOBAL}",
            waypoint_core::waypoint_gateway_yaml!("default")
        );
        let loaded = waypoint_loader::load_text(&yaml, "test", "default");
        let (snapshot, diags) = Snapshot::build(&loaded.resources, &BuildOptions::default());
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        assert!(diags.warnings.is_empty(), "{:?}", diags.warnings);
        let boot = generate(&snapshot, &Options::default());
        let l = boot["static_resources"]["listeners"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["name"] == "main_internal"))
            .cloned()
            .expect("main_internal");
        let names: Vec<&str> = hcm(&l)["http_filters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "waypoint",
                "envoy.filters.http.ratelimit",
                "envoy.filters.http.router"
            ]
        );
        let c = boot["static_resources"]["clusters"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == "rate_limit_cluster"))
            .cloned()
            .expect("rate_limit_cluster");
        assert!(c.get("http2_protocol_options").is_none());
        let o = &c["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert!(
            o["explicit_http_config"]["http2_protocol_options"].is_object(),
            "{c}"
        );
        // The virtual host's rate_limits ride on front's routes.
        let routes = hcm(&l)["route_config"]["virtual_hosts"][0]["routes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(routes
            .iter()
            .any(
                |r| r["route"]["rate_limits"][0]["actions"][0]["destination_cluster"].is_object()
            ));
    }

    #[test]
    fn without_envoy_filters_nothing_changes() {
        let l = main_internal("");
        let names = hcm(&l)["http_filters"].as_array().map(Vec::len);
        assert_eq!(names, Some(2));
    }
}
