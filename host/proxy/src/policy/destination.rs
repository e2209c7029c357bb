//! Where a CONNECT's destination leads in one compiled policy: a service port (with its
//! declared protocol), an address that is no service (pass-through), or nothing known.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use waypoint_core::service::PortKind;

use crate::policy::compiled::Policy;
use crate::policy::plan::ServiceMeta;
use crate::policy::target::{round_robin, target_for};
use crate::upstream::Target;

/// A destination the snapshot resolved to one of its services (the core's resolver result).
pub use waypoint_core::snapshot::ResolvedService;

/// A service destination: which service and port, its telemetry labels, and how its bytes are
/// handled (the port's declared protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDestination {
    pub resolved: ResolvedService,
    pub meta: Arc<ServiceMeta>,
    pub port_kind: PortKind,
}

/// Where a CONNECT's destination leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A service the config knows: every request gets a decision.
    Service(ServiceDestination),
    /// A pod IP of a service using this waypoint (Istio's direct-workload chains: no service
    /// route), or an address that is no service, VIP or endpoint: forward to the original
    /// destination itself (ztunnel only sends us what uses this waypoint).
    Passthrough(Target),
    /// Nothing to send to (a hostname authority that resolves to no service).
    Unknown,
}

impl Destination {
    /// How a tunnel's bytes are handled (Istio's protocol selection): the service port's
    /// declared protocol; sniffed for a port of unknown protocol, a port the service does not
    /// declare, or a destination that is no service (pass-through, as Istio's direct-workload
    /// chains sniff).
    pub fn port_kind(&self) -> PortKind {
        match self {
            Destination::Service(s) => s.port_kind,
            _ => PortKind::Sniff,
        }
    }

    /// The service's telemetry labels, when the destination is a service.
    pub fn service(&self) -> Option<&Arc<ServiceMeta>> {
        match self {
            Destination::Service(s) => Some(&s.meta),
            _ => None,
        }
    }
}

impl Policy {
    /// Resolve a CONNECT destination (`authority` is `ip:port` or `host:port`, `addr` its parse
    /// as a socket address): the one call of the core's destination resolver per tunnel and
    /// config generation.
    pub fn resolve(&self, authority: &str, addr: Option<SocketAddr>) -> Destination {
        match self.snapshot.resolve_destination(authority) {
            Ok(resolved) => {
                let svc = &self.snapshot.registry.services[resolved.index];
                Destination::Service(ServiceDestination {
                    resolved,
                    meta: self.service_meta(resolved.index),
                    port_kind: svc
                        .port(resolved.port)
                        .map_or(PortKind::Sniff, |p| PortKind::of(&p.protocol)),
                })
            }
            Err(_) => match addr {
                Some(a) => Destination::Passthrough(self.endpoint_target(a)),
                None => Destination::Unknown,
            },
        }
    }

    /// A pass-through target: HBONE when the IP is a known mesh endpoint.
    fn endpoint_target(&self, addr: SocketAddr) -> Target {
        let reg = &self.snapshot.registry;
        reg.indexes_by_endpoint(addr.ip())
            .first()
            .and_then(|i| {
                reg.services[*i]
                    .endpoints
                    .iter()
                    .find(|e| e.ip == addr.ip())
            })
            .map(|ep| {
                let mut t = target_for(None, ep, addr.port(), &self.options);
                t.addr = addr;
                t
            })
            .unwrap_or_else(|| Target::plain(addr))
    }

    /// Where opaque TCP to `destination` goes: an endpoint of its service by round robin (the
    /// address itself when it is no service; `None`: nothing to connect to).
    pub fn tcp_target(&self, destination: &Destination) -> Option<Target> {
        match destination {
            Destination::Service(s) => {
                let svc = &self.snapshot.registry.services[s.resolved.index];
                let n = svc.endpoints.len();
                if n == 0 {
                    return None;
                }
                let ep = &svc.endpoints[round_robin(n)];
                Some(target_for(Some(svc), ep, s.resolved.port, &self.options))
            }
            Destination::Passthrough(t) => Some(t.clone()),
            Destination::Unknown => None,
        }
    }

    /// L4 authorization of opaque TCP to `authority` with Istio's TCP semantics (HTTP-only
    /// conditions dropped from DENY rules, ALLOW rules holding them never match): the
    /// service's policies, or the waypoint's own for a pass-through address. `false` → refuse
    /// (401 at CONNECT, or close before relaying a byte).
    pub fn authorize_tcp(
        &self,
        principal: Option<&str>,
        source_ip: Option<IpAddr>,
        authority: &str,
    ) -> bool {
        self.snapshot
            .authorize_tcp(principal, source_ip, authority, false)
            .allowed
    }
}
