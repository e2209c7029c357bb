//! The synthetic mesh of the scale benchmark (`benches/scale/run.sh`): N Services bound to one
//! waypoint, each with one pod, one HTTPRoute and one ALLOW AuthorizationPolicy.

use std::fmt::Write;

/// The service VIP, pod IP and port of service `i` (the anchor's generator uses the same).
pub fn addresses(i: usize) -> (String, String) {
    let (a, b) = (i / 250, i % 250);
    (format!("10.96.{a}.{b}"), format!("10.1.{a}.{b}"))
}

/// Manifest YAML for `n` services in namespace `default`, bound to Gateway `default/waypoint`:
/// Service `svcI` (VIP `10.96.I/250.I%250:80` → pod port 8080), its pod `svcI-0` (service
/// account `svcI`), an HTTPRoute with a `/api` rule and a catch-all, and an ALLOW policy
/// for the client `sleep`'s principal on GET/POST. About 1.1 KB per service.
pub fn manifests(n: usize) -> String {
    let mut s = String::with_capacity(256 + n * 1200);
    s.push_str(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: default}\n\
         spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}\n",
    );
    for i in 0..n {
        let (vip, pod) = addresses(i);
        let _ = write!(
            s,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: default, labels: {{istio.io/use-waypoint: waypoint}}}}\n\
             spec: {{clusterIP: {vip}, ports: [{{name: http, port: 80, targetPort: 8080}}], selector: {{app: svc{i}}}}}\n\
             ---\napiVersion: v1\nkind: Pod\nmetadata: {{name: svc{i}-0, namespace: default, labels: {{app: svc{i}}}}}\n\
             spec: {{serviceAccountName: svc{i}, containers: [{{name: app, image: x}}]}}\nstatus: {{podIP: {pod}}}\n\
             ---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: svc{i}, namespace: default}}\n\
             spec:\n  parentRefs: [{{group: \"\", kind: Service, name: svc{i}, port: 80}}]\n  rules:\n\
             \x20 - matches: [{{path: {{type: PathPrefix, value: /api}}}}]\n    timeouts: {{request: 10s}}\n    backendRefs: [{{name: svc{i}, port: 80}}]\n\
             \x20 - backendRefs: [{{name: svc{i}, port: 80}}]\n\
             ---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: allow-svc{i}, namespace: default}}\n\
             spec:\n  targetRefs: [{{kind: Service, group: \"\", name: svc{i}}}]\n  action: ALLOW\n\
             \x20 rules:\n  - from: [{{source: {{principals: [cluster.local/ns/default/sa/sleep]}}}}]\n    to: [{{operation: {{methods: [GET, POST]}}}}]\n"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_compiles_with_its_route_and_policy() {
        let raw = waypoint_loader::load_text(&manifests(3), "mesh.yaml", "default");
        assert!(raw.errors.is_empty(), "{:?}", raw.errors);
        let (_, diags) = raw.build(&Default::default());
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        let count = |k: &str| raw.resources.iter().filter(|r| r.kind == k).count();
        let counts = ["Service", "Pod", "HTTPRoute", "AuthorizationPolicy"].map(count);
        assert_eq!(counts, [3, 3, 3, 3]);
    }
}
