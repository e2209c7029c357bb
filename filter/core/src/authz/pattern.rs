//! Value patterns of AuthorizationPolicy fields, compiled once: Istio's string forms
//! (exact, `prefix*`, `*suffix`, `*`), principal-derived regexes, IP blocks and ports.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;

/// One compiled string value. Istio translates `*` two ways: `.+` (any non-empty value) for
/// string matchers, `present_match` (header exists, even empty) for header/host/method
/// matchers (`pilot/pkg/security/authz/matcher/{string,header}.go`).
#[derive(Debug, Clone)]
pub(crate) enum StrPat {
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// `*` in a string matcher: regex `.+`.
    NonEmpty,
    /// `*` in a header matcher: the value exists.
    Present,
}

impl StrPat {
    /// Istio `matcher.StringMatcher`: `*` → `.+`, `*x` → suffix, `x*` → prefix, else exact.
    pub(crate) fn string(v: &str) -> StrPat {
        if v == "*" {
            StrPat::NonEmpty
        } else if let Some(s) = v.strip_prefix('*') {
            StrPat::Suffix(s.to_string())
        } else if let Some(p) = v.strip_suffix('*') {
            StrPat::Prefix(p.to_string())
        } else {
            StrPat::Exact(v.to_string())
        }
    }

    /// Istio `matcher.HeaderMatcher` / `HostMatcher`: like [`StrPat::string`] but `*` is a
    /// presence match.
    pub(crate) fn header(v: &str) -> StrPat {
        if v == "*" {
            StrPat::Present
        } else {
            StrPat::string(v)
        }
    }

    /// Same pattern with its literal lowercased (for ASCII case-insensitive matching).
    pub(crate) fn lowercase(self) -> StrPat {
        match self {
            StrPat::Exact(s) => StrPat::Exact(s.to_ascii_lowercase()),
            StrPat::Prefix(s) => StrPat::Prefix(s.to_ascii_lowercase()),
            StrPat::Suffix(s) => StrPat::Suffix(s.to_ascii_lowercase()),
            other => other,
        }
    }

    /// Match a value that may be absent.
    pub(crate) fn matches(&self, value: Option<&str>) -> bool {
        let Some(v) = value else {
            return false;
        };
        match self {
            StrPat::Exact(e) => v == e,
            StrPat::Prefix(p) => v.starts_with(p.as_str()),
            StrPat::Suffix(s) => v.ends_with(s.as_str()),
            StrPat::NonEmpty => !v.is_empty(),
            StrPat::Present => true,
        }
    }

    /// ASCII case-insensitive match; the pattern must have been built with [`Self::lowercase`].
    pub(crate) fn matches_ignore_case(&self, value: Option<&str>) -> bool {
        let Some(v) = value else {
            return false;
        };
        let vb = v.as_bytes();
        match self {
            StrPat::Exact(e) => vb.eq_ignore_ascii_case(e.as_bytes()),
            StrPat::Prefix(p) => vb
                .get(..p.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes())),
            StrPat::Suffix(s) => {
                vb.len() >= s.len() && vb[vb.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
            StrPat::NonEmpty => !v.is_empty(),
            StrPat::Present => true,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            StrPat::Exact(e) => format!("exact {e:?}"),
            StrPat::Prefix(p) => format!("prefix {p:?}"),
            StrPat::Suffix(s) => format!("suffix {s:?}"),
            StrPat::NonEmpty => "non-empty".to_string(),
            StrPat::Present => "present".to_string(),
        }
    }
}

/// A pattern over the peer principal (`spiffe://<TD>/ns/<NS>/sa/<SA>`). Config values are
/// written without the scheme; Istio prefixes `spiffe://` when it builds the Envoy matcher,
/// so a principal without that scheme only matches `*` and namespace patterns, as in Envoy.
#[derive(Debug, Clone)]
pub(crate) enum PrincipalPat {
    /// `*`: any non-empty principal (Istio regex `.+`).
    Any,
    /// Exact / prefix / suffix over the part after `spiffe://` (principals, literal trust
    /// domains).
    Spiffe(StrPat),
    /// Full-match regex over the part after `spiffe://` (service accounts, wildcard trust
    /// domains).
    SpiffeRegex(Regex),
    /// Full-match regex over the whole principal (namespaces).
    Regex(Regex),
}

impl PrincipalPat {
    /// `principals` / `source.principal` value (Istio `StringMatcherWithPrefix(v, "spiffe://")`).
    pub(crate) fn principal(value: &str) -> PrincipalPat {
        match StrPat::string(value) {
            StrPat::NonEmpty | StrPat::Present => PrincipalPat::Any,
            s => PrincipalPat::Spiffe(s),
        }
    }

    pub(crate) fn matches(&self, principal: Option<&str>) -> bool {
        let Some(p) = principal else {
            return false;
        };
        let bare = p.strip_prefix("spiffe://");
        match self {
            PrincipalPat::Any => !p.is_empty(),
            PrincipalPat::Spiffe(s) => s.matches(bare),
            PrincipalPat::SpiffeRegex(r) => bare.is_some_and(|b| r.is_match(b)),
            PrincipalPat::Regex(r) => r.is_match(p),
        }
    }

    /// `namespaces` / `source.namespace`: Istio regex `.*/ns/<glob>/.*` where each `*` in the
    /// value becomes `.*` (`srcNamespaceGenerator`).
    pub(crate) fn namespace(value: &str) -> Result<PrincipalPat, String> {
        let glob: Vec<String> = value.split('*').map(regex::escape).collect();
        full_regex(&format!(".*/ns/{}/.*", glob.join(".*"))).map(PrincipalPat::Regex)
    }

    /// `serviceAccounts` / `source.serviceAccount`: `<ns>/<sa>` or `<sa>` (policy namespace);
    /// Istio regex `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?` (`serviceAccountRegex`).
    pub(crate) fn service_account(
        value: &str,
        policy_namespace: &str,
    ) -> Result<PrincipalPat, String> {
        let (ns, sa) = value.split_once('/').unwrap_or((policy_namespace, value));
        full_regex(&format!(
            ".+/ns/{}/(.+/|)sa/{}(/.+)?",
            regex::escape(ns),
            regex::escape(sa)
        ))
        .map(PrincipalPat::SpiffeRegex)
    }

    /// `trustDomains` / `source.trustDomain` (`srcTrustDomainGenerator`): `*` = prefix
    /// `spiffe://`, a literal = prefix `spiffe://<td>/`, one `*` inside =
    /// `spiffe://<pre>[^/]*<post>/.*`.
    pub(crate) fn trust_domain(value: &str) -> Result<PrincipalPat, String> {
        if value == "*" {
            return Ok(PrincipalPat::Spiffe(StrPat::Prefix(String::new())));
        }
        match value.split_once('*') {
            None => Ok(PrincipalPat::Spiffe(StrPat::Prefix(format!("{value}/")))),
            Some((pre, post)) => full_regex(&format!(
                "{}[^/]*{}/.*",
                regex::escape(pre),
                regex::escape(post)
            ))
            .map(PrincipalPat::SpiffeRegex),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            PrincipalPat::Any => "non-empty".to_string(),
            PrincipalPat::Spiffe(s) => format!("spiffe:// + {}", s.describe()),
            PrincipalPat::SpiffeRegex(r) => {
                format!("spiffe:// + regex {:?}", strip_anchors(r.as_str()))
            }
            PrincipalPat::Regex(r) => format!("regex {:?}", strip_anchors(r.as_str())),
        }
    }
}

/// Envoy `safe_regex` is a full match: anchor it.
pub(crate) fn full_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())
}

fn strip_anchors(s: &str) -> &str {
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

/// A path value: string forms, or a `{*}` / `{**}` template.
#[derive(Debug, Clone)]
pub(crate) enum PathPat {
    Str(StrPat),
    Template { source: String, re: Regex },
}

impl PathPat {
    pub(crate) fn compile(value: &str) -> Result<PathPat, String> {
        if super::path::is_path_template(value) {
            let re = super::path::compile_path_template(value)?;
            Ok(PathPat::Template {
                source: value.to_string(),
                re,
            })
        } else {
            Ok(PathPat::Str(StrPat::string(value)))
        }
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            PathPat::Str(s) => s.matches(Some(path)),
            PathPat::Template { re, .. } => re.is_match(path),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            PathPat::Str(s) => s.describe(),
            PathPat::Template { source, .. } => format!("template {source:?}"),
        }
    }
}

/// A single IP (`/32`, `/128`) or a CIDR, as Istio's `AddrStrToPrefix` accepts them
/// (host bits may be set; the block is what the prefix covers).
pub(crate) fn parse_ip_block(v: &str) -> Result<IpNet, String> {
    if v.contains('/') {
        v.parse::<IpNet>()
            .map_err(|e| format!("bad CIDR range ({v}): {e}"))
    } else {
        v.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("bad IP address ({v})"))
    }
}

/// Does the block contain `ip`? IPv4-mapped IPv6 addresses are compared as IPv4.
pub(crate) fn block_contains(block: &IpNet, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    block.contains(&ip)
}

/// A port as Istio's `convertToPort` accepts it: decimal, 0..=65535.
pub(crate) fn parse_port(v: &str) -> Result<u16, String> {
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("bad port ({v})"));
    }
    v.parse::<u16>().map_err(|_| format!("bad port ({v})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("abc", Some("abc"), true),
            ("abc", Some("abcd"), false),
            ("abc*", Some("abcd"), true),
            ("abc*", Some("abc"), true),
            ("*abc", Some("xabc"), true),
            ("*abc", Some("abcx"), false),
            ("*", Some("x"), true),
            ("*", Some(""), false),
            ("*", None, false),
            ("a*b", Some("a*b"), true),
        ];
        for (v, input, want) in cases {
            assert_eq!(StrPat::string(v).matches(*input), *want, "{v} vs {input:?}");
        }
        assert!(StrPat::header("*").matches(Some("")));
        assert!(!StrPat::header("*").matches(None));
    }

    #[test]
    fn ignore_case() {
        let p = StrPat::string("*.Example.COM").lowercase();
        assert!(p.matches_ignore_case(Some("www.EXAMPLE.com")));
        assert!(!p.matches_ignore_case(Some("www.example.com:80")));
        let p = StrPat::string("Prefix.*").lowercase();
        assert!(p.matches_ignore_case(Some("PREFIX.x")));
        // Non-ASCII never panics on byte slicing.
        assert!(!p.matches_ignore_case(Some("préfix.x")));
    }

    #[test]
    fn principals() {
        let p = Some("spiffe://cluster.local/ns/foo/sa/bar");
        let cases: Vec<(PrincipalPat, bool)> = vec![
            (PrincipalPat::principal("cluster.local/ns/foo/sa/bar"), true),
            (PrincipalPat::principal("cluster.local/ns/foo/*"), true),
            (PrincipalPat::principal("*/sa/bar"), true),
            (PrincipalPat::principal("*"), true),
            (PrincipalPat::principal("td/ns/foo/sa/bar"), false),
            (PrincipalPat::namespace("foo").expect("ns"), true),
            (PrincipalPat::namespace("fo*").expect("ns"), true),
            (PrincipalPat::namespace("bar").expect("ns"), false),
            (
                PrincipalPat::service_account("foo/bar", "x").expect("sa"),
                true,
            ),
            (
                PrincipalPat::service_account("bar", "foo").expect("sa"),
                true,
            ),
            (
                PrincipalPat::service_account("bar", "x").expect("sa"),
                false,
            ),
            (
                PrincipalPat::service_account("foo/ba", "x").expect("sa"),
                false,
            ),
            (
                PrincipalPat::trust_domain("cluster.local").expect("td"),
                true,
            ),
            (PrincipalPat::trust_domain("cluster.*").expect("td"), true),
            (PrincipalPat::trust_domain("*.local").expect("td"), true),
            (PrincipalPat::trust_domain("cluster").expect("td"), false),
            (PrincipalPat::trust_domain("*").expect("td"), true),
        ];
        for (pat, want) in cases {
            assert_eq!(pat.matches(p), want, "{}", pat.describe());
            // No principal (plaintext / unauthenticated peer) never matches.
            assert!(!pat.matches(None), "{}", pat.describe());
        }
        // Service account with extra segments between ns and sa (Istio regex `(.+/|)`).
        let sa = PrincipalPat::service_account("foo/bar", "x").expect("sa");
        assert!(sa.matches(Some("spiffe://td/ns/foo/x/y/sa/bar/z")));
        assert!(!sa.matches(Some("spiffe://td/ns/foo/sa/bar-baz")));
    }

    #[test]
    fn ips_and_ports() {
        let b = parse_ip_block("5.6.0.0/16").expect("cidr");
        assert!(block_contains(&b, "5.6.7.8".parse().expect("ip")));
        assert!(!block_contains(&b, "5.7.0.1".parse().expect("ip")));
        assert!(block_contains(&b, "::ffff:5.6.1.1".parse().expect("ip")));
        let one = parse_ip_block("1.2.3.4").expect("ip");
        assert!(block_contains(&one, "1.2.3.4".parse().expect("ip")));
        assert!(!block_contains(&one, "1.2.3.5".parse().expect("ip")));
        let host_bits = parse_ip_block("5.6.1.0/16").expect("cidr with host bits");
        assert!(block_contains(&host_bits, "5.6.200.1".parse().expect("ip")));
        for bad in ["1.2.3.4/33", "1.2.3", "abc", "", "1.2.3.4/"] {
            assert!(parse_ip_block(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_port("080"), Ok(80));
        for bad in ["", "+80", "65536", "-1", "80a"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }
}
