//! Security rows: config (see main.rs).
