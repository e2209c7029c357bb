//! Envoy's clusters and endpoints from the config dump, named back to services, subsets and
//! the module's DestinationRules; mesh endpoints with the identity their HBONE cluster checks.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use waypoint_core::Snapshot;

use super::{dump_configs, snap_view, walk};
use crate::admin::proxy_config::view::{ClusterView, EndpointView};

/// `outbound|port|subset|host` → (port, subset, host).
pub(super) fn parse_istio_cluster(name: &str) -> Option<(u16, String, String)> {
    let mut it = name.split('|');
    if it.next()? != "outbound" {
        return None;
    }
    let port = it.next()?.parse().ok()?;
    let subset = it.next()?.to_string();
    let host = it.next()?.to_string();
    it.next().is_none().then_some((port, subset, host))
}

/// The SPIFFE identity an `hbone|<ip>` cluster requires of its pod, by pod IP.
fn hbone_identities(clusters: &[&Value]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in clusters {
        let Some(ip) = c["name"].as_str().and_then(|n| n.strip_prefix("hbone|")) else {
            continue;
        };
        walk(c, &mut |m| {
            if let Some(Value::Array(sans)) = m.get("match_typed_subject_alt_names") {
                if let Some(id) = sans.iter().find_map(|s| s["matcher"]["exact"].as_str()) {
                    out.insert(ip.to_string(), id.to_string());
                }
            }
        });
    }
    out
}

/// An Envoy address as `ip:port`, with whether it is the HBONE originating internal
/// listener of a mesh pod (`connect_originate|ip:port`).
fn address_text(addr: &Value) -> (String, bool) {
    let sa = &addr["socket_address"];
    if let Some(ip) = sa["address"].as_str() {
        let port = sa["port_value"].as_u64().unwrap_or(0) as u16;
        return (snap_view::host_port(ip, port), false);
    }
    if let Some(name) = addr["envoy_internal_address"]["server_listener_name"].as_str() {
        return match name.strip_prefix("connect_originate|") {
            Some(target) => (target.to_string(), true),
            None => (format!("internal:{name}"), false),
        };
    }
    if let Some(p) = addr["pipe"]["path"].as_str() {
        return (format!("unix:{p}"), false);
    }
    (addr.to_string(), false)
}

/// Envoy's clusters and their endpoints (EDS dump first, the cluster's `load_assignment`
/// otherwise), with DestinationRules from the module's snapshot.
pub(super) fn clusters(
    dump: &Value,
    module: Option<&Snapshot>,
) -> (Vec<ClusterView>, Vec<EndpointView>) {
    let mut all: Vec<&Value> = Vec::new();
    for c in dump_configs(dump, ".ClustersConfigDump") {
        for key in ["static_clusters", "dynamic_active_clusters"] {
            if let Some(a) = c[key].as_array() {
                all.extend(a.iter().map(|x| &x["cluster"]));
            }
        }
    }
    let mut eds: BTreeMap<String, &Value> = BTreeMap::new();
    for e in dump_configs(dump, ".EndpointsConfigDump") {
        for key in ["static_endpoint_configs", "dynamic_endpoint_configs"] {
            for x in e[key].as_array().into_iter().flatten() {
                let cla = &x["endpoint_config"];
                if let Some(n) = cla["cluster_name"].as_str() {
                    eds.insert(n.to_string(), cla);
                }
            }
        }
    }
    let identities = hbone_identities(&all);
    let mut list = Vec::new();
    let mut seen = BTreeSet::new();
    for c in all {
        let Some(name) = c["name"].as_str() else {
            continue;
        };
        if !seen.insert(name.to_string()) {
            continue;
        }
        let cla = eds.get(name).copied().unwrap_or(&c["load_assignment"]);
        let mut eps = Vec::new();
        for group in cla["endpoints"].as_array().into_iter().flatten() {
            for lb in group["lb_endpoints"].as_array().into_iter().flatten() {
                let (address, hbone) = address_text(&lb["endpoint"]["address"]);
                let ip = address
                    .rsplit_once(':')
                    .map(|(h, _)| h.trim_matches(|c| c == '[' || c == ']').to_string());
                // A sidecar endpoint: the metadata its `tlsMode-istio` socket match reads.
                let mtls = &lb["metadata"]["filter_metadata"]["envoy.transport_socket_match"];
                let istio_mtls = mtls["tlsMode"] == "istio";
                eps.push(EndpointView {
                    cluster: name.to_string(),
                    identity: if hbone {
                        ip.and_then(|ip| identities.get(&ip).cloned())
                    } else if istio_mtls {
                        mtls["identity"]
                            .as_str()
                            .filter(|i| !i.is_empty())
                            .map(str::to_string)
                    } else {
                        None
                    },
                    address,
                    hbone,
                    istio_mtls,
                    health: Some(
                        lb["health_status"]
                            .as_str()
                            .unwrap_or("UNKNOWN")
                            .to_string(),
                    ),
                });
            }
        }
        let istio = parse_istio_cluster(name);
        let dr = istio.as_ref().and_then(|(_, _, host)| {
            module
                .and_then(|s| s.destination_policy(host))
                .map(|p| p.source.clone())
        });
        let protocol = istio.as_ref().and_then(|(port, _, host)| {
            module.and_then(|s| {
                s.registry
                    .services
                    .iter()
                    .find(|svc| &svc.hostname == host)
                    .and_then(|svc| svc.port(*port))
                    .map(|p| p.protocol.clone())
            })
        });
        let view = ClusterView {
            name: name.to_string(),
            service: istio.as_ref().map(|(_, _, h)| h.clone()),
            port: istio.as_ref().map(|(p, _, _)| *p),
            subset: istio
                .as_ref()
                .and_then(|(_, s, _)| (!s.is_empty()).then(|| s.clone())),
            direction: istio.as_ref().map(|_| "outbound".to_string()),
            kind: Some(c["type"].as_str().unwrap_or("STATIC").to_string()),
            protocol,
            destination_rule: dr,
            endpoints: eps.len(),
        };
        eps.sort_by(|a, b| a.address.cmp(&b.address));
        list.push((view, eps));
    }
    snap_view::ordered(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn istio_cluster_names() {
        assert_eq!(
            parse_istio_cluster("outbound|9080|v1|reviews.default.svc.cluster.local"),
            Some((
                9080,
                "v1".into(),
                "reviews.default.svc.cluster.local".into()
            ))
        );
        assert_eq!(parse_istio_cluster("hbone|10.0.0.1"), None);
        assert_eq!(parse_istio_cluster("outbound|x||a"), None);
    }

    #[test]
    fn internal_listener_endpoints_are_hbone_targets() {
        let (a, hbone) = address_text(
            &json!({"envoy_internal_address": {"server_listener_name": "connect_originate|10.0.0.1:9080"}}),
        );
        assert_eq!((a.as_str(), hbone), ("10.0.0.1:9080", true));
        let (a, hbone) =
            address_text(&json!({"socket_address": {"address": "127.0.0.1", "port_value": 15000}}));
        assert_eq!((a.as_str(), hbone), ("127.0.0.1:15000", false));
    }

    #[test]
    fn sidecar_endpoints_show_istio_mtls_and_their_identity() {
        let id = "spiffe://cluster.local/ns/default/sa/legacy";
        let dump = json!({"configs": [{
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "static_clusters": [{"cluster": {
                "name": "outbound|80||legacy.default.svc.cluster.local",
                "load_assignment": {"endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "10.1.0.5", "port_value": 8080}}},
                     "metadata": {"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio", "identity": id}}}},
                    {"endpoint": {"address": {"socket_address": {"address": "10.1.0.6", "port_value": 8080}}}}]}]}}}]}]});
        let (_, eps) = clusters(&dump, None);
        let got: Vec<(&str, bool, Option<&str>)> = eps
            .iter()
            .map(|e| (e.address.as_str(), e.istio_mtls, e.identity.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("10.1.0.5:8080", true, Some(id)),
                ("10.1.0.6:8080", false, None)
            ]
        );
    }
}
