//! Names both runtimes derive the same way: `namespace/name` references (a waypoint),
//! Istio's Envoy cluster names, and the host a mirrored (shadow) request carries.

use std::fmt;

/// A `namespace/name` reference to a Kubernetes object, validated as Kubernetes does:
/// the namespace a DNS-1123 label, the name a DNS-1123 subdomain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamespacedName {
    pub namespace: String,
    pub name: String,
}

/// Why a `namespace/name` string is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?}: {reason}")]
pub struct NameError {
    pub input: String,
    pub reason: &'static str,
}

impl NamespacedName {
    /// Parse `namespace/name`; anything else (no `/`, two `/`, empty or invalid parts) is an
    /// error, never a silent `None`.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let err = |reason| NameError {
            input: input.to_string(),
            reason,
        };
        let (ns, name) = input
            .split_once('/')
            .ok_or_else(|| err("expected NS/NAME"))?;
        if name.contains('/') {
            return Err(err("expected NS/NAME (one '/')"));
        }
        if !is_dns1123_label(ns) {
            return Err(err(
                "namespace must be a DNS-1123 label (lowercase letters, digits, '-', at most 63)",
            ));
        }
        if !is_dns1123_subdomain(name) {
            return Err(err(
                "name must be a DNS-1123 subdomain (lowercase letters, digits, '-', '.', at most 253)",
            ));
        }
        Ok(NamespacedName {
            namespace: ns.to_string(),
            name: name.to_string(),
        })
    }

    /// As the `(namespace, name)` pair `BuildOptions::waypoint` takes.
    pub fn into_pair(self) -> (String, String) {
        (self.namespace, self.name)
    }
}

impl fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// RFC 1123 label as Kubernetes validates it (`IsDNS1123Label`).
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain as Kubernetes validates it (`IsDNS1123Subdomain`).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Istio's name for the Envoy cluster of `host:port` (subset may be empty):
/// `outbound|<port>|<subset>|<host>`. The module names the cluster it picks and the bootstrap
/// declares the clusters; both must agree byte for byte.
pub fn cluster_name(port: u16, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// The Envoy cluster of a workload-addressed request's original destination (`ip:port`,
/// IPv6 in brackets): one pod and port, reached as the pod's service endpoints are.
pub fn passthrough_cluster_name(addr: std::net::SocketAddr) -> String {
    format!("passthrough|{addr}")
}

/// The authority a mirrored request carries: Envoy's request mirror policy appends `-shadow`
/// to the host, before the port when there is one (`reviews:9080` → `reviews-shadow:9080`).
pub fn shadow_authority(authority: &str) -> String {
    match crate::request::split_host_port(authority) {
        (host, Some(port)) if !host.contains(':') => format!("{host}-shadow:{port}"),
        _ => format!("{authority}-shadow"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_references() {
        let n = NamespacedName::parse("bookinfo/waypoint").expect("valid");
        assert_eq!(n.namespace, "bookinfo");
        assert_eq!(n.name, "waypoint");
        assert_eq!(n.to_string(), "bookinfo/waypoint");
        assert!(NamespacedName::parse("ns-1/a.b-c").is_ok());
    }

    #[test]
    fn rejects_malformed_references_with_a_reason() {
        for bad in [
            "waypoint",
            "/waypoint",
            "ns/",
            "a/b/c",
            "Bookinfo/waypoint",
            "ns/Way_point",
            "-ns/w",
            "ns/w-",
            "",
        ] {
            let e = NamespacedName::parse(bad).expect_err(bad);
            assert_eq!(e.input, bad);
            assert!(!e.reason.is_empty());
        }
        let long = format!("{}/w", "a".repeat(64));
        assert!(NamespacedName::parse(&long).is_err());
    }

    #[test]
    fn cluster_names_follow_istio() {
        assert_eq!(
            cluster_name(9080, "v1", "reviews.bookinfo.svc.cluster.local"),
            "outbound|9080|v1|reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(
            cluster_name(443, "", "api.example.com"),
            "outbound|443||api.example.com"
        );
    }

    #[test]
    fn shadow_host_goes_before_the_port() {
        assert_eq!(shadow_authority("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(shadow_authority("reviews"), "reviews-shadow");
        assert_eq!(shadow_authority("[::1]:80"), "[::1]:80-shadow");
    }
}
