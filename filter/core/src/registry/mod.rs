//! The service registry: Services, ServiceEntries, Pods, EndpointSlices and Namespaces turned
//! into `ServiceInfo`s, indexed by name, hostname and VIP; plus waypoint binding.

pub(crate) mod binding;
mod k8s;
mod service_entry;

pub use binding::{find_waypoints, Waypoint, WaypointRef};

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::net::IpAddr;

use crate::error::Diagnostics;
use crate::resource::RawResource;
use crate::service::{ServiceInfo, ServiceLookup, CLUSTER_DOMAIN};

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
}

impl Registry {
    /// Build from raw resources; reports bad Services / ServiceEntries / Pods / EndpointSlices.
    pub fn build(resources: &[RawResource], diags: &mut Diagnostics) -> Registry {
        let mut reg = Registry::default();
        for r in resources.iter().filter(|r| r.kind == "Namespace") {
            reg.namespaces.insert(r.name.clone(), r.labels.clone());
        }
        let pods = k8s::pods(resources, diags);
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
