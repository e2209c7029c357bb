//! Header helpers: the HBONE `forwarded` and `baggage` headers ztunnel sends, hop-by-hop
//! stripping, and route header mutations (set, add, remove) in Envoy's order.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use tracing::debug;
use waypoint_core::route::HeaderOps;

/// Source IP from `forwarded: for="<ip:port>";host=...` (RFC 7239; ztunnel quotes it).
/// The last element is the one the nearest proxy added.
pub fn forwarded_for(value: &str) -> Option<IpAddr> {
    let element = value.rsplit(',').next()?;
    for pair in element.split(';') {
        let (k, v) = pair.trim().split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("for") {
            continue;
        }
        let v = v.trim().trim_matches('"');
        if let Ok(sa) = v.parse::<std::net::SocketAddr>() {
            return Some(sa.ip());
        }
        let v = v.trim_start_matches('[');
        let v = v.split(']').next().unwrap_or(v);
        if let Ok(ip) = v.parse::<IpAddr>() {
            return Some(ip);
        }
        if let Some((host, _port)) = v.rsplit_once(':') {
            return host.parse().ok();
        }
        return None;
    }
    None
}

/// Value of `key` in a W3C `baggage` header (`k=v,k2=v2;prop`).
pub fn baggage_get<'a>(baggage: &'a str, key: &str) -> Option<&'a str> {
    baggage.split(',').find_map(|member| {
        let member = member.split(';').next()?.trim();
        let (k, v) = member.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// Connection-specific headers that must not be forwarded (RFC 9110 §7.6.1). Typed names:
/// a `&str` key is parsed and classified on every look-up, twice per request here.
static HOP_BY_HOP: [HeaderName; 8] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::header::TE,
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
];

/// Remove hop-by-hop headers, including those the `connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names first (bit i: HOP_BY_HOP[i] is there): usually none or one
    // is, and each remove is a look-up. Headers the `connection` header names are only
    // removed when it is present, and it is one of these.
    let mut present = 0u8;
    for k in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == k) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // Usually `connection` names no header that is there (`close`), or one removed below
    // anyway (`keep-alive`; not `te`, which must go before `te: trailers` is judged): look
    // first, copy the names out only to remove some.
    let removed_anyway = |s: &str| {
        HOP_BY_HOP
            .iter()
            .any(|h| *h != http::header::TE && s.eq_ignore_ascii_case(h.as_str()))
    };
    let tokens = |h: &HeaderMap| -> Vec<String> {
        h.get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty() && !removed_anyway(s) && h.contains_key(*s))
            .map(str::to_string)
            .collect()
    };
    if present & 1 != 0 {
        for n in tokens(headers) {
            headers.remove(n.as_str());
        }
    }
    // `te: trailers` is allowed through on HTTP/2 (gRPC needs it).
    let te_trailers = headers
        .get(http::header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("trailers"));
    for (i, h) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(h);
        }
    }
    if te_trailers {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Apply `ops` as Envoy does: remove, then set (overwrite), then add (append).
pub fn apply_ops(headers: &mut HeaderMap, ops: &HeaderOps) {
    for name in &ops.remove {
        headers.remove(name.as_str());
    }
    for (name, value) in &ops.set {
        if let Some((n, v)) = header_pair(name, value) {
            headers.insert(n, v);
        }
    }
    for (name, value) in &ops.add {
        if let Some((n, v)) = header_pair(name, value) {
            headers.append(n, v);
        }
    }
}

fn header_pair(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    let n = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes());
    let v = HeaderValue::from_str(value);
    match (n, v) {
        (Ok(n), Ok(v)) => Some((n, v)),
        _ => {
            debug!(name, value, "skipping invalid header mutation");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_values() {
        for (input, want) in [
            (
                r#"for="10.0.0.7:43210";host=reviews.default.svc.cluster.local"#,
                Some("10.0.0.7"),
            ),
            ("for=10.1.2.3", Some("10.1.2.3")),
            (r#"for="[2001:db8::1]:80""#, Some("2001:db8::1")),
            ("for=1.1.1.1, for=2.2.2.2;proto=http", Some("2.2.2.2")),
            ("host=x", None),
            ("for=unknown", None),
        ] {
            assert_eq!(
                forwarded_for(input),
                want.map(|s| s.parse().expect("ip")),
                "{input}"
            );
        }
    }

    #[test]
    fn baggage_lookup() {
        let b = "k8s.namespace.name=default,service.name=productpage;p=1, service.version=v1";
        assert_eq!(baggage_get(b, "service.name"), Some("productpage"));
        assert_eq!(baggage_get(b, "service.version"), Some("v1"));
        assert_eq!(baggage_get(b, "k8s.deployment.name"), None);
    }

    #[test]
    fn mutations_in_order() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-b", HeaderValue::from_static("2"));
        h.insert("x-c", HeaderValue::from_static("3"));
        let ops = HeaderOps {
            set: vec![("X-A".into(), "set".into())],
            add: vec![("x-b".into(), "added".into())],
            remove: vec!["x-c".into()],
        };
        apply_ops(&mut h, &ops);
        assert_eq!(h.get("x-a").map(|v| v.as_bytes()), Some(&b"set"[..]));
        let b: Vec<_> = h.get_all("x-b").iter().map(|v| v.as_bytes()).collect();
        assert_eq!(b, vec![&b"2"[..], &b"added"[..]]);
        assert!(h.get("x-c").is_none());
    }

    #[test]
    fn hop_by_hop_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-custom"),
        );
        h.insert("x-custom", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-custom").is_none());
        assert!(h.get("connection").is_none());
        assert!(h.get("te").is_some());
        assert!(h.get("x-keep").is_some());
    }

    #[test]
    fn connection_naming_te_removes_te_even_for_trailers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("Keep-Alive, TE, close"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("close", HeaderValue::from_static("1"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_string()).collect();
        assert_eq!(left, vec!["x-keep"]);
    }

    #[test]
    fn every_hop_by_hop_header_goes_and_nothing_else() {
        let names = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "te",
            "proxy-authenticate",
            "proxy-authorization",
        ];
        // Each alone, then all together; `te` other than `trailers` goes too.
        for n in names.iter().map(|n| vec![*n]).chain([names.to_vec()]) {
            let mut h = HeaderMap::new();
            for name in &n {
                h.append(*name, HeaderValue::from_static("gzip"));
            }
            h.insert("x-keep", HeaderValue::from_static("1"));
            strip_hop_by_hop(&mut h);
            let left: Vec<_> = h.keys().map(|k| k.as_str().to_string()).collect();
            assert_eq!(left, vec!["x-keep"], "{n:?}");
        }
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }
}
