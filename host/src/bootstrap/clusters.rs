//! Envoy clusters for the bound services: one per service / port / subset, named like Istio's
//! `outbound|<port>|<subset>|<fqdn>`, with static endpoints from the snapshot.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Value};
use waypoint_core::service::ServiceInfo;
use waypoint_core::Snapshot;

/// Istio's outbound cluster name; `subset` is empty for the whole service.
pub fn cluster_name(port: u16, subset: &str, fqdn: &str) -> String {
    format!("outbound|{port}|{subset}|{fqdn}")
}

/// Name of the internal listener that originates HBONE to one pod's target port.
pub fn originate_listener_name(ip: IpAddr, target_port: u16) -> String {
    format!("connect_originate|{}", host_port(ip, target_port))
}

/// Name of the HBONE (pod :15008) cluster of one pod.
pub fn hbone_cluster_name(ip: IpAddr) -> String {
    format!("hbone|{ip}")
}

/// `ip:port`, with brackets for IPv6.
pub fn host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// One upstream target of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub ip: IpAddr,
    pub target_port: u16,
    /// In the mesh: reached over HBONE through `connect_originate|ip:port`.
    pub mesh: bool,
    /// Expected SPIFFE identity of the pod (mesh endpoints with a known service account).
    pub identity: Option<String>,
}

/// A cluster to generate: its name, the service port's protocol and its targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPlan {
    pub name: String,
    pub protocol: String,
    pub targets: Vec<Target>,
}

/// Every outbound cluster of the bound services, sorted by name.
pub fn plan(snapshot: &Snapshot, trust_domain: &str) -> Vec<ClusterPlan> {
    let mut out = Vec::new();
    for idx in snapshot.bound_services() {
        let Some(svc) = snapshot.registry.services.get(idx) else {
            continue;
        };
        // Subset names of the DestinationRule for this host (Istio: one cluster per subset).
        let mut subsets: Vec<(String, BTreeMap<String, String>)> =
            vec![(String::new(), BTreeMap::new())];
        if let Some(dp) = snapshot.destination_policy(&svc.hostname) {
            for (name, s) in &dp.subsets {
                subsets.push((name.clone(), s.labels.clone()));
            }
        }
        for port in &svc.ports {
            for (subset, labels) in &subsets {
                out.push(ClusterPlan {
                    name: cluster_name(port.port, subset, &svc.hostname),
                    protocol: port.protocol.clone(),
                    targets: targets(svc, port.port, labels, trust_domain),
                });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// The endpoints of `svc` matching `labels`, at their target port for service port `port`.
pub fn targets(
    svc: &ServiceInfo,
    port: u16,
    labels: &BTreeMap<String, String>,
    trust_domain: &str,
) -> Vec<Target> {
    let mut t: Vec<Target> = svc
        .endpoints_matching(labels)
        .map(|e| Target {
            ip: e.ip,
            target_port: svc.target_port(port, e),
            mesh: e.mesh,
            identity: e
                .service_account
                .as_ref()
                .map(|sa| format!("spiffe://{trust_domain}/ns/{}/sa/{sa}", e.namespace)),
        })
        .collect();
    t.sort();
    t.dedup();
    t
}

/// The Envoy cluster for a plan: plaintext socket addresses, or internal addresses of the
/// per-pod HBONE originating listener for mesh endpoints.
pub fn outbound_cluster(p: &ClusterPlan) -> Value {
    let lb_endpoints: Vec<Value> = p
        .targets
        .iter()
        .map(|t| {
            let address = if t.mesh {
                json!({"envoy_internal_address": {
                    "server_listener_name": originate_listener_name(t.ip, t.target_port)}})
            } else {
                json!({"socket_address": {"address": t.ip.to_string(), "port_value": t.target_port}})
            };
            json!({"endpoint": {"address": address}})
        })
        .collect();
    let mut c = json!({
        "name": p.name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "load_assignment": {"cluster_name": p.name, "endpoints": [{"lb_endpoints": lb_endpoints}]},
        // Internal addresses need the internal_upstream socket; it wraps raw_buffer, so the
        // plaintext endpoints of the same cluster are unaffected.
        "transport_socket": internal_upstream_socket(),
    });
    if matches!(p.protocol.as_str(), "http2" | "grpc" | "grpc-web" | "h2c") {
        c["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}});
    }
    c
}

/// `internal_upstream` around `raw_buffer` (passes filter state to internal listeners).
pub fn internal_upstream_socket() -> Value {
    json!({
        "name": "envoy.transport_sockets.internal_upstream",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport",
            "transport_socket": {
                "name": "envoy.transport_sockets.raw_buffer",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_core::service::{Endpoint, ServiceKind, ServicePort};

    fn ep(ip: &str, version: &str, mesh: bool) -> Endpoint {
        Endpoint {
            ip: ip.parse().expect("ip"),
            labels: BTreeMap::from([("version".to_string(), version.to_string())]),
            service_account: Some("reviews".into()),
            namespace: "bookinfo".into(),
            named_ports: BTreeMap::from([("web".to_string(), 8080)]),
            mesh,
        }
    }

    fn svc() -> ServiceInfo {
        ServiceInfo {
            kind: ServiceKind::Service,
            name: "reviews".into(),
            namespace: "bookinfo".into(),
            hostname: "reviews.bookinfo.svc.cluster.local".into(),
            aliases: vec![],
            vips: vec![],
            ports: vec![
                ServicePort {
                    name: "http".into(),
                    port: 9080,
                    target_port: Some(9081),
                    target_port_name: None,
                    protocol: "http".into(),
                },
                ServicePort {
                    name: "web".into(),
                    port: 80,
                    target_port: None,
                    target_port_name: Some("web".into()),
                    protocol: "http".into(),
                },
            ],
            labels: BTreeMap::new(),
            selector: BTreeMap::new(),
            endpoints: vec![ep("10.0.0.2", "v2", true), ep("10.0.0.1", "v1", false)],
        }
    }

    #[test]
    fn cluster_names_follow_istio() {
        for (port, subset, host, want) in [
            (
                9080,
                "",
                "reviews.bookinfo.svc.cluster.local",
                "outbound|9080||reviews.bookinfo.svc.cluster.local",
            ),
            (
                9080,
                "v1",
                "reviews.bookinfo.svc.cluster.local",
                "outbound|9080|v1|reviews.bookinfo.svc.cluster.local",
            ),
            (443, "", "api.example.com", "outbound|443||api.example.com"),
        ] {
            assert_eq!(cluster_name(port, subset, host), want);
        }
        let v6: IpAddr = "fd00::1".parse().expect("ip");
        assert_eq!(
            originate_listener_name(v6, 80),
            "connect_originate|[fd00::1]:80"
        );
    }

    type Labels = BTreeMap<String, String>;
    /// (pod IP, target port, mesh).
    type Want = (&'static str, u16, bool);

    #[test]
    fn endpoints_map_to_subsets_and_target_ports() {
        let s = svc();
        let v1 = BTreeMap::from([("version".to_string(), "v1".to_string())]);
        let none = BTreeMap::new();
        let cases: Vec<(u16, &Labels, Vec<Want>)> = vec![
            // Whole service, numeric targetPort: both pods, sorted by IP.
            (
                9080,
                &none,
                vec![("10.0.0.1", 9081, false), ("10.0.0.2", 9081, true)],
            ),
            // Subset v1: only the v1 pod.
            (9080, &v1, vec![("10.0.0.1", 9081, false)]),
            // Named targetPort resolved per pod.
            (80, &v1, vec![("10.0.0.1", 8080, false)]),
        ];
        for (port, labels, want) in cases {
            let got: Vec<(String, u16, bool)> = targets(&s, port, labels, "cluster.local")
                .into_iter()
                .map(|t| (t.ip.to_string(), t.target_port, t.mesh))
                .collect();
            let want: Vec<(String, u16, bool)> = want
                .into_iter()
                .map(|(i, p, m)| (i.to_string(), p, m))
                .collect();
            assert_eq!(got, want, "port {port} labels {labels:?}");
        }
        let t = targets(&s, 9080, &none, "td.example");
        assert_eq!(
            t[1].identity.as_deref(),
            Some("spiffe://td.example/ns/bookinfo/sa/reviews")
        );
    }

    #[test]
    fn mesh_endpoints_go_through_the_originating_listener() {
        let s = svc();
        let p = ClusterPlan {
            name: cluster_name(9080, "", &s.hostname),
            protocol: "http".into(),
            targets: targets(&s, 9080, &BTreeMap::new(), "cluster.local"),
        };
        let c = outbound_cluster(&p);
        let eps = &c["load_assignment"]["endpoints"][0]["lb_endpoints"];
        assert_eq!(
            eps[0]["endpoint"]["address"]["socket_address"],
            json!({"address": "10.0.0.1", "port_value": 9081})
        );
        assert_eq!(
            eps[1]["endpoint"]["address"]["envoy_internal_address"]["server_listener_name"],
            json!("connect_originate|10.0.0.2:9081")
        );
    }
}
