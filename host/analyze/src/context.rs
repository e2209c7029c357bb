//! What every analyzer reads, built once: the raw resources, one compiled snapshot per
//! waypoint Gateway of the config, and the core's diagnostics of all of them.

use std::collections::BTreeSet;

use waypoint_core::registry::{find_waypoints, Registry, Waypoint};
use waypoint_core::resource::RawResource;
use waypoint_core::{BuildOptions, ConfigError, Diagnostics, Snapshot};

/// The analyzers' input.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub resources: &'a [RawResource],
    /// What loading found wrong (the file loader's errors); those about a resource are
    /// reported as schema errors, those about a file are left to the caller.
    pub load_errors: &'a [ConfigError],
    /// Istio's root namespace (mesh-wide policies, the mesh config).
    pub root_namespace: &'a str,
}

/// The input compiled once.
#[derive(Debug)]
pub struct Context<'a> {
    pub resources: &'a [RawResource],
    /// Every waypoint Gateway of the config.
    pub waypoints: Vec<Waypoint>,
    /// One snapshot per waypoint (same order); one built without a waypoint when there is none.
    pub snapshots: Vec<Snapshot>,
    /// The load errors and the core's diagnostics of every build, each once, in first-seen order.
    pub diagnostics: Diagnostics,
}

impl<'a> Context<'a> {
    pub fn build(input: &Input<'a>) -> Context<'a> {
        let mut ignored = Diagnostics::default();
        let waypoints = find_waypoints(input.resources, &mut ignored);
        let options = |w: Option<&Waypoint>| BuildOptions {
            waypoint: w.map(|w| (w.namespace.clone(), w.name.clone())),
            custom_providers: Vec::new(),
            root_namespace: input.root_namespace.to_string(),
        };
        let snapshots: Vec<Snapshot> = if waypoints.is_empty() {
            vec![Snapshot::build(input.resources, &options(None)).0]
        } else {
            waypoints
                .iter()
                .map(|w| Snapshot::build(input.resources, &options(Some(w))).0)
                .collect()
        };
        let mut diagnostics = Diagnostics::default();
        let mut seen: BTreeSet<(bool, String)> = BTreeSet::new();
        for e in input.load_errors {
            if seen.insert((true, e.to_string())) {
                diagnostics.error(e.clone());
            }
        }
        for s in &snapshots {
            for e in &s.diagnostics.errors {
                if !is_waypoint_selection(e) && seen.insert((true, e.to_string())) {
                    diagnostics.error(e.clone());
                }
            }
            for w in &s.diagnostics.warnings {
                if seen.insert((false, w.to_string())) {
                    diagnostics.warn(w.clone());
                }
            }
        }
        Context {
            resources: input.resources,
            waypoints,
            snapshots,
            diagnostics,
        }
    }

    /// The service registry (the same in every snapshot).
    pub fn registry(&self) -> &Registry {
        &self.snapshots[0].registry
    }

    /// Is service `idx` bound to one of the config's waypoints?
    pub fn is_bound(&self, idx: usize) -> bool {
        self.snapshots
            .iter()
            .any(|s| s.waypoint.is_some() && s.service_routes(idx).is_some())
    }

    /// Resources of one kind in one API group.
    pub fn of_kind<'s>(
        &'s self,
        group: &'s str,
        kind: &'s str,
    ) -> impl Iterator<Item = &'a RawResource> + 's {
        self.resources
            .iter()
            .filter(move |r| r.kind == kind && r.group() == group)
    }
}

/// The core's errors about choosing one waypoint (none, several, an unknown `--waypoint`):
/// analyze compiles once per waypoint instead, so these do not apply.
fn is_waypoint_selection(e: &ConfigError) -> bool {
    e.kind == "Gateway"
        && (e.message.contains("waypoint Gateway") || e.message.contains("several waypoints"))
}
