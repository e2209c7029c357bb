//! Security rows: protocol (see main.rs).
