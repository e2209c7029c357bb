//! A CONNECT resolved once: who the peer is, where the destination leads in the config
//! generation in force, and that generation. Every decision about the tunnel uses it.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::StatusCode;
use waypoint_core::service::PortKind;
use waypoint_core::{RandomSource, Request};
use waypoint_hbone::server::ConnectRequest;
use waypoint_hbone::tls::Identity;

use crate::config::ConfigState;
use crate::connect::guard::ProxyOptions;
use crate::http::headers::forwarded_for;
use crate::policy::destination::Destination;
use crate::policy::plan::Plan;
use crate::upstream::Target;

/// Who opened the tunnel.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's verified SPIFFE identity.
    pub identity: Option<Identity>,
    /// `identity` as a SPIFFE URI: the source principal policies match.
    pub principal: Option<String>,
    /// The original source: the CONNECT's `forwarded: for=`, else the peer's address.
    pub source_ip: Option<IpAddr>,
}

/// One config generation and the CONNECT destination as resolved in it: a decision made with
/// it never mixes two generations.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub config: Arc<ConfigState>,
    pub destination: Destination,
}

impl Resolution {
    /// Resolve `authority` (`addr`: its parse as a socket address) in `config`.
    pub fn new(config: Arc<ConfigState>, authority: &str, addr: Option<SocketAddr>) -> Self {
        let destination = config.policy.resolve(authority, addr);
        Resolution {
            config,
            destination,
        }
    }

    /// How the tunnel's bytes are handled (the service port's declared protocol, or sniffed).
    pub fn port_kind(&self) -> PortKind {
        self.destination.port_kind()
    }

    /// Where opaque TCP goes (see `Policy::tcp_target`).
    pub fn tcp_target(&self) -> Option<Target> {
        self.config.policy.tcp_target(&self.destination)
    }

    /// The plan for one request of the tunnel (`req.destination` is the CONNECT authority).
    /// `auth`: the request's verified JWT attributes (the JWT stage's result).
    pub fn plan(
        &self,
        req: &Request<'_>,
        auth: Option<&waypoint_core::authn::RequestAuth>,
        rng: &mut dyn RandomSource,
    ) -> Plan<'_> {
        self.config.policy.plan(req, auth, &self.destination, rng)
    }
}

/// An accepted CONNECT, resolved once.
#[derive(Debug)]
pub struct ConnectContext {
    pub peer: Peer,
    /// The CONNECT `:authority` (`ip:port` or `host:port`).
    pub authority: String,
    /// `authority` parsed as a socket address, when it is one.
    pub addr: Option<SocketAddr>,
    /// The CONNECT's `baggage`, used for source telemetry labels.
    pub baggage: Option<String>,
    /// `forwarded`, `baggage` and `traceparent` to carry onto an upstream HBONE CONNECT that
    /// relays this tunnel, so the destination still sees the original source.
    pub relay_headers: http::HeaderMap,
    /// The generation in force when the CONNECT arrived, and the destination in it.
    pub resolution: Resolution,
    /// Local rate limit buckets of this tunnel (`local_rate_limit_per_downstream_connection`).
    pub ratelimit: crate::http::ratelimit::ConnectionBuckets,
}

impl ConnectContext {
    /// Resolve `req` in `config`.
    pub fn new(req: &ConnectRequest, config: Arc<ConfigState>) -> Self {
        let forwarded = header(req, "forwarded");
        ConnectContext {
            peer: Peer {
                principal: req.peer_identity.as_ref().map(|i| i.to_string()),
                identity: req.peer_identity.clone(),
                source_ip: forwarded
                    .as_deref()
                    .and_then(forwarded_for)
                    .or(Some(req.peer_addr.ip())),
            },
            authority: req.authority.clone(),
            addr: req.destination,
            baggage: header(req, "baggage"),
            relay_headers: relay_headers(req),
            resolution: Resolution::new(config, &req.authority, req.destination),
            ratelimit: Default::default(),
        }
    }

    /// Never tunnel to the waypoint's own host or listeners; a CONNECT needs a real port.
    pub fn check_destination(&self, guard: &ProxyOptions) -> Result<(), StatusCode> {
        guard.check_destination(&self.authority, self.addr)
    }

    /// L4 authorization of the tunnel's opaque bytes with Istio's TCP semantics, in
    /// `resolution`'s config generation.
    pub fn authorize_tcp(&self, resolution: &Resolution) -> bool {
        resolution.config.policy.authorize_tcp(
            self.peer.principal.as_deref(),
            self.peer.source_ip,
            &self.authority,
        )
    }

    /// The generation and destination a new request (or the sniffed TCP decision) uses: the
    /// tunnel's own while `current` is the same generation; after a config change, the
    /// destination resolved again in the new one, so a new DENY or route applies to new
    /// requests on old tunnels (as Envoy applies a new route configuration to each new
    /// stream, while streams already open finish under the old one).
    pub fn resolution_for(&self, current: Option<Arc<ConfigState>>) -> Cow<'_, Resolution> {
        match current {
            Some(c) if !Arc::ptr_eq(&c, &self.resolution.config) => {
                Cow::Owned(Resolution::new(c, &self.authority, self.addr))
            }
            // The store never empties once a CONNECT was accepted with a config.
            _ => Cow::Borrowed(&self.resolution),
        }
    }
}

fn header(req: &ConnectRequest, name: &str) -> Option<String> {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Headers of an incoming CONNECT to repeat on the upstream CONNECT of an L4 relay:
/// `forwarded` (synthesized from the peer address when absent), `baggage`, `traceparent`.
fn relay_headers(req: &ConnectRequest) -> http::HeaderMap {
    let mut out = http::HeaderMap::new();
    for name in ["forwarded", "baggage", "traceparent"] {
        for v in req.headers.get_all(name) {
            out.append(name, v.clone());
        }
    }
    if !out.contains_key("forwarded") {
        if let Ok(v) = http::HeaderValue::from_str(&format!("for=\"{}\"", req.peer_addr)) {
            out.insert("forwarded", v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compiled::Policy;
    use crate::policy::options::PolicyOptions;

    const GATEWAY: &str = waypoint_core::waypoint_gateway_yaml!("default");

    fn generation(n: u64, yaml: &str) -> Arc<ConfigState> {
        let loaded = waypoint_loader::load_text(yaml, "test.yaml", "default");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let options = PolicyOptions {
            waypoint: Some("default/waypoint".into()),
            trust_domain: "cluster.local".into(),
            hbone_port: 15008,
        };
        let (policy, diags) = Policy::compile(&loaded.resources, &options);
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        Arc::new(ConfigState {
            generation: n,
            loaded_at: std::time::SystemTime::now(),
            files: Vec::new(),
            resources: loaded
                .resources
                .into_iter()
                .map(crate::config::stored::StoredResource::new)
                .collect(),
            warnings: Vec::new(),
            errors: Vec::new(),
            policy,
            good: Default::default(),
        })
    }

    fn service(protocol: &str) -> String {
        format!(
            "{GATEWAY}---\napiVersion: v1\nkind: Service\nmetadata: {{name: ratings, namespace: default, labels: {{istio.io/use-waypoint: waypoint}}}}\nspec: {{clusterIP: 10.96.0.7, ports: [{{name: {protocol}-x, port: 9080}}]}}\n"
        )
    }

    fn connect(authority: &str) -> ConnectRequest {
        ConnectRequest {
            peer_addr: "10.0.0.9:40000".parse().expect("addr"),
            local_addr: "10.0.0.1:15008".parse().expect("addr"),
            peer_identity: None,
            authority: authority.into(),
            destination: authority.parse().ok(),
            headers: http::HeaderMap::new(),
        }
    }

    #[test]
    fn a_connect_is_resolved_once_per_generation() {
        let first = generation(1, &service("http"));
        let ctx = ConnectContext::new(&connect("10.96.0.7:9080"), first.clone());
        let Destination::Service(s) = &ctx.resolution.destination else {
            panic!("{:?}", ctx.resolution.destination);
        };
        assert_eq!(s.meta.hostname, "ratings.default.svc.cluster.local");
        assert_eq!(s.resolved.port, 9080);
        assert_eq!(ctx.resolution.port_kind(), PortKind::Http);
        assert_eq!(ctx.peer.source_ip, Some("10.0.0.9".parse().expect("ip")));
        // The same generation: the tunnel's own resolution, not a new one.
        assert!(matches!(ctx.resolution_for(Some(first)), Cow::Borrowed(_)));
        assert!(matches!(ctx.resolution_for(None), Cow::Borrowed(_)));
        // A new generation where the port is TCP: new requests see it.
        let second = generation(2, &service("tcp"));
        let res = ctx.resolution_for(Some(second.clone()));
        assert!(matches!(res, Cow::Owned(_)));
        assert!(Arc::ptr_eq(&res.config, &second));
        assert_eq!(res.port_kind(), PortKind::Tcp);
        // Where the service is gone, the address is a pass-through destination.
        let third = generation(3, GATEWAY);
        let res = ctx.resolution_for(Some(third));
        assert!(
            matches!(res.destination, Destination::Passthrough(_)),
            "{:?}",
            res.destination
        );
        assert_eq!(res.port_kind(), PortKind::Sniff);
        // A hostname nothing resolves is unknown.
        let ctx = ConnectContext::new(&connect("nowhere:80"), generation(4, GATEWAY));
        assert_eq!(ctx.resolution.destination, Destination::Unknown);
        assert_eq!(ctx.resolution.tcp_target(), None);
    }
}
