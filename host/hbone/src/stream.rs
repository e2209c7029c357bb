//! One HBONE tunnel as a byte stream: an HTTP/2 stream's receive and send halves adapted to
//! `AsyncRead`/`AsyncWrite`, with flow control released as data is consumed, a clean
//! half-close (empty DATA frame with END_STREAM) on shutdown, and no reset after one.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest chunk handed to h2 per write (h2 splits into frames of the peer's max frame size).
const MAX_WRITE: usize = 256 * 1024;

/// How long a stream dropped after our END_STREAM waits for the peer's END_STREAM before
/// h2 resets it (see [`H2Stream`]'s `Drop`).
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(10);

/// The bytes of one CONNECT stream.
#[derive(Debug)]
pub struct H2Stream {
    send: SendStream<Bytes>,
    /// Always `Some` until dropped (taken by the linger task).
    recv: Option<RecvStream>,
    pending: Bytes,
    recv_done: bool,
    send_done: bool,
    /// Released when the stream is dropped (the client pool counts open streams with it).
    guard: Option<StreamGuard>,
}

impl H2Stream {
    pub fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        H2Stream {
            send,
            recv: Some(recv),
            pending: Bytes::new(),
            recv_done: false,
            send_done: false,
            guard: None,
        }
    }

    /// Attach a guard dropped with the stream.
    pub fn with_guard(mut self, guard: StreamGuard) -> Self {
        self.guard = Some(guard);
        self
    }
}

/// Counts one open stream on a pooled connection; decrements on drop.
#[derive(Debug)]
pub struct StreamGuard(pub std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

fn h2_to_io(e: h2::Error) -> io::Error {
    if e.is_io() {
        match e.into_io() {
            Some(io) => io,
            None => io::Error::other("h2 I/O error"),
        }
    } else if e.reason() == Some(h2::Reason::NO_ERROR) || e.reason() == Some(h2::Reason::CANCEL) {
        io::Error::new(io::ErrorKind::ConnectionReset, e)
    } else {
        io::Error::other(e)
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.recv_done {
                return Poll::Ready(Ok(()));
            }
            let Some(recv) = self.recv.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match ready!(recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Credit the window as soon as the chunk is ours: we hold at most one frame.
                    let len = data.len();
                    if let Err(e) = recv.flow_control().release_capacity(len) {
                        return Poll::Ready(Err(h2_to_io(e)));
                    }
                    self.pending = data;
                }
                Some(Err(e)) => return Poll::Ready(Err(h2_to_io(e))),
                None => self.recv_done = true,
            }
        }
    }
}

/// Read and discard the peer's remaining data until its END_STREAM (or a reset, or
/// [`LINGER`]), crediting the windows as it goes.
async fn drain(mut recv: RecvStream) {
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(data)) = recv.data().await {
            let _ = recv.flow_control().release_capacity(data.len());
        }
    })
    .await;
}

impl Drop for H2Stream {
    /// Dropping both halves of an h2 stream that is not closed makes h2 send
    /// `RST_STREAM(CANCEL)`. After our own END_STREAM that reset is wrong: the peer may still
    /// be flushing its last bytes and its END_STREAM, and ztunnel then fails its own half-close
    /// ("while closing connection: receive: io error: broken pipe"). This happens whenever an
    /// HTTP/1 upstream closes after a `Connection: close` response. So the receive half
    /// lingers in a task until the peer ends its side. Streams dropped *without* our
    /// END_STREAM (aborts) are still reset at once.
    fn drop(&mut self) {
        if !self.send_done || self.recv_done {
            return;
        }
        let (Some(recv), Ok(rt)) = (self.recv.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        if recv.is_end_stream() {
            return;
        }
        // The pool slot stays taken while the stream is still open on the connection.
        let guard = self.guard.take();
        rt.spawn(async move {
            drain(recv).await;
            drop(guard);
        });
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.send_done {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "HBONE stream already half-closed",
            )));
        }
        let want = buf.len().min(MAX_WRITE);
        loop {
            if self.send.capacity() < want {
                self.send.reserve_capacity(want);
            }
            match ready!(self.send.poll_capacity(cx)) {
                None => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "HBONE stream closed by peer",
                    )))
                }
                Some(Err(e)) => return Poll::Ready(Err(h2_to_io(e))),
                Some(Ok(0)) => continue,
                Some(Ok(cap)) => {
                    let n = cap.min(want);
                    let chunk = Bytes::copy_from_slice(&buf[..n]);
                    self.send.send_data(chunk, false).map_err(h2_to_io)?;
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // h2 flushes queued frames from its connection task.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.send_done {
            self.send_done = true;
            // Queued data is sent before this END_STREAM; h2 never drops it.
            self.send.send_data(Bytes::new(), true).map_err(h2_to_io)?;
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The client's handles of one CONNECT stream (the peer: ztunnel in production).
    struct Peer {
        send: SendStream<Bytes>,
        recv: RecvStream,
    }

    /// One CONNECT stream over an in-memory HTTP/2 connection: the client's handles and the
    /// server's raw halves.
    async fn pair() -> (Peer, SendStream<Bytes>, RecvStream) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(async move {
            let mut conn = h2::server::handshake(b).await.expect("server handshake");
            let (req, mut respond) = conn.accept().await.expect("stream").expect("ok");
            let send = respond
                .send_response(http::Response::new(()), false)
                .expect("200");
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            (send, req.into_body())
        });
        let (client, conn) = h2::client::handshake(a).await.expect("client handshake");
        tokio::spawn(conn);
        let mut client = client.ready().await.expect("ready");
        let req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri("10.0.0.1:80")
            .body(())
            .expect("req");
        let (resp, send) = client.send_request(req, false).expect("send");
        let (server_send, server_recv) = server.await.expect("server");
        let recv = resp.await.expect("resp").into_body();
        (Peer { send, recv }, server_send, server_recv)
    }

    impl Peer {
        async fn read_all(&mut self) -> Result<Vec<u8>, h2::Error> {
            let mut out = Vec::new();
            while let Some(d) = self.recv.data().await {
                let d = d?;
                let _ = self.recv.flow_control().release_capacity(d.len());
                out.extend_from_slice(&d);
            }
            Ok(out)
        }

        /// Send the last bytes and END_STREAM a little later; a reset shows up as an error.
        async fn finish(&mut self) -> Result<(), h2::Error> {
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.send.send_data(Bytes::from_static(b"bye"), true)?;
            match tokio::time::timeout(
                Duration::from_millis(200),
                std::future::poll_fn(|cx| self.send.poll_reset(cx)),
            )
            .await
            {
                Ok(Ok(reason)) => Err(h2::Error::from(reason)),
                Ok(Err(e)) => Err(e),
                Err(_) => Ok(()),
            }
        }
    }

    #[tokio::test]
    async fn raw_h2_resets_a_half_closed_stream_on_drop() {
        // Control: the behaviour H2Stream's Drop exists to avoid.
        let (mut peer, mut send, recv) = pair().await;
        send.send_data(Bytes::from_static(b"hello"), true)
            .expect("send");
        drop((send, recv));
        assert_eq!(peer.read_all().await.expect("data"), b"hello");
        assert!(peer.finish().await.is_err(), "h2 reset expected");
    }

    #[tokio::test]
    async fn no_reset_after_our_end_stream() {
        let (mut peer, send, recv) = pair().await;
        let count = Arc::new(AtomicUsize::new(1));
        let mut s = H2Stream::new(send, recv).with_guard(StreamGuard(count.clone()));
        s.write_all(b"hello").await.expect("write");
        s.shutdown().await.expect("shutdown");
        drop(s);
        // The pool slot is held until the peer ends its side.
        assert_eq!(count.load(Ordering::Acquire), 1);
        assert_eq!(peer.read_all().await.expect("data"), b"hello");
        peer.finish().await.expect("no reset");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(count.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn dropped_without_end_stream_is_reset() {
        let (mut peer, send, recv) = pair().await;
        let mut s = H2Stream::new(send, recv);
        s.write_all(b"partial").await.expect("write");
        drop(s);
        // An abort must not look like a complete response.
        assert!(peer.read_all().await.is_err());
    }

    #[tokio::test]
    async fn closes_cleanly_when_both_sides_ended() {
        let (mut peer, send, recv) = pair().await;
        let mut s = H2Stream::new(send, recv);
        peer.send
            .send_data(Bytes::from_static(b"abc"), true)
            .expect("send");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"abc");
        s.shutdown().await.expect("shutdown");
        drop(s);
        assert!(peer.read_all().await.expect("clean").is_empty());
    }
}
