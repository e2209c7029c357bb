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
    pub waypoint: WaypointName,
    snapshot: Snapshot,
    resources: usize,
}

impl Engine {
    /// Compile `resources` for `waypoint`. Diagnostics carry every error and warning.
    pub fn build(resources: &[RawResource], waypoint: &WaypointName) -> (Engine, Diagnostics) {
        let opts = BuildOptions {
            waypoint: Some((waypoint.namespace.clone(), waypoint.name.clone())),
            // This data path has no ext_authz client; CUSTOM policies fail closed (see filter).
            custom_providers: Vec::new(),
            ..BuildOptions::default()
        };
        let (snapshot, diags) = Snapshot::build(resources, &opts);
        (
            Engine {
                waypoint: waypoint.clone(),
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

    /// Number of services bound to this waypoint.
    pub fn bound_services(&self) -> usize {
        self.snapshot.bound_services().count()
    }

    /// Decide one request.
    pub fn decide<'s>(&'s self, req: &Request<'_>, rng: &mut dyn RandomSource) -> Decision<'s> {
        self.snapshot.decide(req, rng, false)
    }
}
