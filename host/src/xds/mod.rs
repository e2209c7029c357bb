//! `waypoint xds`: an ADS server (state-of-the-world and delta) for stock Envoy, serving the
//! resources of `waypoint bootstrap` as LDS/RDS/CDS/EDS/SDS, versioned per node.

pub mod cache;
pub mod delta;
pub mod proto;
pub mod resources;
pub mod server;
pub mod snapshot;
pub mod sotw;

pub use cache::{Cache, Nack, Push};
pub use snapshot::{Snapshot, Source};

/// Why a snapshot could not be built. The last good snapshot keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    #[error("config: {0}")]
    Config(String),
    #[error("certificate file {0}: {1}")]
    Certificate(String, String),
    #[error("bootstrap shape: {0}")]
    Shape(String),
    #[error("two {0} resources named {1:?}")]
    Duplicate(&'static str, String),
    #[error(transparent)]
    Proto(#[from] proto::ProtoError),
}
