//! waypoint-controller: reconciles a GatewayClass of ours and its Gateways into the objects
//! that run a waypoint (pure functions, `reconcile`) and applies them to a cluster (`run`).
//!
//! istiod treats any Gateway with a non-empty `status.addresses` as a waypoint, whatever its
//! class, and writes no status for classes it does not own (istio/istio
//! `pilot/pkg/serviceregistry/ambient/waypoints.go` `gatewayToWaypointTransform`;
//! `gatewaycommon/deploymentcontroller.go` `Reconcile`): this controller deploys the pods and
//! writes that status. The shapes follow Istio's own waypoint template
//! (`manifests/charts/istio-control/istio-discovery/files/waypoint.yaml`).

pub mod labels;
pub mod options;
pub mod params;
pub mod reconcile;
pub mod render;
pub mod run;
pub mod status;

pub use options::{Mode, Options};
pub use reconcile::{reconcile, Desired, Input, Outcome};

/// A desired object could not be built (a bug in a template, or a parameter value the
/// Kubernetes types refuse).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("building {kind}: {source}")]
    Build {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("gateway has no {0}")]
    Missing(&'static str),
    #[error("not a Gateway of a class we own")]
    NotOurs,
}
