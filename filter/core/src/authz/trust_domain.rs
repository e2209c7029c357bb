//! Trust-domain aliasing of principals, as istiod does before generating RBAC
//! (`pilot/pkg/security/trustdomain/bundle.go`): `cluster.local` means "the local trust domain".

/// The local trust domain followed by its aliases (MeshConfig `trustDomain`,
/// `trustDomainAliases`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustDomainBundle {
    pub trust_domains: Vec<String>,
}

impl Default for TrustDomainBundle {
    fn default() -> Self {
        TrustDomainBundle::new("cluster.local", &[])
    }
}

impl TrustDomainBundle {
    pub fn new(trust_domain: &str, aliases: &[&str]) -> Self {
        let mut trust_domains = vec![trust_domain.to_string()];
        trust_domains.extend(aliases.iter().map(|a| a.to_string()));
        TrustDomainBundle { trust_domains }
    }

    /// `principals` / `source.principal` values: a value `<td>/ns/<ns>/sa/<sa>` whose trust
    /// domain is `cluster.local`, the local trust domain or an alias becomes one value per
    /// trust domain of the bundle; other values are kept as they are.
    pub fn replace_aliases(&self, principals: &[String]) -> Vec<String> {
        let mut out = Vec::with_capacity(principals.len());
        for p in principals {
            let parts: Vec<&str> = p.split('/').collect();
            // Not SPIFFE-shaped, or `*` trust domain: the trust domain is not enforced.
            if parts.len() != 5 || parts[0] == "*" {
                out.push(p.clone());
                continue;
            }
            let td = parts[0];
            if string_match(td, &self.trust_domains) || td == "cluster.local" {
                let mut expanded: Vec<String> = Vec::new();
                for bundle_td in &self.trust_domains {
                    let new = if suffix_match(bundle_td, td) {
                        p.clone()
                    } else {
                        format!("{bundle_td}/{}", parts[1..].join("/"))
                    };
                    if !expanded.contains(&new) {
                        expanded.push(new);
                    }
                }
                out.extend(expanded);
            } else {
                out.push(p.clone());
            }
        }
        out
    }

    /// `trustDomains` / `source.trustDomain` values: a known trust domain expands to all of
    /// them (duplicates removed, order kept).
    pub fn expand_aliases(&self, values: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(values.len());
        for v in values {
            let items: Vec<&String> = if self.trust_domains.contains(v) {
                self.trust_domains.iter().collect()
            } else {
                vec![v]
            };
            for i in items {
                if !out.contains(i) {
                    out.push(i.clone());
                }
            }
        }
        out
    }
}

// Istio `trustdomain.stringMatch`: the pattern may be on either side.
fn string_match(a: &str, list: &[String]) -> bool {
    list.iter().any(|s| {
        a == s
            || s == "*"
            || prefix_match(a, s)
            || prefix_match(s, a)
            || suffix_match(a, s)
            || suffix_match(s, a)
    })
}

fn prefix_match(a: &str, pattern: &str) -> bool {
    pattern.strip_suffix('*').is_some_and(|p| a.starts_with(p))
}

fn suffix_match(a: &str, pattern: &str) -> bool {
    pattern.strip_prefix('*').is_some_and(|p| a.ends_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn replace() {
        // Bundle td1 + alias cluster.local (Istio builder test "trust-domain-one-alias").
        let b = TrustDomainBundle::new("td1", &["cluster.local"]);
        assert_eq!(
            b.replace_aliases(&s(&["cluster.local/ns/foo/sa/bar"])),
            s(&["td1/ns/foo/sa/bar", "cluster.local/ns/foo/sa/bar"])
        );
        // Unknown trust domain and non-SPIFFE values are kept.
        assert_eq!(
            b.replace_aliases(&s(&["other/ns/a/sa/b", "*/ns/a/sa/b", "plain"])),
            s(&["other/ns/a/sa/b", "*/ns/a/sa/b", "plain"])
        );
        // Wildcard trust domain in the principal (builder test "principal-with-wildcard").
        let b = TrustDomainBundle::new("td1", &["foobar"]);
        assert_eq!(
            b.replace_aliases(&s(&["*bar/ns/foo/sa/baz"])),
            s(&["td1/ns/foo/sa/baz", "*bar/ns/foo/sa/baz"])
        );
        // Builder test "trust-domain-aliases-in-source-principal".
        let b = TrustDomainBundle::new("new-td", &["old-td", "some-trustdomain"]);
        assert_eq!(
            b.replace_aliases(&s(&["*-td/ns/foo/sa/prefix-td"])),
            s(&[
                "*-td/ns/foo/sa/prefix-td",
                "some-trustdomain/ns/foo/sa/prefix-td"
            ])
        );
        // Default bundle: nothing changes.
        let d = TrustDomainBundle::default();
        assert_eq!(
            d.replace_aliases(&s(&["cluster.local/ns/a/sa/b"])),
            s(&["cluster.local/ns/a/sa/b"])
        );
    }

    #[test]
    fn expand() {
        let b = TrustDomainBundle::new("td1", &["td2"]);
        assert_eq!(
            b.expand_aliases(&s(&["td2", "x", "td1"])),
            s(&["td1", "td2", "x"])
        );
    }
}
