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
    /// `appProtocol` or the protocol inferred from the port name (`http`, `grpc`, `tcp`...),
    /// see [`select_protocol`]; `""` when unknown (sniffed, see [`PortKind`]).
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
    /// True when the endpoint runs an Istio sidecar that does not accept HBONE: reached with
    /// Istio mutual TLS straight to its target port (never set with `mesh`; see
    /// `registry::pod_mode`).
    pub sidecar: bool,
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

/// How the waypoint handles the bytes of a tunnel to a service port (Istio's protocol
/// selection, `listener_waypoint.go buildWaypointInternal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// Declared HTTP (`http`, `http2`, `grpc`, `grpc-web`, `http_proxy`): always served as
    /// HTTP, never relayed as opaque bytes.
    Http,
    /// Declared opaque (`tcp`, `tls`, `https`, `mongo`, `mysql`, `redis`, `udp`): relayed,
    /// authorized with TCP semantics.
    Tcp,
    /// Unknown protocol (Istio `Unsupported`): sniffed; HTTP if the first bytes are, else TCP.
    Sniff,
}

impl PortKind {
    /// The kind of a [`ServicePort::protocol`] as [`select_protocol`] spells it.
    pub fn of(protocol: &str) -> PortKind {
        match protocol {
            "http" | "http2" | "grpc" | "grpc-web" | "http_proxy" => PortKind::Http,
            "tcp" | "tls" | "https" | "mongo" | "mysql" | "redis" | "udp" => PortKind::Tcp,
            _ => PortKind::Sniff,
        }
    }
}

/// Istio's protocol of a Kubernetes Service port (`pkg/config/kube.ConvertProtocol` and
/// `protocol.Parse`): UDP ports are `udp`; else `appProtocol` (with the Kubernetes standard
/// `kubernetes.io/h2c` = `http2`, `kubernetes.io/ws` = `http`, `kubernetes.io/wss` = `https`),
/// else the port name; a `grpc-web` prefix, else the part before the first `-`, parsed
/// case-insensitively. Anything else is `""` (unsupported: sniffed), except the well-known
/// DNS port 53, which is `tcp`.
pub fn select_protocol(
    port: u16,
    name: &str,
    transport: Option<&str>,
    app_protocol: Option<&str>,
) -> String {
    if transport.is_some_and(|t| t.eq_ignore_ascii_case("udp")) {
        return "udp".to_string();
    }
    let name = match app_protocol {
        Some("kubernetes.io/h2c") => return "http2".to_string(),
        Some("kubernetes.io/ws") => return "http".to_string(),
        Some("kubernetes.io/wss") => return "https".to_string(),
        Some(p) => p,
        None => name,
    };
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("grpc-web") {
        return "grpc-web".to_string();
    }
    let prefix = lower.split('-').next().unwrap_or("");
    match prefix {
        "tcp" | "udp" | "grpc" | "http" | "http_proxy" | "http2" | "https" | "tls" | "mongo"
        | "redis" | "mysql" => prefix.to_string(),
        _ if port == 53 => "tcp".to_string(),
        _ => String::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_selection_as_istio() {
        // (port, name, transport, appProtocol, protocol, kind)
        for (port, name, transport, app, want, kind) in [
            (80, "http", None, None, "http", PortKind::Http),
            (80, "http-web", None, None, "http", PortKind::Http),
            (80, "HTTP2-x", None, None, "http2", PortKind::Http),
            (80, "grpc-web-x", None, None, "grpc-web", PortKind::Http),
            (80, "grpc", None, None, "grpc", PortKind::Http),
            (80, "web", None, Some("http"), "http", PortKind::Http),
            (
                80,
                "web",
                None,
                Some("kubernetes.io/h2c"),
                "http2",
                PortKind::Http,
            ),
            (
                80,
                "web",
                None,
                Some("kubernetes.io/ws"),
                "http",
                PortKind::Http,
            ),
            (
                80,
                "http",
                None,
                Some("kubernetes.io/wss"),
                "https",
                PortKind::Tcp,
            ),
            (80, "http", None, Some("tcp"), "tcp", PortKind::Tcp),
            (3306, "mysql", None, None, "mysql", PortKind::Tcp),
            (6379, "redis-main", None, None, "redis", PortKind::Tcp),
            (27017, "mongo", None, None, "mongo", PortKind::Tcp),
            (443, "tls-x", None, None, "tls", PortKind::Tcp),
            (443, "https", None, None, "https", PortKind::Tcp),
            (9000, "", None, None, "", PortKind::Sniff),
            (9000, "web", None, None, "", PortKind::Sniff),
            (9000, "httpx", None, None, "", PortKind::Sniff),
            (9000, "http", None, Some("custom"), "", PortKind::Sniff),
            (53, "dns", None, None, "tcp", PortKind::Tcp),
            (53, "dns", Some("UDP"), None, "udp", PortKind::Tcp),
        ] {
            let got = select_protocol(port, name, transport, app);
            assert_eq!(got, want, "{port} {name} {app:?}");
            assert_eq!(PortKind::of(&got), kind, "{port} {name} {app:?}");
        }
    }
}
