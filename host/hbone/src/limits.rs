//! HTTP/2 limits for HBONE, in line with ztunnel: windows 4 MiB per stream and 16 MiB per
//! connection, 1 MiB frames, 200 concurrent inbound streams, 64 KiB header lists.

use std::time::Duration;

pub const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
pub const MAX_FRAME_SIZE: u32 = 1024 * 1024;
/// Inbound (server) limit on concurrent CONNECT streams per connection.
pub const SERVER_MAX_STREAMS: u32 = 200;
/// Outbound (client) pooled connections carry at most this many streams each.
pub const CLIENT_MAX_STREAMS: usize = 100;
pub const MAX_HEADER_LIST: u32 = 64 * 1024;
/// Outbound TLS handshake deadline (the server side uses `Timeouts::tls_handshake`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP connect deadline for outbound HBONE.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Client keepalive: PING every 10 s, give up after 20 s without a reply (ztunnel's values).
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);
/// A pooled outbound connection without streams for this long is closed.
pub const POOL_IDLE: Duration = Duration::from_secs(60);
