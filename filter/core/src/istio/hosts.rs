//! Host names in Istio networking resources: short-name resolution in the resource's namespace
//! (pilot `ResolveShortnameToFQDN`), wildcard host matching, and service references as backends.

use crate::route::BackendRef;
use crate::service::{ServiceInfo, ServiceLookup, CLUSTER_DOMAIN};

/// Istio `ResolveShortnameToFQDN`: a name without a dot becomes `<name>.<ns>.svc.cluster.local`;
/// anything with a dot (including `name.ns`), `*` and IP addresses stay as written.
pub fn resolve_short_name(host: &str, namespace: &str) -> String {
    if host.is_empty()
        || host == "*"
        || host.contains('.')
        || host.parse::<std::net::IpAddr>().is_ok()
    {
        return host.to_string();
    }
    format!("{host}.{namespace}.svc.{CLUSTER_DOMAIN}")
}

/// Istio `host.Name.Matches` for a resolved VirtualService host against a service FQDN:
/// exact, or a `*.suffix` wildcard covering it (a lone `*` matches everything).
pub fn host_matches(pattern: &str, hostname: &str) -> bool {
    if pattern == hostname {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => hostname.len() > suffix.len() && hostname.ends_with(suffix),
        None => false,
    }
}

/// `(name, namespace)` of a Kubernetes service FQDN `<svc>.<ns>.svc.cluster.local`.
pub fn split_service_fqdn(host: &str) -> Option<(&str, &str)> {
    let rest = host.strip_suffix(CLUSTER_DOMAIN)?.strip_suffix(".svc.")?;
    let (name, ns) = rest.split_once('.')?;
    if name.is_empty() || ns.is_empty() || ns.contains('.') {
        return None;
    }
    Some((name, ns))
}

/// Istio `agent.ValidateWildcardDomain`: 1..=255 characters, DNS-1123 labels, a wildcard only
/// in the first label (`*`, `*foo`, `*-foo`), and a top-level label that is not all digits.
pub fn validate_wildcard_domain(domain: &str) -> Result<(), String> {
    use super::http_match::is_dns1123_label;
    if domain.is_empty() {
        return Err("empty domain name not allowed".to_string());
    }
    if domain.len() > 255 {
        return Err(format!("domain name {domain:?} too long (max 255)"));
    }
    let (first, rest) = match domain.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (domain, None),
    };
    let first_ok = first == "*"
        || is_dns1123_label(
            first
                .strip_prefix("*-")
                .or_else(|| first.strip_prefix('*'))
                .unwrap_or(first),
        );
    if !first_ok {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    let Some(rest) = rest else { return Ok(()) };
    let labels: Vec<&str> = rest.split('.').collect();
    if let Some(tld) = labels.last() {
        if !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "domain name {domain:?} invalid (top level domain {tld:?} cannot be all-numeric)"
            ));
        }
    }
    for (i, label) in labels.iter().enumerate() {
        // A trailing dot (`istio.io.`) is allowed.
        if i + 1 == labels.len() && label.is_empty() {
            break;
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// Istio `validateExportTo` for VirtualService / DestinationRule: `.`, `*`, `~` or namespace
/// names, no duplicates (`.` counts as the own namespace), `*` and `~` only alone.
pub fn validate_export_to(namespace: &str, export_to: &[String]) -> Result<(), String> {
    use super::http_match::is_dns1123_label;
    let mut seen: Vec<&str> = Vec::new();
    for e in export_to {
        let key = if e == "." { namespace } else { e.as_str() };
        if seen.contains(&key) {
            return Err(format!("duplicate entries in exportTo for entry {e}"));
        }
        if !(key == "*" || key == "~" || is_dns1123_label(key)) {
            return Err(format!("invalid exportTo value {e:?}"));
        }
        seen.push(key);
    }
    if export_to.len() > 1 && seen.iter().any(|k| *k == "*" || *k == "~") {
        return Err(
            "cannot have both public (*) or none (~) and other exportTo values".to_string(),
        );
    }
    Ok(())
}

/// A destination host resolved against the registry.
#[derive(Debug)]
pub(crate) struct ResolvedHost<'a> {
    pub backend: BackendRef,
    pub service: Option<&'a ServiceInfo>,
}

/// Resolve `host` (as written in a resource of `namespace`) to a backend reference. Known
/// services give their canonical name/namespace and hostname (a ServiceEntry keeps the host
/// that was written when it is one of its hosts). Unknown hosts stay routable as written.
pub(crate) fn resolve_backend<'a>(
    services: &'a dyn ServiceLookup,
    host: &str,
    namespace: &str,
) -> ResolvedHost<'a> {
    let fqdn = resolve_short_name(host, namespace);
    let found = services
        .by_host(host, namespace)
        .or_else(|| services.by_host(&fqdn, namespace));
    match found {
        Some(svc) => {
            let hostname = if svc.aliases.iter().any(|a| a == host) {
                host.to_string()
            } else {
                svc.hostname.clone()
            };
            ResolvedHost {
                backend: BackendRef {
                    name: svc.name.clone(),
                    namespace: svc.namespace.clone(),
                    host: hostname,
                    subset: None,
                    port: None,
                },
                service: Some(svc),
            }
        }
        None => {
            let (name, ns) = split_service_fqdn(&fqdn)
                .map(|(n, ns)| (n.to_string(), ns.to_string()))
                .unwrap_or_else(|| (fqdn.clone(), namespace.to_string()));
            ResolvedHost {
                backend: BackendRef {
                    name,
                    namespace: ns,
                    host: fqdn,
                    subset: None,
                    port: None,
                },
                service: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        for (host, want) in [
            ("reviews", "reviews.default.svc.cluster.local"),
            ("reviews.other", "reviews.other"),
            (
                "reviews.default.svc.cluster.local",
                "reviews.default.svc.cluster.local",
            ),
            ("*", "*"),
            ("10.0.0.1", "10.0.0.1"),
            ("*.example.com", "*.example.com"),
        ] {
            assert_eq!(resolve_short_name(host, "default"), want, "{host}");
        }
    }

    #[test]
    fn wildcard_matching() {
        for (pattern, host, want) in [
            ("a.b.svc.cluster.local", "a.b.svc.cluster.local", true),
            ("*.example.com", "api.example.com", true),
            ("*.example.com", "example.com", false),
            ("*", "anything", true),
            ("a.example.com", "b.example.com", false),
        ] {
            assert_eq!(host_matches(pattern, host), want, "{pattern} vs {host}");
        }
    }

    #[test]
    fn wildcard_domains() {
        for ok in [
            "reviews",
            "reviews.default.svc.cluster.local",
            "*.example.com",
            "*",
            "*foo.example.com",
            "Api.Example.com",
            "istio.io.",
        ] {
            assert!(validate_wildcard_domain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            "foo.*.com",
            "-a.com",
            "10.0.0.1",
            "a_b.com",
            "**.com",
        ] {
            assert!(validate_wildcard_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn export_to() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(validate_export_to("ns", &v(&["."])).is_ok());
        assert!(validate_export_to("ns", &v(&["*"])).is_ok());
        assert!(validate_export_to("ns", &v(&[".", "other"])).is_ok());
        assert!(validate_export_to("ns", &v(&[".", "ns"])).is_err());
        assert!(validate_export_to("ns", &v(&["*", "other"])).is_err());
        assert!(validate_export_to("ns", &v(&["bad_ns"])).is_err());
    }

    #[test]
    fn fqdn_split() {
        assert_eq!(
            split_service_fqdn("reviews.bookinfo.svc.cluster.local"),
            Some(("reviews", "bookinfo"))
        );
        assert_eq!(split_service_fqdn("api.example.com"), None);
        assert_eq!(split_service_fqdn("a.b.c.svc.cluster.local"), None);
    }
}
