//! Synthetic configs for the xDS benchmarks: N plain Services bound to one waypoint, each with
//! a pod and an HTTPRoute, and the `Source` that builds their snapshot.

use std::path::{Path, PathBuf};

use waypoint_envoy_config::bootstrap::Inputs;
use waypoint_envoy_config::xds::Source;

/// N plain Services (one pod each) bound to the waypoint, each with an HTTPRoute;
/// `backend_of_0` is the backend of the first route (the one-route change flips it).
pub fn manifests(n: usize, backend_of_0: &str) -> String {
    let mut s = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: default}\n\
         spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}\n",
    );
    for i in 0..n {
        let (a, b) = (i / 250, i % 250);
        let backend = if i == 0 {
            backend_of_0.to_string()
        } else {
            format!("svc{i}")
        };
        s.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: default, labels: {{istio.io/use-waypoint: waypoint}}}}\n\
             spec: {{clusterIP: 10.96.{a}.{b}, ports: [{{name: http, port: 80, targetPort: 8080}}], selector: {{app: svc{i}}}}}\n\
             ---\napiVersion: v1\nkind: Pod\nmetadata: {{name: svc{i}-0, namespace: default, labels: {{app: svc{i}, istio.io/dataplane-mode: none}}}}\n\
             spec: {{serviceAccountName: svc{i}, containers: [{{name: app, image: x}}]}}\nstatus: {{podIP: 10.1.{a}.{b}}}\n\
             ---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: svc{i}, namespace: default}}\n\
             spec: {{parentRefs: [{{group: \"\", kind: Service, name: svc{i}, port: 80}}], rules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]}}\n"
        ));
    }
    s
}

pub fn source(dir: &Path) -> Source {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    for f in ["cert-chain.pem", "key.pem", "root-cert.pem"] {
        std::fs::write(
            certs.join(f),
            "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
    }
    Source {
        inputs: Inputs {
            config: vec![dir.join("config.yaml")],
            root: PathBuf::from("/"),
            namespace: "default".into(),
            waypoint: None,
            certs: waypoint_hbone::tls::CertPaths::from_dir(&certs),
            module_name: "waypoint".into(),
            trust_domain: "cluster.local".into(),
            originator: None,
            access_log: false,
            timeouts: Default::default(),
        },
        rebind: Default::default(),
        extra_listeners: Vec::new(),
    }
}
