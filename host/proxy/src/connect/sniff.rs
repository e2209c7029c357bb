//! Protocol detection on a fresh tunnel: HTTP/2 prior knowledge (the client preface),
//! HTTP/1.x (a request line), or opaque bytes; the peeked bytes are replayed to the reader.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    /// Not HTTP (or nothing sent before the detection timeout).
    Tcp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http",
            Protocol::Http2 => "http2",
            Protocol::Tcp => "tcp",
        }
    }
}

const METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// Classify a prefix; `None` means "need more bytes".
pub fn classify(buf: &[u8]) -> Option<Protocol> {
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return (buf.len() >= H2_PREFACE.len()).then_some(Protocol::Http2);
    }
    let mut maybe = false;
    for m in METHODS {
        let k = buf.len().min(m.len());
        if buf[..k] == m[..k] {
            if buf.len() >= m.len() {
                return Some(Protocol::Http1);
            }
            maybe = true;
        }
    }
    if maybe {
        None
    } else {
        Some(Protocol::Tcp)
    }
}

/// A stream with bytes already read put back in front.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Rewind { prefix, inner }
    }
}

/// Read until the protocol is known (or `timeout` passes, or EOF); return it and the stream
/// with the consumed bytes put back.
pub async fn detect<S: AsyncRead + Unpin>(
    mut s: S,
    timeout: Duration,
) -> io::Result<(Protocol, Rewind<S>)> {
    let mut buf = BytesMut::with_capacity(64);
    let deadline = tokio::time::Instant::now() + timeout;
    let proto = loop {
        if let Some(p) = classify(&buf) {
            if !buf.is_empty() {
                break p;
            }
        }
        if buf.len() >= H2_PREFACE.len() {
            break Protocol::Tcp;
        }
        let mut chunk = [0u8; 64];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => break Protocol::Tcp,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e),
        }
    };
    Ok((proto, Rewind::new(buf.freeze(), s)))
}

/// On a port declared HTTP only the version is detected: HTTP/2 when the first bytes are the
/// client preface, else HTTP/1 (whatever the bytes are: the HTTP/1 parser answers garbage with
/// 400). `None`: the peer closed or sent nothing decisive within `timeout` — the tunnel is
/// closed, never relayed as opaque bytes.
pub async fn detect_http_version<S: AsyncRead + Unpin>(
    mut s: S,
    timeout: Duration,
) -> io::Result<Option<(Protocol, Rewind<S>)>> {
    let mut buf = BytesMut::with_capacity(H2_PREFACE.len());
    let deadline = tokio::time::Instant::now() + timeout;
    let proto = loop {
        let n = buf.len().min(H2_PREFACE.len());
        if !buf.is_empty() && buf[..n] != H2_PREFACE[..n] {
            break Protocol::Http1;
        }
        if buf.len() >= H2_PREFACE.len() {
            break Protocol::Http2;
        }
        let mut chunk = [0u8; 64];
        let want = (H2_PREFACE.len() - buf.len()).min(chunk.len());
        match tokio::time::timeout_at(deadline, s.read(&mut chunk[..want])).await {
            Ok(Ok(0)) | Err(_) => return Ok(None),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e),
        }
    };
    Ok(Some((proto, Rewind::new(buf.freeze(), s))))
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_prefixes() {
        for (input, want) in [
            (&b"GET / HTTP/1.1\r\n"[..], Some(Protocol::Http1)),
            (b"GE", None),
            (b"POST ", Some(Protocol::Http1)),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Some(Protocol::Http2)),
            (b"PRI * HTTP/2", None),
            (b"\x16\x03\x01", Some(Protocol::Tcp)),
            (b"SSH-2.0", Some(Protocol::Tcp)),
            (b"", None),
        ] {
            assert_eq!(
                classify(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[tokio::test]
    async fn detect_replays_bytes() {
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"GET /x HTTP/1.1\r\n")
            .await
            .expect("write");
        let (p, mut r) = detect(b, Duration::from_secs(1)).await.expect("detect");
        assert_eq!(p, Protocol::Http1);
        let mut got = vec![0u8; 17];
        r.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"GET /x HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn http_port_detects_only_the_version() {
        for (input, want) in [
            (&b"GET / HTTP/1.1\r\n"[..], Some(Protocol::Http1)),
            (b"get /admin HTTP/1.1\r\n", Some(Protocol::Http1)),
            (b"\x16\x03\x01", Some(Protocol::Http1)),
            (H2_PREFACE, Some(Protocol::Http2)),
            (b"PRI * HTTP", None),
            (b"", None),
        ] {
            let (mut a, b) = tokio::io::duplex(64);
            tokio::io::AsyncWriteExt::write_all(&mut a, input)
                .await
                .expect("write");
            let got = detect_http_version(b, Duration::from_millis(50))
                .await
                .expect("detect");
            assert_eq!(
                got.map(|(p, _)| p),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[tokio::test]
    async fn silent_peer_is_tcp() {
        let (_a, b) = tokio::io::duplex(64);
        let (p, _) = detect(b, Duration::from_millis(20)).await.expect("detect");
        assert_eq!(p, Protocol::Tcp);
    }
}
