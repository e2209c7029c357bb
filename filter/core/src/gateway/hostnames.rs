//! Route `hostnames` matching for Gateway parents (mesh parents ignore hostnames, as Istio does).
//! Wildcards follow the Hostname docs: `*.example.com` matches any subdomain, not `example.com`.

/// Does request host `host` (no port) match one of the route's `hostnames`? An empty list
/// matches every host. Comparison is case-insensitive; a trailing dot on the request is ignored.
pub fn host_matches(hostnames: &[String], host: &str) -> bool {
    if hostnames.is_empty() {
        return true;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    hostnames.iter().any(|h| match h.strip_prefix("*.") {
        // "*.example.com" matches "foo.example.com" and "a.b.example.com".
        Some(suffix) => {
            host.len() > suffix.len() + 1
                && host
                    .get(host.len() - suffix.len()..)
                    .is_some_and(|t| t.eq_ignore_ascii_case(suffix))
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        }
        None => h.eq_ignore_ascii_case(host),
    })
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
}
