//! Connection and stream timeouts of every listener, with defaults taken from Envoy / Istio:
//! one set of flags for `waypoint run` and for the Envoy config `bootstrap` / `xds` generate.

use std::time::Duration;

/// Go-style duration flag value (`10s`, `500ms`, `5m`, `1h`; `0` = off where stated).
fn duration(s: &str) -> Result<Duration, String> {
    waypoint_core::istio::parse_duration(s)
}

/// Every timeout a listener or relay enforces. A value of zero disables the timeout where
/// the field says so (as Envoy's `0s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct Timeouts {
    /// TLS handshake of an accepted HBONE connection. Envoy sets none by default
    /// (`transport_socket_connect_timeout`); a bounded handshake closes silent sockets.
    #[arg(long = "tls-handshake-timeout", value_name = "DURATION", value_parser = duration, default_value = "10s")]
    pub tls_handshake: Duration,
    /// From the end of the TLS handshake until the peer's HTTP/2 preface and first request
    /// headers (HBONE).
    #[arg(long = "preface-timeout", value_name = "DURATION", value_parser = duration, default_value = "10s")]
    pub preface: Duration,
    /// Whole request head (request line and headers) inside a tunnel or on an admin port
    /// (Envoy `request_headers_timeout`; hyper's HTTP/1 header-read default is 30 s). On the
    /// admin ports it also bounds the wait for the next request of a kept-alive connection.
    #[arg(long = "request-headers-timeout", value_name = "DURATION", value_parser = duration, default_value = "10s")]
    pub request_headers: Duration,
    /// A stream (request or CONNECT tunnel) with no byte either way for this long is reset
    /// (Envoy `stream_idle_timeout`, default 5 min).
    #[arg(long = "stream-idle-timeout", value_name = "DURATION", value_parser = duration, default_value = "5m")]
    pub stream_idle: Duration,
    /// An HBONE connection with no open stream for this long gets a GOAWAY and is closed
    /// (Envoy `common_http_protocol_options.idle_timeout`, default 1 h).
    #[arg(long = "connection-idle-timeout", value_name = "DURATION", value_parser = duration, default_value = "1h")]
    pub connection_idle: Duration,
    /// Whole request received, headers and body (Envoy `request_timeout`); `0` = off, Envoy's
    /// default.
    #[arg(long = "request-timeout", value_name = "DURATION", value_parser = duration, default_value = "0s")]
    pub request: Duration,
    /// An opaque TCP relay with no byte either way for this long is closed (Envoy tcp_proxy
    /// `idle_timeout`, default 1 h).
    #[arg(long = "tcp-idle-timeout", value_name = "DURATION", value_parser = duration, default_value = "1h")]
    pub tcp_idle: Duration,
    /// Pooled upstream connections unused for this long are closed (Envoy cluster
    /// `common_http_protocol_options.idle_timeout`, default 1 h).
    #[arg(long = "upstream-idle-timeout", value_name = "DURATION", value_parser = duration, default_value = "1h")]
    pub upstream_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tls_handshake: Duration::from_secs(10),
            preface: Duration::from_secs(10),
            request_headers: Duration::from_secs(10),
            stream_idle: Duration::from_secs(300),
            connection_idle: Duration::from_secs(3600),
            request: Duration::ZERO,
            tcp_idle: Duration::from_secs(3600),
            upstream_idle: Duration::from_secs(3600),
        }
    }
}

impl Timeouts {
    /// `Some(d)` unless `d` is zero (off).
    pub fn enabled(d: Duration) -> Option<Duration> {
        (!d.is_zero()).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        t: Timeouts,
    }

    #[test]
    fn flag_defaults_equal_default() {
        let cli = Cli::try_parse_from(["x"]).expect("parse");
        assert_eq!(cli.t, Timeouts::default());
    }

    #[test]
    fn flags_take_go_durations() {
        let cli = Cli::try_parse_from([
            "x",
            "--stream-idle-timeout",
            "1500ms",
            "--request-timeout",
            "1m",
        ])
        .expect("parse");
        assert_eq!(cli.t.stream_idle, Duration::from_millis(1500));
        assert_eq!(cli.t.request, Duration::from_secs(60));
        assert!(Cli::try_parse_from(["x", "--tcp-idle-timeout", "soon"]).is_err());
        assert_eq!(Timeouts::enabled(Duration::ZERO), None);
    }
}
