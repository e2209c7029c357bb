//! The one place that calls the policy core: build a snapshot from resources, and decide one
//! request. Keeping it behind this seam lets the rest of the filter ignore core API churn.

use waypoint_core::decision::Decision;
use waypoint_core::resource::RawResource;
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
        (
            Engine {
                snapshot,
                resources: resources.len(),
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

    /// Decide one request.
    pub fn decide<'s>(&'s self, req: &Request<'_>, rng: &mut dyn RandomSource) -> Decision<'s> {
        self.snapshot.decide(req, rng, false)
    }
}
