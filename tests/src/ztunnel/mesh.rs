//! The interop test's mesh, in both configurations: the waypoint's Kubernetes/Istio manifests
//! and ztunnel's local config for the same pods, services, VIPs and waypoint.

use std::net::IpAddr;

use crate::waypoint::WAYPOINT_GATEWAY;
use crate::ztunnel::config::{local_config, ZtAllow, ZtService, ZtWorkload};

/// `web`: HTTP on port 80 → 8080, pods v1 and v2.
pub const HOST: &str = "web.default.svc.cluster.local";
pub const VIP: &str = "10.96.0.10";
/// `raw`: an opaque TCP service (port 9000) on the same pods, relayed at L4 by the waypoint.
pub const RAW_HOST: &str = "raw.default.svc.cluster.local";
pub const RAW_VIP: &str = "10.96.0.11";
/// `locked`: a TCP service whose only ALLOW policy names another identity (L4 deny → 401).
pub const LOCKED_HOST: &str = "locked.default.svc.cluster.local";
pub const LOCKED_VIP: &str = "10.96.0.12";

/// The waypoint's manifests: web (VIP:80 → 8080) with pods v1 and v2 in the ambient mesh,
/// subsets, a header route and a 90/10 split, two identity-based DENY policies; `raw` and
/// `locked` (TCP) on the same pods, `locked` with an ALLOW naming another identity.
pub fn waypoint_yaml(v1: IpAddr, v2: IpAddr) -> String {
    let mut y = format!(
        r#"{WAYPOINT_GATEWAY}
---
apiVersion: v1
kind: Namespace
metadata:
  name: default
  labels:
    istio.io/dataplane-mode: ambient
    istio.io/use-waypoint: waypoint
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  clusterIP: {VIP}
  ports:
  - name: http
    port: 80
    targetPort: 8080
  selector:
    app: web
---
apiVersion: v1
kind: Service
metadata:
  name: raw
  namespace: default
spec:
  clusterIP: {RAW_VIP}
  ports:
  - name: tcp
    appProtocol: tcp
    port: 9000
    targetPort: 9000
  selector:
    app: web
---
apiVersion: v1
kind: Service
metadata:
  name: locked
  namespace: default
spec:
  clusterIP: {LOCKED_VIP}
  ports:
  - name: tcp
    appProtocol: tcp
    port: 9100
    targetPort: 9000
  selector:
    app: web
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: locked-nobody
  namespace: default
spec:
  targetRefs:
  - kind: Service
    group: ""
    name: locked
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/nobody"]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: web
  namespace: default
spec:
  host: {HOST}
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
  namespace: default
spec:
  hosts:
  - {HOST}
  http:
  - match:
    - headers:
        x-canary:
          exact: "yes"
    route:
    - destination:
        host: {HOST}
        subset: v2
  - route:
    - destination:
        host: {HOST}
        subset: v1
      weight: 90
    - destination:
        host: {HOST}
        subset: v2
      weight: 10
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: sleep-no-private
  namespace: default
spec:
  targetRefs:
  - kind: Service
    group: ""
    name: web
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
    to:
    - operation:
        paths: ["/private*"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: other-no-mine
  namespace: default
spec:
  targetRefs:
  - kind: Service
    group: ""
    name: web
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/other"]
    to:
    - operation:
        paths: ["/mine*"]
"#
    );
    for (name, ip) in [("v1", v1), ("v2", v2)] {
        y.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-{name}\n  namespace: default\n  labels:\n    app: web\n    version: {name}\nspec:\n  serviceAccountName: web\n  containers:\n  - name: web\n    image: example\nstatus:\n  podIP: {ip}\n"
        ));
    }
    y
}

/// The mesh as ztunnel sees it.
pub fn ztunnel_yaml(client: IpAddr, waypoint: IpAddr, v1: IpAddr, v2: IpAddr) -> String {
    let wl = |name: &str, sa: &str, ip: IpAddr, services: Vec<(String, u16, u16)>| ZtWorkload {
        namespace: "default".into(),
        name: name.into(),
        service_account: sa.into(),
        ip,
        services,
    };
    let web = || {
        vec![
            (HOST.to_string(), 80, 8080),
            (RAW_HOST.to_string(), 9000, 9000),
            (LOCKED_HOST.to_string(), 9100, 9000),
        ]
    };
    // A service of the mesh, behind the waypoint.
    let svc = |name: &str, hostname: &str, vip: &str, port: (u16, u16)| ZtService {
        namespace: "default".into(),
        name: name.into(),
        hostname: hostname.into(),
        vip: vip.parse().expect("vip"),
        ports: vec![port],
        waypoint: Some(waypoint),
    };
    local_config(
        &[
            wl("sleep", "sleep", client, vec![]),
            wl("waypoint", "waypoint", waypoint, vec![]),
            wl("web-v1", "web", v1, web()),
            wl("web-v2", "web", v2, web()),
        ],
        &[
            svc("web", HOST, VIP, (80, 8080)),
            svc("raw", RAW_HOST, RAW_VIP, (9000, 9000)),
            svc("locked", LOCKED_HOST, LOCKED_VIP, (9100, 9000)),
        ],
        // Istio's advice for waypoints: the destination admits only its waypoint.
        &[ZtAllow {
            namespace: "default".into(),
            name: "only-waypoint".into(),
            principals: vec!["cluster.local/ns/default/sa/waypoint".into()],
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn both_views_describe_the_same_mesh() {
        let ip = |n: u8| IpAddr::from([10, 250, 0, n]);
        let docs: Vec<serde_yaml::Value> =
            serde_yaml::Deserializer::from_str(&waypoint_yaml(ip(31), ip(32)))
                .map(|d| serde_yaml::Value::deserialize(d).expect("YAML document"))
                .collect();
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        for (kind, n) in [
            ("Gateway", 1),
            ("Service", 3),
            ("Pod", 2),
            ("AuthorizationPolicy", 3),
            ("VirtualService", 1),
        ] {
            assert_eq!(
                kinds.iter().filter(|k| **k == kind).count(),
                n,
                "{kind}: {kinds:?}"
            );
        }
        let zt: serde_yaml::Value =
            serde_yaml::from_str(&ztunnel_yaml(ip(10), ip(20), ip(31), ip(32))).expect("YAML");
        let vips: Vec<&str> = zt["services"]
            .as_sequence()
            .expect("services")
            .iter()
            .filter_map(|s| s["vips"][0].as_str())
            .collect();
        assert_eq!(
            vips,
            [
                format!("/{VIP}"),
                format!("/{RAW_VIP}"),
                format!("/{LOCKED_VIP}")
            ]
        );
        for d in &docs {
            if d["kind"] == "Service" {
                let vip = d["spec"]["clusterIP"].as_str().expect("clusterIP");
                assert!(vips.contains(&format!("/{vip}").as_str()), "{vip}");
            }
        }
        assert_eq!(zt["workloads"].as_sequence().expect("workloads").len(), 4);
    }
}
