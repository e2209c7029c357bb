//! Envoy clusters for the bound services: one per service / port / subset, named like Istio's
//! `outbound|<port>|<subset>|<fqdn>`, with static endpoints from the snapshot.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde_json::{json, Value};
use waypoint_core::route::TrafficPolicy;
use waypoint_core::service::ServiceInfo;
use waypoint_core::Snapshot;

/// Istio's outbound cluster name; `subset` is empty for the whole service. The module names
/// the same clusters (one definition, in the core).
pub use waypoint_core::names::cluster_name;

/// Name of the internal listener that originates HBONE to one pod's target port.
pub fn originate_listener_name(ip: IpAddr, target_port: u16) -> String {
    format!("connect_originate|{}", host_port(ip, target_port))
}

/// Name of the cluster that reaches one pod through the local originator.
pub fn originator_cluster_name(ip: IpAddr) -> String {
    format!("originate|{ip}")
}

/// PROXY v2 TLV type carrying the pod's expected SPIFFE identity to the originator.
pub use waypoint_hbone::originate::TLV_IDENTITY;

/// Endpoint metadata namespace `original_dst` reads the restored local address from.
const ORIGINAL_DST: &str = "envoy.filters.listener.original_dst";

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
    /// Runs an Istio sidecar without HBONE: reached with Istio mTLS at `ip:target_port`
    /// (a `transport_socket_matches` entry of its cluster, see `sidecar_tls`).
    pub sidecar: bool,
    /// Expected SPIFFE identity of the pod (mesh endpoints with a known service account).
    pub identity: Option<String>,
}

/// A cluster to generate: its name, the service port's protocol, its targets and its
/// DestinationRule traffic policy (subset and port-level settings merged in).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPlan {
    pub name: String,
    pub protocol: String,
    pub targets: Vec<Target>,
    pub policy: Option<TrafficPolicy>,
}

/// Every outbound cluster, sorted by name: one per service, port and DestinationRule subset,
/// for every service of the registry, not only the bound ones, because a bound service's
/// routes may forward or mirror to any service (Istio's waypoint gets the same full CDS).
pub fn plan(snapshot: &Snapshot, trust_domain: &str) -> Vec<ClusterPlan> {
    let mut out = Vec::new();
    for svc in &snapshot.registry.services {
        // Subset names of the DestinationRule for this host (Istio: one cluster per subset).
        let mut subsets: Vec<(String, BTreeMap<String, String>)> =
            vec![(String::new(), BTreeMap::new())];
        let dp = snapshot.destination_policy(&svc.hostname);
        if let Some(dp) = dp {
            for (name, s) in &dp.subsets {
                subsets.push((name.clone(), s.labels.clone()));
            }
        }
        for port in &svc.ports {
            for (subset, labels) in &subsets {
                let subset_name = (!subset.is_empty()).then_some(subset.as_str());
                out.push(ClusterPlan {
                    name: cluster_name(port.port, subset, &svc.hostname),
                    protocol: port.protocol.clone(),
                    targets: targets(svc, port.port, labels, trust_domain),
                    // The same merge the core's decisions use (`policy_for`).
                    policy: dp
                        .and_then(|d| d.policy_for(subset_name, port.port))
                        .cloned(),
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
            sidecar: e.sidecar && !e.mesh,
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
    outbound_cluster_via(p, false)
}

/// [`outbound_cluster`]; with `originator`, mesh endpoints also carry the pod address as
/// `original_dst` metadata, passed through to the originating listener.
pub fn outbound_cluster_via(p: &ClusterPlan, originator: bool) -> Value {
    let lb_endpoints: Vec<Value> = p
        .targets
        .iter()
        .map(|t| {
            if !t.mesh {
                let address = json!({"socket_address": {
                    "address": t.ip.to_string(), "port_value": t.target_port}});
                let mut e = json!({"endpoint": {"address": address}});
                if t.sidecar {
                    e["metadata"] = super::sidecar_tls::endpoint_metadata(t);
                }
                return e;
            }
            let address = json!({"envoy_internal_address": {
                "server_listener_name": originate_listener_name(t.ip, t.target_port)}});
            let mut e = json!({"endpoint": {"address": address}});
            if originator {
                e["metadata"] = json!({"filter_metadata": {
                    ORIGINAL_DST: {"local": host_port(t.ip, t.target_port)}}});
            }
            e
        })
        .collect();
    let mut c = json!({
        "name": p.name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "load_assignment": {"cluster_name": p.name, "endpoints": [{"lb_endpoints": lb_endpoints}]},
        // Internal addresses need the internal_upstream socket; it wraps raw_buffer, so the
        // plaintext endpoints of the same cluster are unaffected.
        "transport_socket": if originator { internal_upstream_passing_dst() } else { internal_upstream_socket() },
    });
    if is_http2(&p.protocol) {
        c["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}});
    }
    super::traffic_policy::apply(&mut c, p.policy.as_ref());
    c
}

/// Whether a service port's protocol makes its cluster HTTP/2 upstream.
pub fn is_http2(protocol: &str) -> bool {
    matches!(protocol, "http2" | "grpc" | "grpc-web" | "h2c")
}

/// The cluster plans of workload-addressed requests (the module's `passthrough|ip:port`): one
/// per pod and target port of `targets`, reaching it as its services' clusters do (HBONE for a
/// mesh pod, Istio mTLS for a sidecar). Istio's waypoint has one `encap` original-destination
/// cluster for its `direct-http` chain (pilot cluster_waypoint.go); with static per-pod
/// originating listeners, the cluster is per pod and port too, so a port no Service names has
/// none (Envoy's 503 NC).
pub fn passthrough_plans<'a>(targets: impl IntoIterator<Item = &'a Target>) -> Vec<ClusterPlan> {
    let mut seen = std::collections::BTreeSet::new();
    targets
        .into_iter()
        .filter(|t| seen.insert((t.ip, t.target_port)))
        .map(|t| ClusterPlan {
            name: waypoint_core::names::passthrough_cluster_name(SocketAddr::new(
                t.ip,
                t.target_port,
            )),
            protocol: String::new(),
            targets: vec![t.clone()],
            policy: None,
        })
        .collect()
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

/// `internal_upstream` that also passes each endpoint's `original_dst` metadata on.
fn internal_upstream_passing_dst() -> Value {
    let mut s = internal_upstream_socket();
    s["typed_config"]["passthrough_metadata"] =
        json!([{"kind": {"host": {}}, "name": ORIGINAL_DST}]);
    s
}

/// The cluster of one mesh pod behind the local originator at `addr`: raw TCP
/// with an upstream PROXY v2 header (source = client, destination = pod IP:target port) and,
/// when known, the pod's identity in TLV [`TLV_IDENTITY`].
pub fn originator_cluster(addr: SocketAddr, t: &Target) -> Value {
    let name = originator_cluster_name(t.ip);
    let mut pp = json!({"version": "V2"});
    if let Some(id) = &t.identity {
        pp["added_tlvs"] = json!([{"type": TLV_IDENTITY, "value": base64(id.as_bytes())}]);
    }
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}}}}]}]},
        "transport_socket": {"name": "envoy.transport_sockets.upstream_proxy_protocol", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport",
            "config": pp,
            "transport_socket": {"name": "envoy.transport_sockets.raw_buffer", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}}},
    })
}

/// Standard base64 with padding (protobuf `bytes` in JSON/YAML).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
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
            sidecar: false,
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
            policy: None,
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

    #[test]
    fn base64_matches_rfc4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn every_pod_and_target_port_has_one_passthrough_cluster() {
        let s = svc();
        let mut all = targets(&s, 9080, &BTreeMap::new(), "cluster.local");
        all.extend(targets(&s, 80, &BTreeMap::new(), "cluster.local"));
        // The same pod and port twice (two services, or subsets) is one cluster.
        all.extend(targets(&s, 9080, &BTreeMap::new(), "cluster.local"));
        let cs: Vec<Value> = passthrough_plans(&all)
            .iter()
            .map(|p| outbound_cluster_via(p, false))
            .collect();
        let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(
            names,
            [
                "passthrough|10.0.0.1:9081",
                "passthrough|10.0.0.2:9081",
                "passthrough|10.0.0.1:8080",
                "passthrough|10.0.0.2:8080",
            ]
        );
        let ep = |c: &Value| {
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"].clone()
        };
        // Plaintext pod: its address; mesh pod: its HBONE originating listener.
        assert_eq!(
            ep(&cs[0])["socket_address"],
            json!({"address": "10.0.0.1", "port_value": 9081})
        );
        assert_eq!(
            ep(&cs[1])["envoy_internal_address"]["server_listener_name"],
            json!("connect_originate|10.0.0.2:9081")
        );
    }

    #[test]
    fn originator_layout_passes_the_pod_address_and_identity() {
        let s = svc();
        let p = ClusterPlan {
            name: cluster_name(9080, "", &s.hostname),
            protocol: "http".into(),
            targets: targets(&s, 9080, &BTreeMap::new(), "cluster.local"),
            policy: None,
        };
        let c = outbound_cluster_via(&p, true);
        let eps = &c["load_assignment"]["endpoints"][0]["lb_endpoints"];
        assert_eq!(eps[0]["metadata"], Value::Null, "plaintext endpoint");
        assert_eq!(
            eps[1]["metadata"]["filter_metadata"][ORIGINAL_DST]["local"],
            json!("10.0.0.2:9081")
        );
        assert_eq!(
            c["transport_socket"]["typed_config"]["passthrough_metadata"][0]["name"],
            json!(ORIGINAL_DST)
        );
        let o = originator_cluster("127.0.0.1:15009".parse().expect("addr"), &p.targets[1]);
        assert_eq!(o["name"], json!("originate|10.0.0.2"));
        let addr = &o["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
        assert_eq!(
            addr["socket_address"],
            json!({"address": "127.0.0.1", "port_value": 15009})
        );
        let tlv = &o["transport_socket"]["typed_config"]["config"]["added_tlvs"][0];
        assert_eq!(tlv["type"], json!(TLV_IDENTITY));
        assert_eq!(
            tlv["value"],
            json!(base64(b"spiffe://cluster.local/ns/bookinfo/sa/reviews"))
        );
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use waypoint_core::BuildOptions;

    /// A bound service whose route forwards to services that are not bound themselves (the
    /// waypoint-bench layout): their clusters must exist, or Envoy answers `cluster_not_found`.
    #[test]
    fn clusters_exist_for_unbound_route_backends() {
        let yaml = concat!(
            waypoint_core::waypoint_gateway_yaml!("default"),
            r#"apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default, labels: {istio.io/use-waypoint: waypoint}}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1, namespace: default}
spec: {ports: [{name: http, port: 9080, targetPort: 28081}], selector: {app: reviews-v1}}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1-0, namespace: default, labels: {app: reviews-v1}}
spec: {serviceAccountName: reviews, containers: [{name: app, image: x}]}
status: {podIP: 10.1.0.5}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews-v1}}]}]
"#
        );
        let loaded = waypoint_loader::load_text(yaml, "test", "default");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let (snapshot, diags) = Snapshot::build(&loaded.resources, &BuildOptions::default());
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        let plans = plan(&snapshot, "cluster.local");
        let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
        assert!(
            names.contains(&"outbound|9080||reviews-v1.default.svc.cluster.local"),
            "{names:?}"
        );
        let v1 = plans
            .iter()
            .find(|p| p.name == "outbound|9080||reviews-v1.default.svc.cluster.local")
            .expect("plan");
        assert_eq!(v1.targets.len(), 1);
        assert_eq!(v1.targets[0].target_port, 28081);
    }
}
