//! Tracing setup for the binary: `RUST_LOG`-style filter (default `info`), plain text on
//! stderr (colours only on a terminal), or JSON lines when `WAYPOINT_LOG_JSON=1`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The default filter. Access logs (target `access`, one line per request) are off unless
/// asked for, as in Istio, where they are off until `accessLogFile`/Telemetry turns them on:
/// formatting a line per request costs more CPU than proxying the request.
pub fn default_filter(access_log: bool) -> String {
    if access_log {
        "info".to_string()
    } else {
        "info,access=off".to_string()
    }
}

/// Install the global subscriber (idempotent: a second call is ignored). `RUST_LOG`, when
/// set, replaces the default filter entirely.
pub fn init(access_log: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter(access_log)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if std::env::var("WAYPOINT_LOG_JSON").as_deref() == Ok("1") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_logs_follow_the_flag() {
        for (flag, want_on) in [(false, false), (true, true)] {
            let f = EnvFilter::new(default_filter(flag));
            // `access=off` is a directive on the target; `info` alone lets it through.
            assert_eq!(f.to_string().contains("access=off"), !want_on, "{f}");
        }
    }
}
