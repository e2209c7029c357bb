//! Route parentRefs with the Gateway API defaults applied, and the key a parent is looked up by.
//! Defaults (ParentReference docs): group `gateway.networking.k8s.io`, kind `Gateway`, namespace = the route's.

use gateway_api::apis::experimental::httproutes::HttpRouteParentRefs;

use super::GATEWAY_GROUP;

/// A parentRef with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    /// `""` for core (a Service parent in GAMMA).
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub port: Option<u16>,
    pub section_name: Option<String>,
}

impl ParentRef {
    /// A GAMMA (mesh) parent: a core Service, or an Istio ServiceEntry (Istio accepts both).
    pub fn is_mesh(&self) -> bool {
        (self.group.is_empty() && self.kind == "Service")
            || (self.group == "networking.istio.io" && self.kind == "ServiceEntry")
    }

    /// The parent object this reference names.
    pub fn key(&self) -> ParentKey {
        ParentKey {
            group: self.group.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// Apply defaults to a parsed parentRef. A port outside 1..=65535 (rejected by the CRD)
    /// yields an error message.
    pub(crate) fn from_spec(p: &HttpRouteParentRefs, route_ns: &str) -> Result<Self, String> {
        let port = match p.port {
            None => None,
            Some(n) => Some(
                u16::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("port {n} out of range"))?,
            ),
        };
        Ok(ParentRef {
            group: p.group.clone().unwrap_or_else(|| GATEWAY_GROUP.to_string()),
            kind: p.kind.clone().unwrap_or_else(|| "Gateway".to_string()),
            namespace: p
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| route_ns.to_string()),
            name: p.name.clone(),
            port,
            section_name: p.section_name.clone(),
        })
    }
}

/// Identity of a parent object (Service, ServiceEntry or Gateway).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParentKey {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ParentKey {
    /// A core Service parent (GAMMA).
    pub fn service(namespace: &str, name: &str) -> Self {
        ParentKey {
            group: String::new(),
            kind: "Service".into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// A Gateway parent (e.g. the waypoint itself).
    pub fn gateway(namespace: &str, name: &str) -> Self {
        ParentKey {
            group: GATEWAY_GROUP.into(),
            kind: "Gateway".into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}
