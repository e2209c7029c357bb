//! `proxy-config`: what a running waypoint serves (routes with weighted backends, clusters,
//! endpoints, policies, certificates) in one shape for the host and for Envoy with the module.

// The host serves the document on its loopback admin (`GET /proxy_config`, built from the
// config generation in force); for Envoy, `client::fetch` reads Envoy's admin and compiles the
// module's `filter_config` (`envoy`). `render` prints either as a table, JSON or YAML.

pub mod certs;
pub mod client;
pub mod envoy;
pub mod render;
pub mod snapshot;
pub mod view;

pub use client::{fetch, FetchError};
pub use render::{render, Format, RenderError, Section};
pub use view::{Mode, ProxyConfig};
