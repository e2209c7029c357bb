//! waypoint-tests: harness for end-to-end tests and the shared scenario suite.
//! Each module holds one piece of the harness; tests live in `tests/tests/`.

pub mod envoy_harness;
pub mod scenario;
