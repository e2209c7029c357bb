//! Local rate limits from EnvoyFilters attached to the waypoint, in Envoy's own filter:
//! `envoy.filters.http.local_ratelimit` before our module (where Istio's HTTP_FILTER
//! INSERT_BEFORE would put it), and route-level configs on routes per limited service.
//!
//! The waypoint's route table matches every request with one route (the module picks the
//! rule), so a service's route-level limit becomes a copy of the generic routes matching the
//! tunnel's original destination (`waypoint.original_dst`, the service VIP and port) and
//! carrying the `typed_per_filter_config` and `rate_limits`. What cannot be mapped that way
//! (patches naming one route; destinations addressed by pod IP) is returned as notes.

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
            if svc.vips.is_empty() {
                notes.push(format!(
                    "{}:{}: no VIP, so its route-level rate limit is not applied by Envoy",
                    svc.hostname, p.port
                ));
                continue;
            }
            let dsts: Vec<String> = svc
                .vips
                .iter()
                .map(|ip| match ip {
                    std::net::IpAddr::V4(v4) => format!("{v4}:{}", p.port),
                    std::net::IpAddr::V6(v6) => format!("[{v6}]:{}", p.port),
                })
                .collect();
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
