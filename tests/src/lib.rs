//! waypoint-tests: harness for end-to-end tests and the shared scenario suite.
//! Each module holds one piece of the harness; tests live in `tests/tests/`.

pub mod bazel;
pub mod echo;
pub mod envoy_generated;
pub mod envoy_harness;
pub mod envoy_security;
pub mod ext_authz_server;
pub mod fake_ca;
pub mod global_ratelimit;
pub mod hbone_client;
pub mod hbone_server;
pub mod jwt;
pub mod jwt_cases;
pub mod kube;
pub mod manifests;
pub mod netns;
pub mod otlp_collector;
pub mod pki;
pub mod probes;
pub mod ratelimit;
pub mod rls_server;
pub mod rule_ratelimit;
pub mod scenario;
pub mod scenario_hbone;
pub mod security;
pub mod sidecar;
pub mod telemetry;
pub mod traffic_policy;
pub mod waypoint;
pub mod ztunnel;
