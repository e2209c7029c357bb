//! The decision input: one HTTP request plus what the connection says about its source and
//! destination. Borrowed views only, so adapters can build it without copying.

use std::net::{IpAddr, SocketAddr};

/// One request as the waypoint sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `:method`, e.g. `GET`.
    pub method: &'a str,
    /// `:scheme`, `http` or `https`.
    pub scheme: &'a str,
    /// `:authority` / Host header, possibly with a port.
    pub authority: &'a str,
    /// `:path` including the query string.
    pub path: &'a str,
    /// Request headers; names may be in any case (lookups are case-insensitive).
    pub headers: &'a [(&'a str, &'a str)],
    /// SPIFFE principal of the peer (`spiffe://td/ns/NS/sa/SA`), if authenticated.
    pub source_principal: Option<&'a str>,
    /// Source IP (from the `forwarded` header / connection).
    pub source_ip: Option<IpAddr>,
    /// Original destination as HBONE's `:authority` gives it: `VIP:port`, `podIP:port`,
    /// or `host:port` of a service.
    pub destination: &'a str,
    /// TLS SNI of the downstream connection, if any.
    pub sni: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// All values of header `name`, joined with "," as HTTP allows (Envoy joins the same way
    /// for header matching). Returns None when absent.
    pub fn header_joined(&self, name: &str) -> Option<std::borrow::Cow<'a, str>> {
        let mut it = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v);
        let first = it.next()?;
        match it.next() {
            None => Some(std::borrow::Cow::Borrowed(first)),
            Some(second) => {
                let mut s = String::from(first);
                s.push(',');
                s.push_str(second);
                for v in it {
                    s.push(',');
                    s.push_str(v);
                }
                Some(std::borrow::Cow::Owned(s))
            }
        }
    }

    /// Path without the query string.
    pub fn path_only(&self) -> &'a str {
        match self.path.bytes().position(|c| c == b'?') {
            Some(i) => &self.path[..i],
            None => self.path,
        }
    }

    /// Query string without `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.path
            .bytes()
            .position(|c| c == b'?')
            .map(|i| &self.path[i + 1..])
    }

    /// Host part of the authority, without port (IPv6 brackets kept off).
    pub fn host(&self) -> &'a str {
        split_host_port(self.authority).0
    }

    /// Parsed destination, if it is an IP:port.
    pub fn destination_addr(&self) -> Option<SocketAddr> {
        self.destination.parse().ok()
    }
}

/// Split `host[:port]` (or `[v6]:port`) into host and optional port.
pub fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let host = &rest[..end];
            let port = rest[end + 1..]
                .strip_prefix(':')
                .and_then(|p| p.parse().ok());
            return (host, port);
        }
        return (s, None);
    }
    // Byte searches: the port is a few bytes from the end, and the host's check for another
    // colon is a memchr (the generic `char` searchers cost more on every request).
    let b = s.as_bytes();
    match b.iter().rposition(|&c| c == b':') {
        // More than one colon and no brackets: a bare IPv6 address.
        Some(i) if b[..i].contains(&b':') => (s, None),
        Some(i) => match parse_port(&b[i + 1..]) {
            Some(p) => (&s[..i], Some(p)),
            None => (s, None),
        },
        None => (s, None),
    }
}

/// A port, exactly as `u16::from_str` reads it (an optional `+`, then digits, at most 65535;
/// `host:+80` is port 80 as before), in a digit loop: the standard parser's generality costs
/// more on every request.
fn parse_port(b: &[u8]) -> Option<u16> {
    let digits = b.strip_prefix(b"+").unwrap_or(b);
    if digits.is_empty() {
        return None;
    }
    let mut v: u32 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
        if v > u32::from(u16::MAX) {
            return None;
        }
    }
    u16::try_from(v).ok()
}

/// Parse an IP address literal. The usual destination, a dotted-quad IPv4 address, is read
/// by a short loop on the data path; anything else goes to the standard parser, so the result
/// is always exactly `s.parse::<IpAddr>().ok()`.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    parse_ipv4_quad(s.as_bytes())
        .map(IpAddr::V4)
        .or_else(|| s.parse().ok())
}

/// Four decimal octets, 0-255, no leading zeros (the forms `Ipv4Addr::from_str` accepts);
/// `None` for anything else. One pass over the bytes.
fn parse_ipv4_quad(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let (mut n, mut value, mut digits) = (0usize, 0u16, 0u8);
    for &c in b {
        match c {
            b'0'..=b'9' => {
                // A leading zero is only allowed as the whole octet.
                if digits == 3 || (digits == 1 && value == 0) {
                    return None;
                }
                value = value * 10 + u16::from(c - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && n < 3 => {
                octets[n] = u8::try_from(value).ok()?;
                (n, value, digits) = (n + 1, 0, 0);
            }
            _ => return None,
        }
    }
    if n != 3 || digits == 0 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(std::net::Ipv4Addr::from(octets))
}

/// Iterate `name=value` pairs of a query string (no percent-decoding, as Envoy's
/// query_parameter matcher compares the raw value).
pub fn query_pairs(q: &str) -> impl Iterator<Item = (&str, &str)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.find('=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, ""),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_as_the_standard_parser() {
        let mut inputs: Vec<String> = Vec::new();
        for v in [0u64, 1, 80, 8080, 15008, 65535, 65536, 99999, 4294967296] {
            for width in [1, 5, 7] {
                inputs.push(format!("{v:0width$}"));
                inputs.push(format!("+{v:0width$}"));
            }
        }
        inputs.extend(["", "+", "++80", "-1", "8o", " 80", "80 ", "٣"].map(String::from));
        for s in inputs {
            assert_eq!(parse_port(s.as_bytes()), s.parse::<u16>().ok(), "{s:?}");
        }
    }

    #[test]
    fn parse_ip_agrees_with_the_standard_parser() {
        for s in [
            "10.96.0.10",
            "0.0.0.0",
            "255.255.255.255",
            "1.2.3.4",
            "127.0.0.1",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1..3.4",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.a",
            "a.b.c.d",
            "",
            "1.2.3.4 ",
            " 1.2.3.4",
            "+1.2.3.4",
            "1.2.3.-4",
            "1000.1.1.1",
            "0.0.0.00",
            "::1",
            "fe80::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:1.2.3.4",
            "reviews",
            "1.2.3.4.",
            "00.1.1.1",
            "1.2.3.400",
            "1.2.3.255",
            "0.1.2.3",
            "1.2..",
            "1.2.3.4:80",
            "١.٢.٣.٤",
        ] {
            assert_eq!(parse_ip(s), s.parse::<IpAddr>().ok(), "{s:?}");
        }
        // Every octet value and a few malformed spellings of each.
        for v in 0..=300u32 {
            for s in [
                format!("{v}.0.0.1"),
                format!("0{v}.0.0.1"),
                format!("1.1.1.{v}"),
            ] {
                assert_eq!(parse_ip(&s), s.parse::<IpAddr>().ok(), "{s:?}");
            }
        }
    }

    #[test]
    fn host_port_split() {
        for (input, host, port) in [
            ("reviews:9080", "reviews", Some(9080)),
            ("reviews", "reviews", None),
            ("10.0.0.1:80", "10.0.0.1", Some(80)),
            ("[::1]:8080", "::1", Some(8080)),
            ("::1", "::1", None),
            ("host:abc", "host:abc", None),
            ("host:", "host:", None),
            (":80", "", Some(80)),
            ("host:+80", "host", Some(80)),
            ("host:65536", "host:65536", None),
            ("a:b:80", "a:b:80", None),
            ("[::1]", "::1", None),
            ("[::1", "[::1", None),
            ("", "", None),
        ] {
            assert_eq!(split_host_port(input), (host, port), "{input}");
        }
    }

    #[test]
    fn joined_headers_and_query() {
        let headers = [("X-A", "1"), ("x-a", "2"), ("b", "3")];
        let r = Request {
            method: "GET",
            scheme: "http",
            authority: "a:1",
            path: "/p?x=1&y",
            headers: &headers,
            source_principal: None,
            source_ip: None,
            destination: "a:1",
            sni: None,
        };
        assert_eq!(r.header_joined("x-a").as_deref(), Some("1,2"));
        assert_eq!(r.header("B"), Some("3"));
        assert_eq!(r.path_only(), "/p");
        let pairs: Vec<_> = query_pairs(r.query().unwrap_or_default()).collect();
        assert_eq!(pairs, vec![("x", "1"), ("y", "")]);
    }
}
