//! Visible skip lines for tests whose inputs are optional (`../shared/fixtures`).
//! Written straight to stderr so the test harness's output capture does not hide them.

use std::io::Write;

/// Print `SKIP: <reason>` where `cargo test` shows it even for a passing test.
pub fn skip(reason: &str) {
    let _ = writeln!(std::io::stderr().lock(), "SKIP: {reason}");
}
