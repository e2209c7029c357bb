//! waypoint-sources: where the config comes from. Today manifest files and certificates
//! polled on disk (`watch`); the Kubernetes API joins here.

pub mod watch;
