//! waypoint-kube: config from the Kubernetes API server. kube-rs watchers for every kind the
//! waypoint reads, turned into the policy core's raw resources, handed over as one set.
//!
//! The objects become the same [`RawResource`](waypoint_core::resource::RawResource)s the file
//! loader produces (the core's manifest parser reads them), so compile, validation, atomic
//! swap and last good are shared with files (`waypoint_proxy::config::ConfigStore`).

pub mod client;
pub mod convert;
pub mod file;
pub mod kinds;
pub mod retry;
pub mod source;
pub mod store;

pub use client::{client, ClientError};
pub use kinds::{kinds, Kind};
pub use kube::Client;
pub use source::{KubeOptions, KubeSource};
