//! waypoint-benches: synthetic config generators for the decision benchmarks.
//! Each generator returns manifest YAML that the core parses like any user config; and the
//! HBONE load generator (`hbone_load`, binary `hbone-load`).

pub mod hbone_load;
pub mod scale_mesh;
pub mod xds_fixture;

use std::fmt::Write;

/// A mesh of `services` services bound to one waypoint, each with a VirtualService of
/// `rules_per_service` prefix rules (the last a catch-all), and one ALLOW policy per service
/// for the first `policies` services plus a waypoint-wide DENY.
pub fn synthetic_mesh(services: usize, rules_per_service: usize, policies: usize) -> String {
    let mut y = String::with_capacity(services * (300 + rules_per_service * 120));
    y.push_str(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n  labels:\n    istio.io/use-waypoint: wp\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: wp, namespace: bench}\n\
         spec:\n  gatewayClassName: istio-waypoint\n  listeners: [{name: mesh, port: 15008, protocol: HBONE}]\n---\n\
         apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-admin, namespace: bench}\n\
         spec:\n  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: wp}]\n  action: DENY\n\
         \x20 rules: [{to: [{operation: {paths: [\"/admin/*\"]}}]}]\n",
    );
    for s in 0..services {
        let _ = write!(
            y,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{s}, namespace: bench}}\n\
             spec:\n  clusterIP: 10.{}.{}.{}\n  ports: [{{name: http, port: 80}}]\n  selector: {{app: svc{s}}}\n",
            100 + s / 65536,
            (s / 256) % 256,
            s % 256
        );
        let _ = write!(
            y,
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc{s}, namespace: bench}}\n\
             spec:\n  hosts: [svc{s}]\n  http:\n"
        );
        for r in 0..rules_per_service {
            if r + 1 == rules_per_service {
                let _ = writeln!(y, "  - route: [{{destination: {{host: svc{s}}}}}]");
            } else {
                let _ = write!(
                    y,
                    "  - match: [{{uri: {{prefix: /r{r}/}}, headers: {{x-tenant: {{exact: t{r}}}}}}}]\n    route: [{{destination: {{host: svc{s}}}, weight: 90}}, {{destination: {{host: svc{}}}, weight: 10}}]\n",
                    (s + 1) % services
                );
            }
        }
        if s < policies {
            let _ = write!(
                y,
                "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: allow-svc{s}, namespace: bench}}\n\
                 spec:\n  targetRefs: [{{kind: Service, group: \"\", name: svc{s}}}]\n  action: ALLOW\n\
                 \x20 rules:\n  - from: [{{source: {{principals: [cluster.local/ns/bench/sa/client]}}}}]\n    to: [{{operation: {{methods: [GET, POST], paths: [\"/r*\", \"/\"]}}}}]\n"
            );
        }
    }
    y
}
