//! Security rows: listeners (see main.rs).
