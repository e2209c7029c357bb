//! Endpoints as upstream targets: the address and HBONE hop (or sidecar mTLS) of one endpoint,
//! and the order a request tries a service's endpoints in (load balancer pick first, then ring).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use waypoint_core::route::{HashKey, LoadBalancer};
use waypoint_core::service::{Endpoint, ServiceInfo};
use waypoint_core::{RandomSource, Request};
use waypoint_hbone::tls::Identity;

use crate::policy::options::PolicyOptions;
use crate::upstream::{HboneHop, SidecarTls, Target};

/// Round-robin cursor shared by every request (Envoy keeps one per cluster; one global
/// counter spreads load the same way over time).
static ROUND_ROBIN: AtomicU64 = AtomicU64::new(0);

/// The next round-robin index below `n` (`n > 0`).
pub fn round_robin(n: usize) -> usize {
    (ROUND_ROBIN.fetch_add(1, Ordering::Relaxed) % n as u64) as usize
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
    let identity = || {
        vec![Identity::new(
            &options.trust_domain,
            &ep.namespace,
            ep.service_account.as_deref().unwrap_or("default"),
        )]
    };
    let hbone = ep.mesh.then(|| HboneHop {
        gateway: SocketAddr::new(ep.ip, options.hbone_port),
        expected: identity(),
    });
    let sidecar = (ep.sidecar && !ep.mesh).then(|| SidecarTls {
        expected: identity(),
    });
    Target {
        addr,
        hbone,
        sidecar,
    }
}

/// Endpoints as targets, first the one the load balancer picks, then the rest in ring order
/// (retries move on to the next).
pub fn order_targets(
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
        Some(LoadBalancer::ConsistentHash(key) | LoadBalancer::Maglev(key)) => {
            match hash_key(key, req) {
                Some(h) => (h % n as u64) as usize,
                None => rng.below(n as u64) as usize,
            }
        }
        // Least request is applied by the data path (in-flight counts); start round robin.
        _ => round_robin(n),
    };
    (0..n)
        .map(|i| target_for(service, endpoints[(start + i) % n], port, options))
        .collect()
}

/// The hash of the request's consistent-hash input (the core extracts it, as for Envoy mode).
fn hash_key(key: &HashKey, req: &Request<'_>) -> Option<u64> {
    let mut h = DefaultHasher::new();
    key.input(req)?.hash(&mut h);
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
            sidecar: false,
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
        assert!(plain.hbone.is_none() && plain.sidecar.is_none());
        let sidecar = Endpoint {
            sidecar: true,
            ..ep("10.1.0.7", false)
        };
        let t = target_for(Some(&s), &sidecar, 9080, &opts());
        assert_eq!(t.addr, "10.1.0.7:8080".parse().expect("addr"));
        assert!(t.hbone.is_none());
        assert_eq!(
            t.peer_identity().map(|i| i.service_account.as_str()),
            Some("bookinfo-reviews"),
            "telemetry's destination principal"
        );
        assert!(plain.peer_identity().is_none());
        assert_eq!(
            t.sidecar.expect("sidecar").expected[0].to_string(),
            "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
        );
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
