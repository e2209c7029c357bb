//! Consistent-hash input of a request (DestinationRule `consistentHash`): the header, cookie,
//! source IP or query parameter value both runtimes hash to pick a sticky endpoint.

use std::borrow::Cow;

use crate::request::{query_pairs, Request};
use crate::route::HashKey;

impl HashKey {
    /// The value this key hashes for `req`; `None` when the request does not carry it (Envoy
    /// then has no hash and balances as if no hash policy applied).
    pub fn input<'r>(&self, req: &Request<'r>) -> Option<Cow<'r, str>> {
        match self {
            HashKey::Header(name) => req.header_joined(name),
            HashKey::Cookie(name) => cookie(req, name).map(Cow::Borrowed),
            HashKey::SourceIp => req.source_ip.map(|ip| Cow::Owned(ip.to_string())),
            // Envoy's query_parameter hash: the first value, as written (not decoded).
            HashKey::QueryParameter(name) => query_pairs(req.query()?)
                .find(|(k, _)| k == name)
                .map(|(_, v)| Cow::Borrowed(v)),
        }
    }
}

/// The value of cookie `name` in the request's `cookie` headers (the first one that has it).
fn cookie<'r>(req: &Request<'r>, name: &str) -> Option<&'r str> {
    req.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then_some(v.trim_matches('"'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(headers: &'a [(&'a str, &'a str)], path: &'a str) -> Request<'a> {
        Request {
            method: "GET",
            scheme: "http",
            authority: "reviews:9080",
            path,
            headers,
            source_principal: None,
            source_ip: Some("10.0.0.9".parse().expect("ip")),
            destination: "10.96.0.1:9080",
            sni: None,
        }
    }

    #[test]
    fn each_key_reads_its_part_of_the_request() {
        let headers = [
            ("X-User", "jason"),
            ("cookie", "a=1; session=\"s-42\""),
            ("cookie", "session=later"),
        ];
        let r = req(&headers, "/p?x=1&user=u7&user=u8");
        let cases = [
            (HashKey::Header("x-user".into()), Some("jason")),
            (HashKey::Header("x-none".into()), None),
            (HashKey::Cookie("session".into()), Some("s-42")),
            (HashKey::Cookie("sess".into()), None),
            (HashKey::SourceIp, Some("10.0.0.9")),
            (HashKey::QueryParameter("user".into()), Some("u7")),
            (HashKey::QueryParameter("use".into()), None),
        ];
        for (key, want) in cases {
            assert_eq!(key.input(&r).as_deref(), want, "{key:?}");
        }
        let bare = req(&[], "/p");
        assert_eq!(HashKey::QueryParameter("user".into()).input(&bare), None);
        assert_eq!(HashKey::Cookie("session".into()).input(&bare), None);
    }
}
