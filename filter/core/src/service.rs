//! The service registry the core decides over: Services and ServiceEntries with their ports,
//! VIPs and endpoints (from Pods / EndpointSlices), indexed by hostname and by VIP.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Kubernetes Service or Istio ServiceEntry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    Service,
    ServiceEntry,
}

/// One service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub port: u16,
    /// Numeric target port; `None` when the Service names a container port by name.
    pub target_port: Option<u16>,
    /// Named target port (resolved per endpoint), if any.
    pub target_port_name: Option<String>,
    /// `appProtocol` or the protocol inferred from the port name (`http`, `grpc`, `tcp`...).
    pub protocol: String,
}

/// One endpoint of a service (a pod, or a ServiceEntry endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    /// Workload labels (used for DestinationRule subsets).
    pub labels: BTreeMap<String, String>,
    /// Service account of the workload, if known.
    pub service_account: Option<String>,
    /// Namespace of the workload.
    pub namespace: String,
    /// Named container ports of the workload (for named target ports).
    pub named_ports: BTreeMap<String, u16>,
    /// True when the endpoint is in the mesh (reached over HBONE).
    pub mesh: bool,
}

/// A service known to the waypoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub kind: ServiceKind,
    pub name: String,
    pub namespace: String,
    /// Primary hostname: `<name>.<ns>.svc.cluster.local` or the ServiceEntry host.
    pub hostname: String,
    /// Extra hostnames (ServiceEntry with several hosts).
    pub aliases: Vec<String>,
    pub vips: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
    pub labels: BTreeMap<String, String>,
    pub selector: BTreeMap<String, String>,
    pub endpoints: Vec<Endpoint>,
}

impl ServiceInfo {
    /// The port entry for service port `port`.
    pub fn port(&self, port: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.port == port)
    }

    /// Target port of service port `port` for `endpoint` (numeric, named, or same as port).
    pub fn target_port(&self, port: u16, endpoint: &Endpoint) -> u16 {
        match self.port(port) {
            Some(p) => match (&p.target_port, &p.target_port_name) {
                (Some(t), _) => *t,
                (None, Some(name)) => endpoint.named_ports.get(name).copied().unwrap_or(port),
                (None, None) => port,
            },
            None => port,
        }
    }

    /// Endpoints whose labels include every `(k, v)` of `subset_labels`.
    pub fn endpoints_matching<'a>(
        &'a self,
        subset_labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints.iter().filter(move |e| {
            subset_labels
                .iter()
                .all(|(k, v)| e.labels.get(k).is_some_and(|ev| ev == v))
        })
    }
}

/// `<name>.<namespace>.svc.<domain>` for a Kubernetes service.
pub fn service_fqdn(name: &str, namespace: &str, domain: &str) -> String {
    format!("{name}.{namespace}.svc.{domain}")
}

/// Default cluster domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Look-ups route and policy compilers need while resolving references.
pub trait ServiceLookup {
    /// Service (or ServiceEntry) by namespace and short name.
    fn by_name(&self, namespace: &str, name: &str) -> Option<&ServiceInfo>;
    /// Service by hostname: an FQDN, a ServiceEntry host, or a short name resolved in
    /// `namespace` (`reviews` → `reviews.<namespace>.svc.cluster.local`), also `name.ns`.
    fn by_host(&self, host: &str, namespace: &str) -> Option<&ServiceInfo>;
}
