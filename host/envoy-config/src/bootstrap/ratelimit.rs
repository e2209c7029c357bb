//! Local rate limits from EnvoyFilters attached to the waypoint, in Envoy's own filter:
//! `envoy.filters.http.local_ratelimit` before our module (where Istio's HTTP_FILTER
//! INSERT_BEFORE would put it), and route-level configs on routes per limited service.
//!
//! The waypoint's route table matches every request with one route (the module picks the
//! rule), so a service's route-level limit becomes a copy of the generic routes matching the
//! tunnel's original destination (`waypoint.original_dst`, the service VIP and port) and
//! carrying the `typed_per_filter_config` and `rate_limits` (one bucket per service port, for
//! its VIPs; a pod-addressed request has no service route, so the filter's own config). What cannot be mapped that way (patches naming one route) is
//! returned as notes.

use serde_json::{json, Value};
use waypoint_core::ratelimit::FILTER_NAME;
use waypoint_core::Snapshot;

/// Insert the filters and per-service routes into the main_internal `listener`; returns what
/// could not be mapped.
pub fn wire(listener: &mut Value, snapshot: &Snapshot) -> Vec<String> {
    let limits = &snapshot.rate_limits;
    let mut notes = Vec::new();
    if limits.is_empty() {
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
    }
    for r in limits.per_rule() {
        notes.push(format!(
            "{}: vhost.route.name {:?} is applied by the host only (Envoy's route table has one route per service, not per rule)",
            r.source,
            r.route_name.as_deref().unwrap_or("")
        ));
    }
    let Some(routes) = hcm["route_config"]["virtual_hosts"][0]["routes"].as_array_mut() else {
        return notes;
    };
    let generic = routes.clone();
    let mut limited = Vec::new();
    for si in snapshot.bound_services() {
        let svc = &snapshot.registry.services[si];
        for p in &svc.ports {
            let Some(route) = limits.envoy_route(&svc.hostname, p.port) else {
                continue;
            };
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
    if !limited.is_empty() {
        limited.extend(generic);
        *routes = limited;
    }
    notes
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

    #[test]
    fn without_envoy_filters_nothing_changes() {
        let l = main_internal("");
        let names = hcm(&l)["http_filters"].as_array().map(Vec::len);
        assert_eq!(names, Some(2));
    }
}
