//! Istio mTLS to sidecar endpoints in Envoy mode: endpoint metadata and the cluster's
//! `transport_socket_matches` (one UpstreamTlsContext per expected identity), as istiod does.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::clusters::{is_http2, ClusterPlan, Target};
use super::Options;

/// Envoy's endpoint metadata namespace `transport_socket_matches` match against.
const MATCH_NAMESPACE: &str = "envoy.transport_socket_match";

/// A sidecar endpoint's metadata: istiod's `tlsMode: istio` plus the identity its match
/// checks (istiod checks one SAN list per cluster; we check each pod's own identity, as the
/// host does).
pub fn endpoint_metadata(t: &Target) -> Value {
    json!({"filter_metadata": {MATCH_NAMESPACE: {
        "tlsMode": "istio", "identity": t.identity.clone().unwrap_or_default()}}})
}

/// Add one `tlsMode-istio|<identity>` transport socket match per identity of the plan's
/// sidecar endpoints (none: the cluster is unchanged). Endpoints without the metadata keep
/// the cluster's `transport_socket` (plaintext, or internal to the HBONE originator).
pub fn apply(cluster: &mut Value, p: &ClusterPlan, o: &Options) {
    let identities: BTreeSet<Option<&str>> = p
        .targets
        .iter()
        .filter(|t| t.sidecar)
        .map(|t| t.identity.as_deref())
        .collect();
    if identities.is_empty() {
        return;
    }
    let h2 = is_http2(&p.protocol);
    let matches: Vec<Value> = identities
        .into_iter()
        .map(|id| {
            json!({
                "name": format!("tlsMode-istio|{}", id.unwrap_or("")),
                "match": {"tlsMode": "istio", "identity": id.unwrap_or("")},
                "transport_socket": istio_mtls_socket(o, id, h2),
            })
        })
        .collect();
    cluster["transport_socket_matches"] = Value::Array(matches);
}

/// istiod's ISTIO_MUTUAL UpstreamTlsContext (`cluster_tls.go`): TLS 1.2 to 1.3, our workload
/// certificate, the mesh roots, the pod's SPIFFE identity as URI SAN (any of our trust domain
/// when unknown), ALPN `istio-peer-exchange, istio` (`+ h2` for an HTTP/2 cluster). No SNI:
/// istiod sends the cluster name; the host cannot (not a DNS name), and sidecars do not match
/// on it.
fn istio_mtls_socket(o: &Options, identity: Option<&str>, h2: bool) -> Value {
    let [chain, key, roots] = o.cert_files();
    let san = match identity {
        Some(id) => json!({"exact": id}),
        None => json!({"prefix": format!("spiffe://{}/", o.trust_domain)}),
    };
    let alpn: Vec<String> = waypoint_hbone::tls::config::istio_alpn(h2)
        .into_iter()
        .map(|a| String::from_utf8_lossy(&a).into_owned())
        .collect();
    json!({"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "tls_params": {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"},
            "alpn_protocols": alpn,
            "tls_certificates": [{
                "certificate_chain": {"filename": chain},
                "private_key": {"filename": key}}],
            "validation_context": {
                "trusted_ca": {"filename": roots},
                "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": san}]}}}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::clusters::outbound_cluster;

    fn target(ip: &str, sidecar: bool, sa: &str) -> Target {
        Target {
            ip: ip.parse().expect("ip"),
            target_port: 9080,
            mesh: false,
            sidecar,
            identity: Some(format!("spiffe://cluster.local/ns/default/sa/{sa}")),
        }
    }

    #[test]
    fn sidecar_endpoints_get_istio_mtls_with_their_identity() {
        let p = ClusterPlan {
            name: "outbound|9080||reviews.default.svc.cluster.local".into(),
            protocol: "grpc".into(),
            targets: vec![
                target("10.0.0.1", true, "reviews"),
                target("10.0.0.2", true, "reviews"),
                target("10.0.0.3", false, "plain"),
            ],
            policy: None,
        };
        let mut c = outbound_cluster(&p);
        apply(&mut c, &p, &Options::default());
        let eps = &c["load_assignment"]["endpoints"][0]["lb_endpoints"];
        assert_eq!(
            eps[0]["metadata"]["filter_metadata"][MATCH_NAMESPACE]["tlsMode"],
            json!("istio")
        );
        assert_eq!(eps[2]["metadata"], Value::Null, "plaintext endpoint");
        let m = c["transport_socket_matches"].as_array().expect("matches");
        assert_eq!(m.len(), 1, "one identity: {m:?}");
        assert_eq!(
            m[0]["match"]["identity"],
            json!("spiffe://cluster.local/ns/default/sa/reviews")
        );
        let ctx = &m[0]["transport_socket"]["typed_config"]["common_tls_context"];
        assert_eq!(
            ctx["alpn_protocols"],
            json!(["istio-peer-exchange", "istio", "h2"])
        );
        assert_eq!(
            ctx["validation_context"]["match_typed_subject_alt_names"][0]["matcher"],
            json!({"exact": "spiffe://cluster.local/ns/default/sa/reviews"})
        );
        // The default socket still serves the plaintext endpoint.
        assert!(c["transport_socket"].is_object());
    }

    #[test]
    fn clusters_without_sidecars_are_unchanged() {
        let p = ClusterPlan {
            name: "outbound|80||a.default.svc.cluster.local".into(),
            protocol: "http".into(),
            targets: vec![target("10.0.0.3", false, "a")],
            policy: None,
        };
        let before = outbound_cluster(&p);
        let mut c = before.clone();
        apply(&mut c, &p, &Options::default());
        assert_eq!(c, before);
    }

    /// A sidecar pod from manifests through the whole bootstrap, then split for xDS: the
    /// match's certificate and roots become the SDS secrets Istio names (`default`, `ROOTCA`)
    /// and the endpoint keeps its metadata in EDS.
    #[test]
    fn sidecar_pod_from_manifests_through_bootstrap_and_xds() {
        use crate::xds::proto::{CLUSTER, ENDPOINT};
        use crate::xds::resources::{split, SplitOptions};
        use waypoint_core::{BuildOptions, Snapshot};
        let yaml = concat!(
            waypoint_core::waypoint_gateway_yaml!("default"),
            r#"apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: default, labels: {istio.io/use-waypoint: waypoint}}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: 8080}], selector: {app: legacy}}
---
apiVersion: v1
kind: Pod
metadata: {name: legacy-0, namespace: default, labels: {app: legacy, security.istio.io/tlsMode: istio}}
spec: {serviceAccountName: legacy, containers: [{name: app, image: x}]}
status: {podIP: 10.1.0.5}
"#
        );
        let loaded = waypoint_loader::load_text(yaml, "test", "default");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let (snapshot, diags) = Snapshot::build(&loaded.resources, &BuildOptions::default());
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        let bootstrap = crate::bootstrap::generate(&snapshot, &Options::default());
        let name = "outbound|80||legacy.default.svc.cluster.local";
        let clusters = bootstrap["static_resources"]["clusters"]
            .as_array()
            .expect("clusters");
        let c = clusters
            .iter()
            .find(|c| c["name"] == name)
            .expect("legacy cluster");
        let m = &c["transport_socket_matches"][0];
        assert_eq!(
            m["match"],
            json!({"tlsMode": "istio", "identity": "spiffe://cluster.local/ns/default/sa/legacy"})
        );
        // No HBONE originator for a sidecar pod.
        assert!(!clusters.iter().any(|c| c["name"] == "hbone|10.1.0.5"));
        let read = |p: &str| -> std::io::Result<String> { Ok(format!("PEM of {p}")) };
        let r = split(&bootstrap, &SplitOptions::default(), &read).expect("split");
        let ctx = &r[CLUSTER][name]["transport_socket_matches"][0]["transport_socket"]
            ["typed_config"]["common_tls_context"];
        assert_eq!(
            ctx["tls_certificate_sds_secret_configs"][0]["name"],
            "default"
        );
        assert_eq!(
            ctx["combined_validation_context"]["validation_context_sds_secret_config"]["name"],
            "ROOTCA"
        );
        let ep = &r[ENDPOINT][name]["endpoints"][0]["lb_endpoints"][0];
        assert_eq!(
            ep["endpoint"]["address"]["socket_address"],
            json!({"address": "10.1.0.5", "port_value": 8080})
        );
        assert_eq!(
            ep["metadata"]["filter_metadata"][MATCH_NAMESPACE]["tlsMode"],
            json!("istio")
        );
    }
}
