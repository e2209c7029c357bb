//! The one place the host calls the policy core: compile config into a [`Policy`] (the core's
//! snapshot), and turn
//! each request's `Decision` into an owned [`Plan`] with concrete upstream targets.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use waypoint_core::authz::normalize_path_stable;
use waypoint_core::decision::{Action, Decision};
use waypoint_core::resource::RawResource;
use waypoint_core::route::{BackendRef, HashKey, LoadBalancer};
use waypoint_core::service::{Endpoint, PortKind, ServiceInfo, ServiceLookup};
use waypoint_core::snapshot::{BuildOptions, Snapshot, RBAC_DENIED_BODY};
use waypoint_core::{Diagnostics, RandomSource, Request};

use crate::ext_authz::ExtAuthzCall;
use crate::policy::plan::{ForwardPlan, LocalReply, MirrorTarget, Plan, PlanKind, ServiceMeta};
use crate::upstream::{HboneHop, Target};
use waypoint_hbone::tls::Identity;

/// Options the policy needs besides the manifests.
#[derive(Debug, Clone)]
pub struct PolicyOptions {
    /// `namespace/name` of the waypoint Gateway this host serves, if set.
    pub waypoint: Option<String>,
    pub trust_domain: String,
    /// Port mesh endpoints accept HBONE on (15008 in a cluster).
    pub hbone_port: u16,
}

/// Compiled policy: the core's snapshot plus what the host needs to reach endpoints.
#[derive(Debug)]
pub struct Policy {
    pub options: PolicyOptions,
    pub snapshot: Snapshot,
    /// How many resources the policy was built from.
    pub resource_count: usize,
}

/// Where a CONNECT's destination leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A service the config knows: every request gets a decision.
    Service(ServiceMeta),
    /// Not a known service, VIP or endpoint: forward to the original destination itself
    /// (workload-addressed pass-through; ztunnel only sends us what uses this waypoint).
    Passthrough(Target),
    /// Nothing to send to (a hostname authority that resolves to no service).
    Unknown,
}

/// Service-port protocols whose upstream is HTTP/2 (Istio: `http2`, `grpc`, `grpc-web`).
fn is_h2_protocol(p: &str) -> bool {
    matches!(p, "http2" | "grpc" | "grpc-web")
}

impl Policy {
    /// Compile `resources`; errors in the diagnostics mean the change must be rejected.
    pub fn compile(resources: &[RawResource], options: &PolicyOptions) -> (Policy, Diagnostics) {
        let build = BuildOptions {
            waypoint: options
                .waypoint
                .as_deref()
                .and_then(|w| w.split_once('/'))
                .map(|(ns, n)| (ns.to_string(), n.to_string())),
            ..BuildOptions::default()
        };
        let (snapshot, diags) = Snapshot::build(resources, &build);
        (
            Policy {
                options: options.clone(),
                snapshot,
                resource_count: resources.len(),
            },
            diags,
        )
    }

    /// Classify a CONNECT destination (`ip:port` or `host:port`).
    pub fn destination(&self, authority: &str, addr: Option<SocketAddr>) -> Destination {
        match self.snapshot.resolve_destination(authority) {
            Ok((idx, _, _)) => Destination::Service(meta(&self.snapshot.registry.services[idx])),
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

    /// How a tunnel's bytes are handled (Istio's protocol selection): the service port's
    /// declared protocol; sniffed for a port of unknown protocol, a port the service does not
    /// declare, or a destination that is no service (pass-through, as Istio's direct-workload
    /// chains sniff).
    pub fn port_kind(&self, destination: &str) -> PortKind {
        match self.snapshot.resolve_destination(destination) {
            Ok((idx, port, _)) => self.snapshot.registry.services[idx]
                .port(port)
                .map_or(PortKind::Sniff, |p| PortKind::of(&p.protocol)),
            Err(_) => PortKind::Sniff,
        }
    }

    /// L4 authorization of opaque TCP to `destination` with Istio's TCP semantics (HTTP-only
    /// conditions dropped from DENY rules, ALLOW rules holding them never match): the
    /// service's policies, or the waypoint's own for a pass-through address. `false` → refuse
    /// (401 at CONNECT, or close before relaying a byte).
    pub fn allow_tcp(
        &self,
        principal: Option<&str>,
        source_ip: Option<std::net::IpAddr>,
        destination: &str,
    ) -> bool {
        let outcome = self
            .snapshot
            .authorize_tcp(principal, source_ip, destination, false);
        outcome.allowed
    }

    /// Where opaque TCP to a destination goes: an endpoint of its service by round robin
    /// (the destination itself when it is not a service).
    pub fn tcp_target(&self, destination: &str) -> Option<Target> {
        match self.snapshot.resolve_destination(destination) {
            Ok((idx, port, _)) => {
                let svc = &self.snapshot.registry.services[idx];
                let n = svc.endpoints.len();
                if n == 0 {
                    return None;
                }
                let i = (ROUND_ROBIN.fetch_add(1, Ordering::Relaxed) % n as u64) as usize;
                Some(target_for(
                    Some(svc),
                    &svc.endpoints[i],
                    port,
                    &self.options,
                ))
            }
            Err(_) => destination.parse().ok().map(|a| self.endpoint_target(a)),
        }
    }

    /// Bound services, routes, policies and endpoints, for `/config_dump`.
    pub fn dump(&self) -> serde_json::Value {
        use serde_json::json;
        let snap = &self.snapshot;
        let services: Vec<_> = snap
            .registry
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let routes = snap.service_routes(i).map(|r| {
                    json!({
                        "source": format!("{:?}", r.source),
                        "rules": r.entries.iter().map(|e| format!("{}#{}", e.rule.id.resource(), e.rule.id.rule)).collect::<Vec<_>>(),
                    })
                });
                json!({
                    "hostname": s.hostname,
                    "namespace": s.namespace,
                    "name": s.name,
                    "kind": format!("{:?}", s.kind),
                    "vips": s.vips.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
                    "ports": s.ports.iter().map(|p| json!({"name": p.name, "port": p.port, "target_port": p.target_port, "protocol": p.protocol})).collect::<Vec<_>>(),
                    "endpoints": s.endpoints.iter().map(|e| json!({
                        "ip": e.ip.to_string(), "mesh": e.mesh, "namespace": e.namespace,
                        "service_account": e.service_account, "labels": e.labels,
                    })).collect::<Vec<_>>(),
                    "bound": routes.is_some(),
                    "routes": routes,
                })
            })
            .collect();
        json!({
            "waypoint": snap.waypoint.as_ref().map(|w| format!("{}/{}", w.namespace, w.name)),
            "resource_count": self.resource_count,
            "services": services,
            "policies": snap.policies().iter().map(|p| json!({
                "policy": p.id.to_string(),
                "action": format!("{:?}", p.action),
                "dry_run": p.dry_run,
            })).collect::<Vec<_>>(),
            "diagnostics": {
                "errors": snap.diagnostics.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                "warnings": snap.diagnostics.warnings.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            },
        })
    }

    /// The plan for one request.
    pub fn plan(&self, req: &Request<'_>, rng: &mut dyn RandomSource) -> Plan {
        if self.snapshot.resolve_destination(req.destination).is_err() {
            if let Some(addr) = req.destination_addr() {
                return self.plan_passthrough(req, addr);
            }
        }
        let d = self.snapshot.decide(req, rng, false);
        let reg = &self.snapshot.registry;
        let mut plan = plan_from_decision(
            &d,
            req,
            &self.options,
            &|b: &BackendRef| reg.by_host(&b.host, &b.namespace),
            rng,
        );
        if let Some(name) = d.ext_authz {
            let call = || ExtAuthzCall::resolve(&self.snapshot, name, &self.options);
            match &mut plan.kind {
                PlanKind::Forward(fp) => fp.ext_authz = Some(call()),
                PlanKind::Local(reply) if d.action == Action::Deny => {
                    let reply = std::mem::replace(
                        reply,
                        LocalReply {
                            status: 403,
                            body: String::new(),
                            headers: Vec::new(),
                        },
                    );
                    plan.kind = PlanKind::AskThenLocal(Box::new(call()), reply);
                }
                _ => {}
            }
        }
        plan
    }
}

impl Policy {
    /// An HTTP request to an address that is no service: the waypoint's own policies decide
    /// (HTTP semantics, path normalized per mesh config), then it goes to that address.
    fn plan_passthrough(&self, req: &Request<'_>, addr: SocketAddr) -> Plan {
        let local = |action: &'static str, status: u16, body: &str| Plan {
            action,
            rule: None,
            service: None,
            delay: None,
            kind: PlanKind::Local(LocalReply {
                status,
                body: body.to_string(),
                headers: Vec::new(),
            }),
        };
        let mode = self.snapshot.mesh().path_normalization;
        let Some(path) = normalize_path_stable(mode, req.path) else {
            // Envoy rejects a path it cannot normalize.
            return local("direct_response", 400, "Bad Request");
        };
        let outcome = self.snapshot.authorize_passthrough(req, &path, false);
        if !outcome.allowed {
            return local("deny", 403, RBAC_DENIED_BODY);
        }
        let ext_authz = outcome
            .custom
            .map(|name| ExtAuthzCall::resolve(&self.snapshot, name, &self.options));
        Plan {
            action: "passthrough",
            rule: None,
            service: None,
            delay: None,
            kind: PlanKind::Forward(Box::new(ForwardPlan {
                targets: vec![self.endpoint_target(addr)],
                path: match path {
                    Cow::Owned(p) => Some(p),
                    Cow::Borrowed(_) => None,
                },
                ext_authz,
                ..Default::default()
            })),
        }
    }
}

/// Round-robin cursor shared by every request (Envoy keeps one per cluster; one global
/// counter spreads load the same way over time).
static ROUND_ROBIN: AtomicU64 = AtomicU64::new(0);

/// Convert the core's decision into a plan. `lookup` resolves mirror backends.
pub fn plan_from_decision<'s>(
    d: &Decision<'s>,
    req: &Request<'_>,
    options: &PolicyOptions,
    lookup: &dyn Fn(&BackendRef) -> Option<&'s ServiceInfo>,
    rng: &mut dyn RandomSource,
) -> Plan {
    let service = d.service.map(meta);
    let rule = d
        .matched_rule
        .map(|r| format!("{}#{}", r.resource(), r.rule));
    let local = |status: u16, body: &str| {
        PlanKind::Local(LocalReply {
            status,
            body: body.to_string(),
            headers: Vec::new(),
        })
    };
    let kind = match (d.action, &d.local, &d.forward) {
        (Action::Route, _, Some(f)) => {
            let port = f.port;
            let targets = order_targets(
                f.service,
                &f.endpoints.to_vec(),
                port,
                options,
                f.traffic_policy
                    .as_ref()
                    .and_then(|t| t.load_balancer.as_ref()),
                req,
                rng,
            );
            if targets.is_empty() {
                // Envoy's reply when a cluster has no healthy host (flag UH).
                local(503, "no healthy upstream")
            } else {
                let mut mirrors = Vec::new();
                for m in f.mirrors {
                    if !rng.chance(m.percent) {
                        continue;
                    }
                    let Some(svc) = lookup(&m.backend) else {
                        continue;
                    };
                    let mport = m.backend.port.unwrap_or(port);
                    let eps: Vec<&Endpoint> = svc.endpoints.iter().collect();
                    if let Some(t) = order_targets(Some(svc), &eps, mport, options, None, req, rng)
                        .into_iter()
                        .next()
                    {
                        mirrors.push(MirrorTarget {
                            target: t,
                            authority: format!("{}:{}", svc.hostname, mport),
                        });
                    }
                }
                PlanKind::Forward(Box::new(ForwardPlan {
                    targets,
                    request_headers: f.request_headers.iter().map(|h| (*h).clone()).collect(),
                    response_headers: f.response_headers.iter().map(|h| (*h).clone()).collect(),
                    path: f.path.clone(),
                    authority: f.authority.clone(),
                    timeout: f.timeout,
                    per_try_timeout: f
                        .retries
                        .and_then(|r| r.per_try_timeout)
                        .or(f.backend_timeout),
                    retries: f.retries.cloned(),
                    fault_delay: f.fault_delay,
                    mirrors,
                    cors: f.cors.cloned(),
                    upstream_h2: f
                        .service
                        .and_then(|s| s.port(port))
                        .map(|p| is_h2_protocol(&p.protocol)),
                    least_request: matches!(
                        f.traffic_policy
                            .as_ref()
                            .and_then(|t| t.load_balancer.as_ref()),
                        Some(LoadBalancer::LeastRequest)
                    ),
                    outlier: f
                        .traffic_policy
                        .as_ref()
                        .and_then(|t| t.outlier_detection.clone()),
                    // Unresolved (fails closed) until `Policy::plan` resolves the provider.
                    ext_authz: d.ext_authz.map(ExtAuthzCall::unresolved),
                }))
            }
        }
        (_, Some(l), _) => PlanKind::Local(LocalReply {
            status: l.status,
            body: l.body.clone(),
            headers: l.headers.clone(),
        }),
        // A decision without its payload: treat as the core's error (500).
        _ => local(500, "internal error: decision without payload"),
    };
    // A fault abort still waits out its delay first (Envoy's fault filter order).
    let delay = match (&kind, d.action, &d.forward) {
        (PlanKind::Local(_), Action::FaultAbort, Some(f)) => f.fault_delay,
        _ => None,
    };
    Plan {
        action: d.action.as_str(),
        rule,
        service,
        delay,
        kind,
    }
}

fn meta(s: &ServiceInfo) -> ServiceMeta {
    ServiceMeta {
        name: s.name.clone(),
        namespace: s.namespace.clone(),
        hostname: s.hostname.clone(),
    }
}

/// The upstream target for one endpoint of `service` on service port `port`.
pub fn target_for(
    service: Option<&ServiceInfo>,
    ep: &Endpoint,
    port: u16,
    options: &PolicyOptions,
) -> Target {
    let target_port = service.map_or(port, |s| s.target_port(port, ep));
    let addr = SocketAddr::new(ep.ip, target_port);
    let hbone = ep.mesh.then(|| HboneHop {
        gateway: SocketAddr::new(ep.ip, options.hbone_port),
        expected: vec![Identity::new(
            &options.trust_domain,
            &ep.namespace,
            ep.service_account.as_deref().unwrap_or("default"),
        )],
    });
    Target { addr, hbone }
}

/// Endpoints as targets, first the one the load balancer picks, then the rest in ring order
/// (retries move on to the next).
fn order_targets(
    service: Option<&ServiceInfo>,
    endpoints: &[&Endpoint],
    port: u16,
    options: &PolicyOptions,
    lb: Option<&LoadBalancer>,
    req: &Request<'_>,
    rng: &mut dyn RandomSource,
) -> Vec<Target> {
    let n = endpoints.len();
    if n == 0 {
        return Vec::new();
    }
    let start = match lb {
        Some(LoadBalancer::Random) => rng.below(n as u64) as usize,
        Some(LoadBalancer::ConsistentHash(key)) => match hash_key(key, req) {
            Some(h) => (h % n as u64) as usize,
            None => rng.below(n as u64) as usize,
        },
        // Least request is applied by the data path (in-flight counts); start round robin.
        _ => (ROUND_ROBIN.fetch_add(1, Ordering::Relaxed) % n as u64) as usize,
    };
    (0..n)
        .map(|i| target_for(service, endpoints[(start + i) % n], port, options))
        .collect()
}

fn hash_key(key: &HashKey, req: &Request<'_>) -> Option<u64> {
    let mut h = DefaultHasher::new();
    match key {
        HashKey::Header(name) => req.header_joined(name)?.hash(&mut h),
        HashKey::Cookie(name) => {
            let cookies = req.header_joined("cookie")?;
            let v = cookies.split(';').find_map(|c| {
                let (k, v) = c.trim().split_once('=')?;
                (k == name).then(|| v.to_string())
            })?;
            v.hash(&mut h)
        }
        HashKey::SourceIp => req.source_ip?.hash(&mut h),
        HashKey::QueryParameter(name) => {
            let v = waypoint_core::request::query_pairs(req.query()?)
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)?;
            v.hash(&mut h)
        }
    }
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use waypoint_core::service::{ServiceKind, ServicePort};
    use waypoint_core::SplitMix64;

    fn ep(ip: &str, mesh: bool) -> Endpoint {
        Endpoint {
            ip: ip.parse().expect("ip"),
            labels: BTreeMap::new(),
            service_account: Some("bookinfo-reviews".into()),
            namespace: "default".into(),
            named_ports: BTreeMap::new(),
            mesh,
        }
    }

    fn svc() -> ServiceInfo {
        ServiceInfo {
            kind: ServiceKind::Service,
            name: "reviews".into(),
            namespace: "default".into(),
            hostname: "reviews.default.svc.cluster.local".into(),
            aliases: vec![],
            vips: vec![],
            ports: vec![ServicePort {
                name: "http".into(),
                port: 9080,
                target_port: Some(8080),
                target_port_name: None,
                protocol: "http".into(),
            }],
            labels: BTreeMap::new(),
            selector: BTreeMap::new(),
            endpoints: vec![],
        }
    }

    fn opts() -> PolicyOptions {
        PolicyOptions {
            waypoint: None,
            trust_domain: "cluster.local".into(),
            hbone_port: 15008,
        }
    }

    fn req<'a>(headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
        Request {
            method: "GET",
            scheme: "http",
            authority: "reviews:9080",
            path: "/?user=jason",
            headers,
            source_principal: None,
            source_ip: Some("10.0.0.9".parse().expect("ip")),
            destination: "10.96.0.1:9080",
            sni: None,
        }
    }

    #[test]
    fn mesh_endpoint_goes_over_hbone_with_its_identity() {
        let s = svc();
        let t = target_for(Some(&s), &ep("10.1.0.5", true), 9080, &opts());
        assert_eq!(t.addr, "10.1.0.5:8080".parse().expect("addr"));
        let hop = t.hbone.expect("mesh");
        assert_eq!(hop.gateway, "10.1.0.5:15008".parse().expect("addr"));
        assert_eq!(
            hop.expected[0].to_string(),
            "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
        );
        let plain = target_for(Some(&s), &ep("10.1.0.6", false), 9080, &opts());
        assert!(plain.hbone.is_none());
    }

    #[test]
    fn ordering_covers_every_endpoint_once() {
        let s = svc();
        let eps = [
            ep("10.0.0.1", false),
            ep("10.0.0.2", false),
            ep("10.0.0.3", false),
        ];
        let refs: Vec<&Endpoint> = eps.iter().collect();
        let headers = [("x-user", "jason")];
        let r = req(&headers);
        let mut rng = SplitMix64(1);
        for lb in [
            None,
            Some(LoadBalancer::Random),
            Some(LoadBalancer::ConsistentHash(HashKey::Header(
                "x-user".into(),
            ))),
            Some(LoadBalancer::ConsistentHash(HashKey::SourceIp)),
            Some(LoadBalancer::ConsistentHash(HashKey::QueryParameter(
                "user".into(),
            ))),
        ] {
            let ts = order_targets(Some(&s), &refs, 9080, &opts(), lb.as_ref(), &r, &mut rng);
            let mut ips: Vec<_> = ts.iter().map(|t| t.addr.ip().to_string()).collect();
            ips.sort();
            assert_eq!(ips, vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"], "{lb:?}");
        }
        // Consistent hash is stable.
        let lb = Some(LoadBalancer::ConsistentHash(HashKey::Header(
            "x-user".into(),
        )));
        let a = order_targets(Some(&s), &refs, 9080, &opts(), lb.as_ref(), &r, &mut rng);
        let b = order_targets(Some(&s), &refs, 9080, &opts(), lb.as_ref(), &r, &mut rng);
        assert_eq!(a[0], b[0]);
    }
}
