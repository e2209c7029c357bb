//! waypoint-ops: what the istioctl-like verbs do (`waypoint apply|delete|list|status`):
//! build the waypoint Gateway, bind namespaces, summarise status from the API or from files.
//!
//! The decisions are pure functions over one [`object::Inventory`] (`gateway`, `binding`,
//! `attach`, `summary`, `render`, `cert`); `cluster` holds the thin async calls to the API
//! server (the real kube client) and the waypoint's admin, `offline` the file loader.

pub mod attach;
pub mod binding;
pub mod cert;
pub mod cluster;
pub mod error;
pub mod gateway;
pub mod names;
pub mod object;
pub mod offline;
pub mod render;
pub mod summary;

pub use error::Error;
pub use gateway::WaypointSpec;
pub use names::TrafficType;
pub use summary::Selection;
