//! The one place that calls the policy core: build a snapshot from resources, and decide one
//! request. Keeping it behind this seam lets the rest of the filter ignore core API churn.

use std::collections::HashMap;

use waypoint_core::decision::Decision;
use waypoint_core::resource::RawResource;
use waypoint_core::route::RuleId;
use waypoint_core::snapshot::{BuildOptions, Snapshot};
use waypoint_core::{Diagnostics, RandomSource, Request};

/// Which waypoint this Envoy is (`namespace/name` of the waypoint Gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaypointName {
    pub namespace: String,
    pub name: String,
}

/// The compiled config, shared read-only by every worker thread.
#[derive(Debug)]
pub struct Engine {
    snapshot: Snapshot,
    resources: usize,
    /// `Kind/ns/name#rule` of every rule, built once (keyed by the rule id's address in the
    /// immutable snapshot) so the per-request metadata and counters do not format strings.
    route_labels: HashMap<usize, String>,
}

impl Engine {
    /// Compile `resources` for `waypoint`. Diagnostics carry every error and warning.
    /// `None` = the only waypoint Gateway in the config.
    pub fn build(
        resources: &[RawResource],
        waypoint: Option<&WaypointName>,
    ) -> (Engine, Diagnostics) {
        let opts = BuildOptions {
            waypoint: waypoint.map(|w| (w.namespace.clone(), w.name.clone())),
            // This data path has no ext_authz client; CUSTOM policies fail closed (see filter).
            custom_providers: Vec::new(),
            ..BuildOptions::default()
        };
        let (snapshot, diags) = Snapshot::build(resources, &opts);
        let mut route_labels = HashMap::new();
        for idx in snapshot.bound_services() {
            if let Some(routes) = snapshot.service_routes(idx) {
                for e in &routes.entries {
                    let id = &e.rule.id;
                    route_labels
                        .entry(id as *const RuleId as usize)
                        .or_insert_with(|| format!("{}#{}", id.resource(), id.rule));
                }
            }
        }
        (
            Engine {
                snapshot,
                resources: resources.len(),
                route_labels,
            },
            diags,
        )
    }

    /// Number of resources the engine was built from.
    pub fn resource_count(&self) -> usize {
        self.resources
    }

    /// `namespace/name` of the waypoint the snapshot was built for (`?` if none was found).
    pub fn waypoint_name(&self) -> String {
        match &self.snapshot.waypoint {
            Some(w) => format!("{}/{}", w.namespace, w.name),
            None => "?".to_string(),
        }
    }

    /// Number of services bound to this waypoint.
    pub fn bound_services(&self) -> usize {
        self.snapshot.bound_services().count()
    }

    /// `Kind/namespace/name#rule` of a matched rule (`none` when no rule matched).
    pub fn route_label(&self, rule: Option<&RuleId>) -> std::borrow::Cow<'_, str> {
        match rule {
            None => "none".into(),
            Some(id) => match self.route_labels.get(&(id as *const RuleId as usize)) {
                Some(label) => label.as_str().into(),
                None => format!("{}#{}", id.resource(), id.rule).into(),
            },
        }
    }

    /// Decide one request.
    pub fn decide<'s>(&'s self, req: &Request<'_>, rng: &mut dyn RandomSource) -> Decision<'s> {
        self.snapshot.decide(req, rng, false)
    }
}
