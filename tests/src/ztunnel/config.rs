//! ztunnel's local workload configuration (`LOCAL_XDS_PATH`, the YAML form of its xDS state):
//! workloads, services with a waypoint, and L4 authorization policies.

use std::fmt::Write;
use std::net::IpAddr;

/// One pod as ztunnel sees it (HBONE-capable, in trust domain `cluster.local`).
#[derive(Debug, Clone)]
pub struct ZtWorkload {
    pub namespace: String,
    pub name: String,
    pub service_account: String,
    pub ip: IpAddr,
    /// `(service hostname, service port, target port)` of the services selecting it.
    pub services: Vec<(String, u16, u16)>,
}

/// A service with a VIP, ports and (optionally) a waypoint reached on `waypoint:15008`.
#[derive(Debug, Clone)]
pub struct ZtService {
    pub namespace: String,
    pub name: String,
    pub hostname: String,
    pub vip: IpAddr,
    /// `(port, target port)`.
    pub ports: Vec<(u16, u16)>,
    pub waypoint: Option<IpAddr>,
}

/// A namespace-wide ALLOW policy whose only rule is "principal is one of `principals`"
/// (principals without `spiffe://`, as Istio writes them).
#[derive(Debug, Clone)]
pub struct ZtAllow {
    pub namespace: String,
    pub name: String,
    pub principals: Vec<String>,
}

/// The whole local config.
pub fn local_config(
    workloads: &[ZtWorkload],
    services: &[ZtService],
    allows: &[ZtAllow],
) -> String {
    let mut y = String::from("workloads:\n");
    for w in workloads {
        let _ = writeln!(
            y,
            "- uid: Kubernetes//Pod/{ns}/{name}\n  name: {name}\n  namespace: {ns}\n  serviceAccount: {sa}\n  trustDomain: cluster.local\n  workloadIps: [\"{ip}\"]\n  protocol: HBONE\n  node: local\n  network: \"\"\n  services:",
            ns = w.namespace,
            name = w.name,
            sa = w.service_account,
            ip = w.ip
        );
        if w.services.is_empty() {
            y.push_str("    {}\n");
        }
        for (host, port, target) in &w.services {
            let _ = writeln!(y, "    \"{}/{host}\":\n      {port}: {target}", w.namespace);
        }
    }
    y.push_str("services:\n");
    for s in services {
        let _ = writeln!(
            y,
            "- name: {}\n  namespace: {}\n  hostname: {}\n  vips: [\"/{}\"]\n  ports:",
            s.name, s.namespace, s.hostname, s.vip
        );
        for (p, t) in &s.ports {
            let _ = writeln!(y, "    {p}: {t}");
        }
        if let Some(wp) = s.waypoint {
            let _ = writeln!(
                y,
                "  waypoint:\n    destination: \"/{wp}\"\n    hboneMtlsPort: 15008"
            );
        }
    }
    y.push_str("policies:\n");
    for a in allows {
        let _ = writeln!(
            y,
            "- name: {}\n  namespace: {}\n  scope: Namespace\n  action: Allow\n  dryRun: false\n  rules:\n  - - - principals:",
            a.name, a.namespace
        );
        for p in &a.principals {
            // serde_yaml 0.9 spells enum variants as tags.
            let _ = writeln!(y, "        - !Exact \"{p}\"");
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_yaml_ztunnel_reads() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let y = local_config(
            &[
                ZtWorkload {
                    namespace: "default".into(),
                    name: "sleep".into(),
                    service_account: "sleep".into(),
                    ip: ip("10.0.0.2"),
                    services: vec![],
                },
                ZtWorkload {
                    namespace: "default".into(),
                    name: "web-v1".into(),
                    service_account: "web".into(),
                    ip: ip("10.0.0.3"),
                    services: vec![("web.default.svc.cluster.local".into(), 80, 8080)],
                },
            ],
            &[ZtService {
                namespace: "default".into(),
                name: "web".into(),
                hostname: "web.default.svc.cluster.local".into(),
                vip: ip("10.96.0.10"),
                ports: vec![(80, 8080)],
                waypoint: Some(ip("10.0.0.9")),
            }],
            &[ZtAllow {
                namespace: "default".into(),
                name: "only-waypoint".into(),
                principals: vec!["cluster.local/ns/default/sa/waypoint".into()],
            }],
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&y).expect("valid YAML");
        assert_eq!(
            v["workloads"][0]["services"],
            serde_yaml::Value::Mapping(Default::default())
        );
        assert_eq!(
            v["workloads"][1]["services"]["default/web.default.svc.cluster.local"][80],
            serde_yaml::Value::from(8080)
        );
        assert_eq!(
            v["services"][0]["vips"][0],
            serde_yaml::Value::from("/10.96.0.10")
        );
        assert_eq!(
            v["services"][0]["waypoint"]["destination"],
            serde_yaml::Value::from("/10.0.0.9")
        );
        let serde_yaml::Value::Tagged(t) = &v["policies"][0]["rules"][0][0][0]["principals"][0]
        else {
            panic!("principal must be a tagged enum value: {y}");
        };
        assert_eq!(t.tag, "Exact");
        assert_eq!(
            t.value,
            serde_yaml::Value::from("cluster.local/ns/default/sa/waypoint")
        );
    }
}
