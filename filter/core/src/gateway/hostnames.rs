//! Route `hostnames` matching for Gateway parents (mesh parents ignore hostnames, as Istio does).
//! Wildcards follow the Hostname docs: `*.example.com` matches any subdomain, not `example.com`.

use super::CompiledRoute;

/// Does request host `host` (no port) match one of the route's `hostnames`? An empty list
/// matches every host. Comparison is case-insensitive; a trailing dot on the request is ignored.
pub fn host_matches(hostnames: &[String], host: &str) -> bool {
    specificity(hostnames, host).is_some()
}

/// How specifically `hostnames` match `host`: exact names beat wildcards, longer wildcard
/// suffixes beat shorter ones, an empty list (`*`) is least specific; None = no match.
fn specificity(hostnames: &[String], host: &str) -> Option<(u8, usize)> {
    if hostnames.is_empty() {
        return Some((0, 0));
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    hostnames
        .iter()
        .filter_map(|h| match h.strip_prefix("*.") {
            // "*.example.com" matches "foo.example.com" and "a.b.example.com".
            Some(suffix) => (host.len() > suffix.len() + 1
                && host
                    .get(host.len() - suffix.len()..)
                    .is_some_and(|t| t.eq_ignore_ascii_case(suffix))
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.')
                .then_some((1, suffix.len())),
            None if h == "*" => Some((0, 0)),
            None => h.eq_ignore_ascii_case(host).then_some((2, h.len())),
        })
        .max()
}

/// The routes (attached to one Gateway parent) that serve requests for `host`. Istio builds
/// one virtual host per route hostname and Envoy picks the most specific domain, so only the
/// routes with the most specific matching hostname are considered (the spec's "precedence
/// to the most specific hostname"). Not for mesh parents, which ignore hostnames.
pub fn routes_for_host<'a>(routes: &[&'a CompiledRoute], host: &str) -> Vec<&'a CompiledRoute> {
    let scored: Vec<(Option<(u8, usize)>, &CompiledRoute)> = routes
        .iter()
        .map(|r| (specificity(&r.hostnames, host), *r))
        .collect();
    let best = scored.iter().filter_map(|(s, _)| *s).max();
    scored
        .into_iter()
        .filter(|(s, _)| s.is_some() && *s == best)
        .map(|(_, r)| r)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let hs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (hostnames, host, want) in [
            (hs(&[]), "anything", true),
            (hs(&["example.com"]), "EXAMPLE.com", true),
            (hs(&["example.com"]), "example.net", false),
            (hs(&["*.example.com"]), "foo.example.com", true),
            (hs(&["*.example.com"]), "a.b.example.com", true),
            (hs(&["*.example.com"]), "example.com", false),
            (hs(&["*.example.com"]), "fooexample.com", false),
            (hs(&["a.com", "b.com"]), "b.com.", true),
        ] {
            assert_eq!(host_matches(&hostnames, host), want, "{hostnames:?} {host}");
        }
    }

    #[test]
    fn most_specific_hostname_wins() {
        let route = |name: &str, hs: &[&str]| CompiledRoute {
            id: crate::error::ResourceId::new("HTTPRoute", "ns", name),
            parents: vec![],
            hostnames: hs.iter().map(|s| s.to_string()).collect(),
            creation_timestamp: None,
            seq: 0,
            entries: vec![],
        };
        let all = route("all", &[]);
        let wild = route("wild", &["*.example.com"]);
        let deep = route("deep", &["*.a.example.com"]);
        let exact = route("exact", &["foo.a.example.com", "other.com"]);
        let exact2 = route("exact2", &["FOO.a.example.com"]);
        let refs = [&all, &wild, &deep, &exact, &exact2];
        let names = |host: &str| -> Vec<String> {
            routes_for_host(&refs, host)
                .iter()
                .map(|r| r.id.name.clone())
                .collect()
        };
        assert_eq!(names("foo.a.example.com"), ["exact", "exact2"]);
        assert_eq!(names("bar.a.example.com"), ["deep"]);
        assert_eq!(names("x.example.com"), ["wild"]);
        assert_eq!(names("example.com"), ["all"]);
        assert_eq!(names("other.com"), ["exact"]);
        assert!(routes_for_host(&[&wild], "nope.org").is_empty());
    }
}
