//! Token extraction as Envoy jwt_authn does it: a header after its prefix, a query parameter,
//! or a cookie; the token runs to the first character a JWT cannot hold.

use crate::request::{query_pairs, Request};

use super::compile::TokenLocation;

/// The token at `loc` in `req`, if any.
pub fn token_at<'a>(loc: &TokenLocation, req: &Request<'a>) -> Option<&'a str> {
    let raw = match loc {
        TokenLocation::Header { name, prefix } => {
            let mut found = None;
            for (k, v) in req.headers.iter() {
                if !k.eq_ignore_ascii_case(name) {
                    continue;
                }
                let rest = if prefix.is_empty() {
                    Some(*v)
                } else {
                    find_ignore_case(v, prefix).map(|i| &v[i + prefix.len()..])
                };
                if let Some(r) = rest {
                    found = Some(r);
                    break;
                }
            }
            found?
        }
        TokenLocation::Param(p) => query_pairs(req.query()?)
            .find(|(k, _)| k == p)
            .map(|(_, v)| v)?,
        TokenLocation::Cookie(c) => req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k == c)
            .map(|(_, v)| v.trim_matches('"'))?,
    };
    let raw = raw.trim_start();
    let end = raw
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.=+/".contains(c)))
        .unwrap_or(raw.len());
    let token = &raw[..end];
    (!token.is_empty()).then_some(token)
}

/// Byte offset of `needle` in `hay`, ASCII case-insensitive (`Bearer ` / `bearer `).
fn find_ignore_case(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}
