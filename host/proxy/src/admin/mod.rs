//! Admin endpoints: readiness (`/healthz/ready`, :15021), Prometheus stats
//! (`/stats/prometheus`, :15020) and `/config_dump` (admin, loopback :15000), one router each.

pub mod bounded;
pub mod server;

pub use server::{serve, Admin, Role};
