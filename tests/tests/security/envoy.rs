//! Security rows: envoy (see main.rs).
