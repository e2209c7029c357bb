//! Compiles the Gateway API conformance manifests and checks decisions from the Go tests.
//! Skips when ../shared/fixtures is absent.
