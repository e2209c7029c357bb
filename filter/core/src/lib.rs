//! waypoint-core: the pure policy core of the waypoint.
//! Config in (Istio + Gateway API manifests), one synchronous decision per request out; no I/O.

pub mod authn;
pub mod authz;
pub mod cors;
pub mod decision;
pub mod error;
pub mod explain;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
pub mod gateway;
pub mod hash_key;
pub mod istio;
pub mod local_reply;
pub mod matchers;
pub mod mesh;
pub mod names;
pub mod random;
pub mod ratelimit;
pub mod registry;
pub mod request;
pub mod resource;
pub mod route;
pub mod route_match;
pub mod router_headers;
pub mod service;
pub mod snapshot;
pub mod telemetry;
pub mod telemetry_labels;
#[cfg(test)]
pub(crate) mod test_skip;

pub use cors::CorsAction;
pub use error::{ConfigError, ConfigErrors, Diagnostics, ResourceId};
pub use names::NamespacedName;
pub use random::{RandomSource, SplitMix64};
pub use request::Request;
pub use snapshot::{BuildOptions, Snapshot};
