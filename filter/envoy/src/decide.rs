//! The one place that calls the policy core: build a snapshot from resources, and decide one
//! request. Keeping it behind this seam lets the rest of the filter ignore core API churn.

use waypoint_core::decision::{Action, Decision, LocalResponse};
use waypoint_core::resource::RawResource;
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
    resources: usize,
}

impl Engine {
    /// Compile `resources` for `waypoint`. Diagnostics carry every error and warning.
    pub fn build(resources: &[RawResource], waypoint: &WaypointName) -> (Engine, Diagnostics) {
        // Interim until waypoint_core::snapshot lands: no routes, everything is 404.
        (
            Engine {
                waypoint: waypoint.clone(),
                resources: resources.len(),
            },
            Diagnostics::default(),
        )
    }

    /// Number of resources the engine was built from.
    pub fn resource_count(&self) -> usize {
        self.resources
    }

    /// Decide one request.
    pub fn decide<'s>(&'s self, _req: &Request<'_>, _rng: &mut dyn RandomSource) -> Decision<'s> {
        Decision {
            action: Action::NotFound,
            local: Some(LocalResponse {
                status: 404,
                body: String::new(),
                headers: Vec::new(),
                grpc_status: None,
            }),
            forward: None,
            matched_rule: None,
            service: None,
            policies: Vec::new(),
            trace: Vec::new(),
        }
    }
}
