//! What the policy adapter needs to know besides the manifests: the waypoint it serves, the
//! mesh's trust domain, and the port mesh endpoints accept HBONE on.

/// Options the policy needs besides the manifests.
#[derive(Debug, Clone)]
pub struct PolicyOptions {
    /// `namespace/name` of the waypoint Gateway this host serves, if set.
    pub waypoint: Option<String>,
    pub trust_domain: String,
    /// Port mesh endpoints accept HBONE on (15008 in a cluster).
    pub hbone_port: u16,
}
