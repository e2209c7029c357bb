//! Route `rate_limits` (Envoy `config.route.v3.RateLimit`): the actions that turn a request
//! into descriptors, which select a local rate limit's descriptor buckets.

use serde::Deserialize;

use crate::matchers::StringMatch;

/// One `rate_limits[]` entry: every action must produce an entry, else no descriptor.
#[derive(Debug, Clone)]
pub struct RateLimitRule {
    pub stage: u32,
    pub actions: Vec<Action>,
}

/// A descriptor entry producer.
#[derive(Debug, Clone)]
pub enum Action {
    /// `request_headers`: the header's value under `key` (absent: no descriptor, or skipped
    /// with `skip_if_absent`).
    RequestHeader {
        header: String,
        key: String,
        skip_if_absent: bool,
    },
    /// `generic_key`: a fixed entry.
    Generic { key: String, value: String },
    /// `remote_address`: the client's address (the tunnel's source).
    RemoteAddress,
    /// `destination_cluster`: the cluster the request is routed to.
    DestinationCluster,
    /// `header_value_match`: `value` under `key` when the headers match (or do not, with
    /// `expect_match: false`).
    HeaderValueMatch {
        key: String,
        value: String,
        expect_match: bool,
        headers: Vec<(String, Option<StringMatch>, bool)>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    stage: Option<u32>,
    actions: Vec<RawAction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum RawAction {
    RequestHeaders(RawRequestHeaders),
    GenericKey(RawGenericKey),
    RemoteAddress(#[allow(dead_code)] serde_json::Map<String, serde_json::Value>),
    DestinationCluster(#[allow(dead_code)] serde_json::Map<String, serde_json::Value>),
    HeaderValueMatch(RawHeaderValueMatch),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequestHeaders {
    header_name: String,
    descriptor_key: String,
    #[serde(default)]
    skip_if_absent: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenericKey {
    descriptor_value: String,
    descriptor_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderValueMatch {
    descriptor_value: String,
    descriptor_key: Option<String>,
    expect_match: Option<bool>,
    headers: Vec<RawHeaderMatcher>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderMatcher {
    name: String,
    exact_match: Option<String>,
    prefix_match: Option<String>,
    suffix_match: Option<String>,
    present_match: Option<bool>,
    string_match: Option<RawStringMatch>,
    #[serde(default)]
    invert_match: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStringMatch {
    exact: Option<String>,
    prefix: Option<String>,
    suffix: Option<String>,
    safe_regex: Option<RawRegex>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegex {
    regex: String,
}

/// Read `rate_limits` from JSON; errors are `([i].actions[j]..., message)`.
pub fn parse_rate_limits(v: &serde_json::Value) -> Result<Vec<RateLimitRule>, (String, String)> {
    let raw: Vec<RawRateLimit> = serde_path_to_error::deserialize(v).map_err(|e| {
        let p = e.path().to_string();
        (
            if p == "." { String::new() } else { p },
            e.inner().to_string(),
        )
    })?;
    compile_rate_limits(raw)
}

pub(super) fn compile_rate_limits(
    raw: Vec<RawRateLimit>,
) -> Result<Vec<RateLimitRule>, (String, String)> {
    let mut out = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let mut actions = Vec::new();
        for (j, a) in r.actions.into_iter().enumerate() {
            let at = |f: &str| format!("[{i}].actions[{j}].{f}");
            actions.push(match a {
                RawAction::RequestHeaders(h) => Action::RequestHeader {
                    header: h.header_name.to_ascii_lowercase(),
                    key: h.descriptor_key,
                    skip_if_absent: h.skip_if_absent,
                },
                RawAction::GenericKey(g) => Action::Generic {
                    key: g.descriptor_key.unwrap_or_else(|| "generic_key".into()),
                    value: g.descriptor_value,
                },
                RawAction::RemoteAddress(_) => Action::RemoteAddress,
                RawAction::DestinationCluster(_) => Action::DestinationCluster,
                RawAction::HeaderValueMatch(h) => {
                    let mut headers = Vec::new();
                    for (k, m) in h.headers.into_iter().enumerate() {
                        let f = at(&format!("header_value_match.headers[{k}]"));
                        let matcher = header_matcher(&m).map_err(|e| (f, e))?;
                        headers.push((m.name.to_ascii_lowercase(), matcher, m.invert_match));
                    }
                    Action::HeaderValueMatch {
                        key: h.descriptor_key.unwrap_or_else(|| "header_match".into()),
                        value: h.descriptor_value,
                        expect_match: h.expect_match.unwrap_or(true),
                        headers,
                    }
                }
            });
        }
        if actions.is_empty() {
            return Err((format!("[{i}].actions"), "must not be empty".into()));
        }
        out.push(RateLimitRule {
            stage: r.stage.unwrap_or(0),
            actions,
        });
    }
    Ok(out)
}

/// `None`: presence.
fn header_matcher(m: &RawHeaderMatcher) -> Result<Option<StringMatch>, String> {
    let regex = |p: &str| StringMatch::regex(p).map_err(|e| format!("bad regex {p:?}: {e}"));
    Ok(match (&m.exact_match, &m.prefix_match, &m.suffix_match, &m.string_match) {
        (Some(e), None, None, None) => Some(StringMatch::Exact(e.clone())),
        (None, Some(p), None, None) => Some(StringMatch::Prefix(p.clone())),
        (None, None, Some(s), None) => Some(StringMatch::Suffix(s.clone())),
        (None, None, None, Some(s)) => match (&s.exact, &s.prefix, &s.suffix, &s.safe_regex) {
            (Some(e), None, None, None) => Some(StringMatch::Exact(e.clone())),
            (None, Some(p), None, None) => Some(StringMatch::Prefix(p.clone())),
            (None, None, Some(x), None) => Some(StringMatch::Suffix(x.clone())),
            (None, None, None, Some(r)) => Some(regex(&r.regex)?),
            _ => return Err("string_match needs exactly one of exact, prefix, suffix, safe_regex".into()),
        },
        (None, None, None, None) if m.present_match.is_some() => None,
        _ => return Err("needs exactly one of exact_match, prefix_match, suffix_match, present_match, string_match".into()),
    })
}

/// The request as the actions see it.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Lower-case names.
    pub headers: &'a [(&'a str, &'a str)],
    pub remote_address: Option<std::net::IpAddr>,
    /// The cluster the request goes to (`outbound|<port>|<subset>|<host>`), when known.
    pub destination_cluster: Option<&'a str>,
}

impl RequestView<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        // Envoy's special headers: `:path`, `:authority`, `:method` are passed in as headers.
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// The descriptors `rules` (of `stage`) produce for `req`, each a list of entries.
pub fn descriptors(
    rules: &[RateLimitRule],
    stage: u32,
    req: &RequestView<'_>,
) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    'rule: for r in rules.iter().filter(|r| r.stage == stage) {
        let mut entries = Vec::new();
        for a in &r.actions {
            match a {
                Action::RequestHeader {
                    header,
                    key,
                    skip_if_absent,
                } => match req.header(header) {
                    Some(v) => entries.push((key.clone(), v.to_string())),
                    None if *skip_if_absent => {}
                    None => continue 'rule,
                },
                Action::Generic { key, value } => entries.push((key.clone(), value.clone())),
                Action::RemoteAddress => match req.remote_address {
                    Some(ip) => entries.push(("remote_address".into(), ip.to_string())),
                    None => continue 'rule,
                },
                Action::DestinationCluster => match req.destination_cluster {
                    Some(c) => entries.push(("destination_cluster".into(), c.to_string())),
                    None => continue 'rule,
                },
                Action::HeaderValueMatch {
                    key,
                    value,
                    expect_match,
                    headers,
                } => {
                    let all = headers.iter().all(|(name, m, invert)| {
                        let hit = match (req.header(name), m) {
                            (None, _) => false,
                            (Some(_), None) => true,
                            (Some(v), Some(m)) => m.matches(v),
                        };
                        hit != *invert
                    });
                    if all == *expect_match {
                        entries.push((key.clone(), value.clone()));
                    } else {
                        continue 'rule;
                    }
                }
            }
        }
        if !entries.is_empty() {
            out.push(entries);
        }
    }
    out
}
