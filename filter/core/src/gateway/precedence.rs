//! Gateway API match precedence across all rules of all routes attached to one parent
//! (HTTPRouteRule docs), with Istio's choices where the spec leaves them open.
//!
//! Spec: precedence goes to the match with (1) an Exact path match, (2) the PathPrefix match
//! with the most characters, (3) a method match, (4) the most header matches, (5) the most
//! query param matches. Ties across routes: the oldest route (creationTimestamp), then
//! `{namespace}/{name}` alphabetical; within a route, the first matching rule in list order.
//! Regex precedence is implementation-specific: Istio (`sortHTTPRoutes`) ranks
//! Exact > Prefix > Regex > no path, and within a rank the longer value first. GRPCRoute
//! matches are compiled to paths and ranked the same way, as Istio does.

use std::cmp::Ordering;

use crate::matchers::StringMatch;
use crate::route::{RequestMatch, RouteEntry};

use super::parents::ParentKey;
use super::{CompiledEntry, CompiledRoute};

/// What precedence compares for one match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchRank {
    /// 3 exact, 2 prefix, 1 regex, 0 no path match.
    pub path_kind: u8,
    /// Characters of the path value (prefix without its ignored trailing `/`, except `/`).
    pub path_len: usize,
    pub method: bool,
    pub headers: usize,
    pub query: usize,
}

impl MatchRank {
    pub fn of(m: &RequestMatch) -> MatchRank {
        let (path_kind, path_len) = match &m.path {
            Some(StringMatch::Exact(s)) => (3, s.len()),
            // PathPrefix stores `/` as "" (matches all); Istio counts it as one character.
            Some(StringMatch::PathPrefix(s)) => (2, s.len().max(1)),
            Some(StringMatch::Prefix(s)) => (2, s.len()),
            Some(StringMatch::Regex(r)) => (1, regex_source(r.as_str()).len()),
            Some(_) => (0, 0),
            None => (0, 0),
        };
        MatchRank {
            path_kind,
            path_len,
            method: m.method.is_some(),
            headers: m.headers.len(),
            query: m.query.len(),
        }
    }

    /// `Less` when `self` takes precedence over `other`.
    fn precedence(&self, other: &MatchRank) -> Ordering {
        other
            .path_kind
            .cmp(&self.path_kind)
            .then(other.path_len.cmp(&self.path_len))
            .then(other.method.cmp(&self.method))
            .then(other.headers.cmp(&self.headers))
            .then(other.query.cmp(&self.query))
    }
}

/// The pattern as written (StringMatch::regex anchors it as `^(?:...)$`).
fn regex_source(s: &str) -> &str {
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

/// Route-level tie-break: oldest creationTimestamp first (routes without one count as newest,
/// ordered by read order `seq`), then `{namespace}/{name}`. RFC 3339 timestamps as the API
/// server writes them (`YYYY-MM-DDTHH:MM:SSZ`) order lexicographically.
fn route_order(a: &CompiledRoute, b: &CompiledRoute) -> Ordering {
    match (&a.creation_timestamp, &b.creation_timestamp) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.seq.cmp(&b.seq),
    }
    .then_with(|| a.id.namespace.cmp(&b.id.namespace))
    .then_with(|| a.id.name.cmp(&b.id.name))
}

fn sorted<'a>(routes: &[&'a CompiledRoute]) -> Vec<(&'a CompiledRoute, &'a CompiledEntry)> {
    let mut rs: Vec<&CompiledRoute> = routes.to_vec();
    rs.sort_by(|a, b| route_order(a, b));
    let mut all: Vec<(&CompiledRoute, &CompiledEntry)> = rs
        .iter()
        .flat_map(|r| r.entries.iter().map(move |e| (*r, e)))
        .collect();
    // Stable: route order, then rule order, then match order break the remaining ties.
    all.sort_by(|(_, a), (_, b)| a.rank.precedence(&b.rank));
    all
}

/// All entries of `routes` (the routes attached to one parent) in precedence order, for
/// first-match evaluation. No parentRef port handling: see `ordered_entries_for_parent`.
pub fn ordered_entries(routes: &[&CompiledRoute]) -> Vec<RouteEntry> {
    sorted(routes)
        .into_iter()
        .map(|(_, e)| e.entry.clone())
        .collect()
}

/// Entries of the routes that name `parent` in a parentRef, in precedence order. When the
/// parentRefs to `parent` carry a `port`, each entry is restricted to that service port
/// (Istio `augmentPortMatch`); one copy per port. A parentRef without port applies to all ports.
pub fn ordered_entries_for_parent(
    parent: &ParentKey,
    routes: &[&CompiledRoute],
) -> Vec<RouteEntry> {
    let attached: Vec<&CompiledRoute> = routes
        .iter()
        .copied()
        .filter(|r| r.parents.iter().any(|p| p.key() == *parent))
        .collect();
    let mut out = Vec::new();
    for (route, e) in sorted(&attached) {
        let refs = route.parents.iter().filter(|p| p.key() == *parent);
        let mut ports: Vec<Option<u16>> = Vec::new();
        for p in refs {
            if p.port.is_none() {
                ports = vec![None];
                break;
            }
            if !ports.contains(&p.port) {
                ports.push(p.port);
            }
        }
        for port in ports {
            let mut entry = e.entry.clone();
            if port.is_some() {
                entry.matcher.port = port;
            }
            out.push(entry);
        }
    }
    out
}

/// Do the ordered entries of a parent apply to requests on service port `port`? Entries that a
/// parentRef `port` restricted to other ports do not. When none applies, the routes do not
/// cover this port and the service's default route is used (mesh-ports conformance test);
/// when some apply but none matches, the request gets 404 (no route matched), as in Istio.
pub fn routes_apply_to_port(entries: &[RouteEntry], port: Option<u16>) -> bool {
    entries
        .iter()
        .any(|e| e.matcher.port.is_none() || e.matcher.port == port)
}
