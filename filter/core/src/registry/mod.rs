//! The service registry: Services, ServiceEntries, Pods, EndpointSlices and Namespaces turned
//! into `ServiceInfo`s, indexed by name, hostname and VIP; plus waypoint binding.

pub(crate) mod binding;
mod k8s;
pub mod pod_mode;
mod service_entry;

pub use binding::{find_waypoints, Waypoint, WaypointRef};

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::error::Diagnostics;
use crate::resource::RawResource;
use crate::service::{ServiceInfo, ServiceLookup, CLUSTER_DOMAIN};
use crate::telemetry_labels::WorkloadMeta;

/// All services known to the config, with indexes.
#[derive(Debug, Default)]
pub struct Registry {
    pub services: Vec<ServiceInfo>,
    by_name: HashMap<(String, String), usize>,
    by_host: HashMap<String, usize>,
    by_vip: HashMap<IpAddr, usize>,
    /// `vip:port` as a destination spells it (`SocketAddr`'s form) → (service, port, VIP): the
    /// usual destination resolved by one hash lookup instead of splitting and parsing it.
    by_vip_port: HashMap<Box<str>, (usize, u16, IpAddr)>,
    /// Endpoint IP → services that contain it.
    by_endpoint: HashMap<IpAddr, Vec<usize>>,
    /// Namespace labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Telemetry names of the workloads the Pods declare (see [`Workloads`]).
    pub workloads: Workloads,
}

/// Pods' workloads for telemetry labels: by pod IP, and by identity where one workload alone
/// runs as it. Each distinct workload has a [`WorkloadId`] (the Envoy module keys its metric
/// aggregates by it instead of by 25 label strings).
#[derive(Debug, Default)]
pub struct Workloads {
    list: Vec<Arc<WorkloadMeta>>,
    /// Each distinct workload's id (replicas of one Deployment are one workload).
    ids: HashMap<Arc<WorkloadMeta>, WorkloadId>,
    by_ip: HashMap<IpAddr, WorkloadId>,
    /// namespace → service account → its workload; `None` when several workloads share it.
    by_identity: HashMap<String, HashMap<String, Option<WorkloadId>>>,
}

/// The index of a workload in its [`Workloads`] (stable for the registry's lifetime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkloadId(u32);

impl Workloads {
    fn insert(&mut self, ips: &[IpAddr], w: &Arc<WorkloadMeta>) {
        let id = match self.ids.get(w) {
            Some(id) => *id,
            None => {
                let id = WorkloadId(u32::try_from(self.list.len()).unwrap_or(u32::MAX));
                self.list.push(w.clone());
                self.ids.insert(w.clone(), id);
                id
            }
        };
        for ip in ips {
            self.by_ip.entry(*ip).or_insert(id);
        }
        let by_sa = self.by_identity.entry(w.namespace.clone()).or_default();
        match by_sa.get(&w.service_account).copied() {
            None => {
                by_sa.insert(w.service_account.clone(), Some(id));
            }
            Some(Some(other)) if self.list[other.0 as usize].name != w.name => {
                by_sa.insert(w.service_account.clone(), None);
            }
            Some(_) => {}
        }
    }

    /// The workload with id `id`.
    pub fn get(&self, id: WorkloadId) -> Option<&WorkloadMeta> {
        self.list.get(id.0 as usize).map(|w| &**w)
    }

    /// The id of the workload of the pod with IP `ip`.
    pub fn id_by_ip(&self, ip: IpAddr) -> Option<WorkloadId> {
        self.by_ip.get(&ip).copied()
    }

    /// The id of the one workload running as `namespace`/`service_account`, if exactly one
    /// does (no allocation: the look-up is by borrowed names).
    pub fn id_by_identity(&self, namespace: &str, service_account: &str) -> Option<WorkloadId> {
        self.by_identity
            .get(namespace)?
            .get(service_account)
            .copied()
            .flatten()
    }

    /// The workload of the pod with IP `ip`.
    pub fn by_ip(&self, ip: IpAddr) -> Option<&WorkloadMeta> {
        self.get(self.id_by_ip(ip)?)
    }

    /// The one workload running as `namespace`/`service_account`, if exactly one does.
    pub fn by_identity(&self, namespace: &str, service_account: &str) -> Option<&WorkloadMeta> {
        self.get(self.id_by_identity(namespace, service_account)?)
    }
}

impl Registry {
    /// Build from raw resources; reports bad Services / ServiceEntries / Pods / EndpointSlices.
    pub fn build(resources: &[RawResource], diags: &mut Diagnostics) -> Registry {
        let mut reg = Registry::default();
        for r in resources.iter().filter(|r| r.kind == "Namespace") {
            reg.namespaces.insert(r.name.clone(), r.labels.clone());
        }
        let pods = k8s::pods(resources, diags);
        for p in &pods {
            reg.workloads.insert(&p.ips, &p.workload);
        }
        let mut services = k8s::services(resources, &pods, &reg.namespaces, diags);
        services.extend(service_entry::service_entries(resources, diags));
        for s in services {
            reg.insert(s);
        }
        reg
    }

    fn insert(&mut self, s: ServiceInfo) {
        let idx = self.services.len();
        self.by_name
            .entry((s.namespace.clone(), s.name.clone()))
            .or_insert(idx);
        self.by_host.entry(s.hostname.clone()).or_insert(idx);
        for a in &s.aliases {
            self.by_host.entry(a.clone()).or_insert(idx);
        }
        for v in &s.vips {
            // The first service with a VIP owns it (as `by_vip`), on each of its ports.
            if *self.by_vip.entry(*v).or_insert(idx) == idx {
                for p in &s.ports {
                    let key = std::net::SocketAddr::new(*v, p.port).to_string();
                    self.by_vip_port
                        .entry(key.into_boxed_str())
                        .or_insert((idx, p.port, *v));
                }
            }
        }
        for e in &s.endpoints {
            self.by_endpoint.entry(e.ip).or_default().push(idx);
        }
        self.services.push(s);
    }

    /// Index of a service by namespace/name.
    pub fn index_by_name(&self, namespace: &str, name: &str) -> Option<usize> {
        self.by_name
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
    }

    /// Index of a service by hostname, resolving short names in `namespace`.
    pub fn index_by_host(&self, host: &str, namespace: &str) -> Option<usize> {
        let host = host.trim_end_matches('.');
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        if let Some(i) = self.by_host.get(host) {
            return Some(*i);
        }
        // `name`, `name.ns`, `name.ns.svc` (Kubernetes DNS search path).
        let parts: Vec<&str> = host.split('.').collect();
        match parts.as_slice() {
            [name] => self.index_by_name(namespace, name),
            [name, ns] | [name, ns, "svc"] => self.index_by_name(ns, name),
            _ => {
                let suffix = format!(".svc.{CLUSTER_DOMAIN}");
                let base = host.strip_suffix(&suffix)?;
                let (name, ns) = base.split_once('.')?;
                self.index_by_name(ns, name)
            }
        }
    }

    /// Index of the service with VIP `ip`.
    pub fn index_by_vip(&self, ip: IpAddr) -> Option<usize> {
        self.by_vip.get(&ip).copied()
    }

    /// (service index, port, VIP) of a destination spelled exactly `vip:port` for a port the
    /// service declares; `None` for any other form (the caller parses those).
    pub fn by_vip_port(&self, destination: &str) -> Option<(usize, u16, IpAddr)> {
        self.by_vip_port.get(destination).copied()
    }

    /// Services having an endpoint with IP `ip`.
    pub fn indexes_by_endpoint(&self, ip: IpAddr) -> &[usize] {
        self.by_endpoint.get(&ip).map(Vec::as_slice).unwrap_or(&[])
    }
}

impl ServiceLookup for Registry {
    fn by_name(&self, namespace: &str, name: &str) -> Option<&ServiceInfo> {
        self.index_by_name(namespace, name)
            .map(|i| &self.services[i])
    }

    fn by_host(&self, host: &str, namespace: &str) -> Option<&ServiceInfo> {
        self.index_by_host(host, namespace)
            .map(|i| &self.services[i])
    }
}

#[cfg(test)]
mod workload_tests {
    use super::*;
    use crate::resource::parse_manifests;

    const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: reviews-v2-5b4f8c9d7-x2x7q
  generateName: reviews-v2-5b4f8c9d7-
  namespace: default
  labels: {app: reviews, version: v2, pod-template-hash: 5b4f8c9d7}
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: reviews-v2-5b4f8c9d7, uid: u1, controller: true}
spec: {serviceAccountName: bookinfo-reviews, containers: [{name: app, image: reviews}]}
status: {podIP: 10.0.0.12}
---
apiVersion: v1
kind: Pod
metadata:
  name: reviews-v3-0
  namespace: default
  labels: {app: reviews, version: v3}
spec: {serviceAccountName: bookinfo-reviews, containers: [{name: app, image: reviews}]}
status: {podIP: 10.0.0.13}
---
apiVersion: v1
kind: Pod
metadata:
  name: sleep-1
  namespace: default
  labels: {service.istio.io/canonical-name: sleeper, app: sleep}
spec: {serviceAccountName: sleep, containers: [{name: app, image: sleep}]}
status: {podIP: 10.0.0.20}
"#;

    #[test]
    fn pods_name_their_workloads_by_ip_and_by_a_unique_identity() {
        let (resources, errors) = parse_manifests(PODS, "pods.yaml", "default", 0);
        assert!(errors.is_empty(), "{errors:?}");
        let mut diags = Diagnostics::default();
        let reg = Registry::build(&resources, &mut diags);
        let w = reg.workloads.by_ip("10.0.0.12".parse().expect("ip"));
        let w = w.expect("reviews-v2 pod");
        assert_eq!(
            (
                w.name.as_str(),
                w.canonical_service.as_str(),
                w.canonical_revision.as_str()
            ),
            ("reviews-v2", "reviews", "v2")
        );
        assert_eq!(w.service_account, "bookinfo-reviews");
        let v3 = reg.workloads.by_ip("10.0.0.13".parse().expect("ip"));
        assert_eq!(v3.map(|w| w.name.as_str()), Some("reviews-v3-0"));
        // Two workloads run as bookinfo-reviews: the identity names neither.
        assert!(reg
            .workloads
            .by_identity("default", "bookinfo-reviews")
            .is_none());
        let sleep = reg
            .workloads
            .by_identity("default", "sleep")
            .expect("sleep");
        assert_eq!(
            (
                sleep.name.as_str(),
                sleep.canonical_service.as_str(),
                sleep.canonical_revision.as_str()
            ),
            ("sleep-1", "sleeper", "latest")
        );
        assert!(reg
            .workloads
            .by_ip("10.0.0.99".parse().expect("ip"))
            .is_none());
    }

    #[test]
    fn replicas_of_one_workload_share_its_id() {
        let second = "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: reviews-v2-5b4f8c9d7-yyyyy\n  generateName: reviews-v2-5b4f8c9d7-\n  namespace: default\n  labels: {app: reviews, version: v2, pod-template-hash: 5b4f8c9d7}\n  ownerReferences:\n  - {apiVersion: apps/v1, kind: ReplicaSet, name: reviews-v2-5b4f8c9d7, uid: u1, controller: true}\nspec: {serviceAccountName: bookinfo-reviews, containers: [{name: app, image: reviews}]}\nstatus: {podIP: 10.0.0.14}\n";
        let (resources, errors) =
            parse_manifests(&format!("{PODS}{second}"), "pods.yaml", "default", 0);
        assert!(errors.is_empty(), "{errors:?}");
        let reg = Registry::build(&resources, &mut Diagnostics::default());
        let w = &reg.workloads;
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let (a, b) = (w.id_by_ip(ip("10.0.0.12")), w.id_by_ip(ip("10.0.0.14")));
        assert!(a.is_some());
        assert_eq!(a, b, "two replicas of reviews-v2");
        assert_ne!(
            a,
            w.id_by_ip(ip("10.0.0.13")),
            "reviews-v3-0 is another workload"
        );
        let sleep = w.id_by_identity("default", "sleep").expect("sleep");
        assert_eq!(w.get(sleep).map(|m| m.name.as_str()), Some("sleep-1"));
        assert_eq!(w.id_by_identity("other", "sleep"), None);
    }
}
