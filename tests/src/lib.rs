//! waypoint-tests: harness for end-to-end tests and the shared scenario suite.
pub mod envoy_harness;
