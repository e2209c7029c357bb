//! Minimal URL parsing for `--request 'METHOD URL'`: `scheme://host[:port]/path?query`.
//! Only what explain needs; no percent-decoding (the path is matched as sent).

use anyhow::{bail, Context};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    /// `host[:port]` as written.
    pub authority: String,
    pub host: String,
    pub port: Option<u16>,
    /// Path and query, always starting with `/`.
    pub path_and_query: String,
}

impl Url {
    pub fn port_or_default(&self) -> u16 {
        self.port
            .unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }

    /// Host as it goes in an authority (IPv6 in brackets).
    pub fn host_for_authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

pub fn parse(s: &str) -> anyhow::Result<Url> {
    let (scheme, rest) = s
        .split_once("://")
        .context("missing scheme (http:// or https://)")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        bail!("scheme {scheme:?} is not http or https");
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..split];
    let mut path = rest[split..].to_string();
    if path.is_empty() {
        path = "/".into();
    } else if path.starts_with('?') {
        path.insert(0, '/');
    }
    if let Some(i) = path.find('#') {
        path.truncate(i);
    }
    if authority.is_empty() {
        bail!("missing host");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let end = v6.find(']').context("unclosed [ in IPv6 host")?;
            let port = match &v6[end + 1..] {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .context("bad port")?
                        .parse::<u16>()
                        .context("bad port")?,
                ),
            };
            (v6[..end].to_string(), port)
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                Some(
                    p.parse::<u16>()
                        .with_context(|| format!("bad port {p:?}"))?,
                ),
            ),
            None => (authority.to_string(), None),
        },
    };
    Ok(Url {
        scheme,
        authority: authority.to_string(),
        host,
        port,
        path_and_query: path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let u = parse("http://reviews:9080/reviews/1?x=1").expect("url");
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("reviews", Some(9080), "/reviews/1?x=1")
        );
        let u = parse("http://productpage").expect("url");
        assert_eq!((u.port_or_default(), u.path_and_query.as_str()), (80, "/"));
        let u = parse("https://[::1]:8443?q").expect("url");
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("::1", Some(8443), "/?q")
        );
        assert!(parse("ftp://x/").is_err());
        assert!(parse("http://x:abc/").is_err());
        assert!(parse("reviews/").is_err());
    }
}
