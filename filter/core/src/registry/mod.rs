//! The service registry: Services, ServiceEntries, Pods, EndpointSlices and Namespaces turned
//! into `ServiceInfo`s, indexed by name, hostname and VIP; plus waypoint binding.

pub(crate) mod binding;
mod k8s;
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
    /// Endpoint IP → services that contain it.
    by_endpoint: HashMap<IpAddr, Vec<usize>>,
    /// Namespace labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Telemetry names of the workloads the Pods declare (see [`Workloads`]).
    pub workloads: Workloads,
}

/// Pods' workloads for telemetry labels: by pod IP, and by identity where one workload alone
/// runs as it.
#[derive(Debug, Default)]
pub struct Workloads {
    by_ip: HashMap<IpAddr, Arc<WorkloadMeta>>,
    /// (namespace, service account) → its workload; `None` when several workloads share it.
    by_identity: HashMap<(String, String), Option<Arc<WorkloadMeta>>>,
}

impl Workloads {
    fn insert(&mut self, ips: &[IpAddr], w: &Arc<WorkloadMeta>) {
        for ip in ips {
            self.by_ip.entry(*ip).or_insert_with(|| w.clone());
        }
        let key = (w.namespace.clone(), w.service_account.clone());
        match self.by_identity.get_mut(&key) {
            None => {
                self.by_identity.insert(key, Some(w.clone()));
            }
            Some(slot) => {
                if slot.as_ref().is_some_and(|o| o.name != w.name) {
                    *slot = None;
                }
            }
        }
    }

    /// The workload of the pod with IP `ip`.
    pub fn by_ip(&self, ip: IpAddr) -> Option<&WorkloadMeta> {
        self.by_ip.get(&ip).map(|w| &**w)
    }

    /// The one workload running as `namespace`/`service_account`, if exactly one does.
    pub fn by_identity(&self, namespace: &str, service_account: &str) -> Option<&WorkloadMeta> {
        self.by_identity
            .get(&(namespace.to_string(), service_account.to_string()))
            .and_then(|w| w.as_deref())
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
            self.by_vip.entry(*v).or_insert(idx);
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
}
