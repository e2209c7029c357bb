//! SPIFFE workload identities (`spiffe://<trust-domain>/ns/<ns>/sa/<sa>`) as Istio uses them,
//! parsed from and printed to URI SANs.

use std::fmt;
use std::str::FromStr;

/// One Istio workload identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

/// Why a string is not an Istio SPIFFE identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Istio SPIFFE identity ({reason}): {input:?}")]
pub struct IdentityError {
    pub input: String,
    pub reason: &'static str,
}

impl Identity {
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Self {
        Identity {
            trust_domain: trust_domain.to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
        }
    }

    /// Parse `ns/sa` (the CLI shorthand) within `trust_domain`.
    pub fn from_ns_sa(trust_domain: &str, ns_sa: &str) -> Result<Self, IdentityError> {
        let err = |reason| IdentityError {
            input: ns_sa.to_string(),
            reason,
        };
        let (ns, sa) = ns_sa.split_once('/').ok_or_else(|| err("expected ns/sa"))?;
        if !valid_segment(ns) || !valid_segment(sa) {
            return Err(err(
                "namespace and service account must be non-empty DNS labels",
            ));
        }
        Ok(Identity::new(trust_domain, ns, sa))
    }
}

/// A path segment we accept: non-empty, no `/`, printable ASCII without spaces.
fn valid_segment(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

impl FromStr for Identity {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| IdentityError {
            input: s.to_string(),
            reason,
        };
        let rest = s
            .strip_prefix("spiffe://")
            .ok_or_else(|| err("missing spiffe:// scheme"))?;
        let mut parts = rest.split('/');
        let (Some(td), Some("ns"), Some(ns), Some("sa"), Some(sa), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(err("expected spiffe://TD/ns/NS/sa/SA"));
        };
        if !valid_segment(td) || !valid_segment(ns) || !valid_segment(sa) {
            return Err(err("empty or invalid segment"));
        }
        Ok(Identity::new(td, ns, sa))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for (input, ok) in [
            ("spiffe://cluster.local/ns/default/sa/bookinfo", true),
            ("spiffe://td/ns/a/sa/b", true),
            ("spiffe://td/ns/a/sa/b/extra", false),
            ("spiffe://td/ns//sa/b", false),
            ("http://td/ns/a/sa/b", false),
            ("spiffe://td/sa/a/ns/b", false),
            ("", false),
        ] {
            let r = input.parse::<Identity>();
            assert_eq!(r.is_ok(), ok, "{input}");
            if let Ok(id) = r {
                assert_eq!(id.to_string(), input);
            }
        }
    }

    #[test]
    fn ns_sa_shorthand() {
        let id = Identity::from_ns_sa("cluster.local", "default/productpage").expect("valid");
        assert_eq!(
            id.to_string(),
            "spiffe://cluster.local/ns/default/sa/productpage"
        );
        assert!(Identity::from_ns_sa("td", "nosep").is_err());
        assert!(Identity::from_ns_sa("td", "/sa").is_err());
    }
}
