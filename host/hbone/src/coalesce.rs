//! The byte stream under an HBONE HTTP/2 connection: TLS behind a write buffer that goes to the
//! socket on flush, so that the frames of many streams leave in one TLS record and one syscall.
//!
//! h2 chains any DATA payload over 256 bytes to the transport as its own slice when the
//! transport claims vectored writes (tokio-rustls does), and flushes before it encodes the
//! next frame: every small response on a shared connection then cost its own TLS record and
//! `write`. Reporting no vectored writes makes h2 copy payloads up to 1 KiB into its 16 KiB
//! frame buffer instead; the buffer here joins h2's writes (frame headers, larger payloads)
//! until h2 flushes, which it does once it has written everything queued.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};

/// Bytes held before they go to the TLS layer without a flush (four full TLS records).
const BUFFER: usize = 64 * 1024;

/// `io` with writes buffered until flushed, reporting no vectored writes to h2.
#[derive(Debug)]
pub struct Coalesced<T>(BufWriter<T>);

impl<T: AsyncRead + AsyncWrite + Unpin> Coalesced<T> {
    pub fn new(io: T) -> Self {
        Coalesced(BufWriter::with_capacity(BUFFER, io))
    }

    pub fn get_ref(&self) -> &T {
        self.0.get_ref()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesced<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Coalesced<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        // h2 then copies small DATA payloads into its frame buffer (see the module doc).
        false
    }
}
