//! Tracing setup for the binary: `RUST_LOG`-style filter (default `info`), plain text on
//! stderr, or JSON lines when `WAYPOINT_LOG_JSON=1`.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber (idempotent: a second call is ignored).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("WAYPOINT_LOG_JSON").as_deref() == Ok("1") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
