//! waypoint-analyze: `waypoint analyze`'s analyzers. Parsed manifests in, one compiled snapshot
//! per waypoint, `istioctl analyze`-style messages out (code, level, resource, text); no I/O.

#![forbid(unsafe_code)]

pub mod catalogue;
mod context;
mod cover;
mod destinations;
mod diagnostics;
pub mod format;
pub mod message;
mod policies;
mod references;
mod shadowed;
pub mod suppress;
mod vs_hosts;
mod vs_rules;
mod weights;

#[cfg(test)]
mod test_support;

use std::collections::{BTreeMap, BTreeSet};

pub use context::Input;
pub use diagnostics::is_parse_error;
pub use message::{Level, Message, MessageType, ResourceRef};
pub use suppress::Suppression;

use context::Context;

/// One analyzer: the compiled input in, its messages out.
type Analyzer = fn(&Context<'_>) -> Vec<Message>;

/// Every analyzer, in the order they run.
const ANALYZERS: &[(&str, Analyzer)] = &[
    ("core diagnostics", diagnostics::analyze),
    ("virtualservice rules", vs_rules::analyze),
    ("virtualservice hosts", vs_hosts::analyze),
    ("shadowed route rules", shadowed::analyze),
    ("weights", weights::analyze),
    ("destinations", destinations::analyze),
    ("references", references::analyze),
    ("policies", policies::analyze),
];

/// The analyzers' names (`--list-analyzers`).
pub fn analyzer_names() -> Vec<&'static str> {
    ANALYZERS.iter().map(|(n, _)| *n).collect()
}

/// Run every analyzer over `input`. Messages come sorted by resource, code and text, each
/// once, with the origin (file or API object) of their resource when known; those a
/// resource's `galley.istio.io/analyze-suppress` annotation names are left out.
pub fn analyze(input: &Input<'_>) -> Vec<Message> {
    let ctx = Context::build(input);
    let mut out: Vec<Message> = Vec::new();
    if ctx.waypoints.is_empty() {
        out.push(Message::new(
            catalogue::NO_WAYPOINT,
            None,
            "The config has no waypoint Gateway (gatewayClassName istio-waypoint); route tables are not checked.",
        ));
    }
    for (_, analyzer) in ANALYZERS {
        out.extend(analyzer(&ctx));
    }
    let origins: BTreeMap<ResourceRef, &str> = input
        .resources
        .iter()
        .map(|r| {
            (
                ResourceRef::new(&r.kind, &r.namespace, &r.name),
                r.origin.as_str(),
            )
        })
        .collect();
    for m in &mut out {
        if let Some(r) = &m.resource {
            m.origin = origins.get(r).map(|o| (*o).to_string());
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|m| seen.insert((m.resource.clone(), m.kind.code, m.text.clone())));
    let annotated: BTreeMap<ResourceRef, String> = input
        .resources
        .iter()
        .filter_map(|r| {
            let codes = r.annotations.get(suppress::ANNOTATION)?;
            Some((
                ResourceRef::new(&r.kind, &r.namespace, &r.name),
                codes.clone(),
            ))
        })
        .collect();
    let mut out = suppress::apply(out, &[], &annotated);
    out.sort_by(|a, b| {
        (&a.resource, a.kind.code, &a.text).cmp(&(&b.resource, b.kind.code, &b.text))
    });
    out
}
