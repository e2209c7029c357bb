//! Opaque TCP relay between a tunnel and its upstream, closed after an idle period with no
//! byte either way (Envoy tcp_proxy `idle_timeout`).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Relay buffer per direction.
const RELAY_BUFFER: usize = 64 * 1024;

/// Copy both ways until both sides close, an error, or `idle` passes with no byte moved
/// (`None`: no idle limit). Returns (bytes from `a`, bytes from `b`).
pub async fn relay<A, B>(a: &mut A, b: &mut B, idle: Option<Duration>) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let Some(idle) = idle else {
        return tokio::io::copy_bidirectional_with_sizes(a, b, RELAY_BUFFER, RELAY_BUFFER).await;
    };
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Activity {
        inner: a,
        start,
        last: last.clone(),
    };
    let mut b = Activity {
        inner: b,
        start,
        last: last.clone(),
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, RELAY_BUFFER, RELAY_BUFFER);
    tokio::pin!(copy);
    loop {
        let seen = start + Duration::from_millis(last.load(Ordering::Relaxed));
        tokio::select! {
            r = &mut copy => return r,
            _ = tokio::time::sleep_until(seen + idle) => {
                let now = start + Duration::from_millis(last.load(Ordering::Relaxed));
                if now == seen {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "tcp relay idle timeout"));
                }
            }
        }
    }
}

/// A stream that records when bytes last moved through it.
struct Activity<'a, S> {
    inner: &'a mut S,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<S> Activity<'_, S> {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.fetch_max(ms, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut *self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut *self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn idle_relay_closes_and_active_relay_does_not() {
        let (mut client, mut a) = tokio::io::duplex(1024);
        let (mut b, mut server) = tokio::io::duplex(1024);
        let relay =
            tokio::spawn(
                async move { relay(&mut a, &mut b, Some(Duration::from_millis(300))).await },
            );
        // Bytes every 100 ms keep it open past the idle period.
        for _ in 0..6 {
            client.write_all(b"x").await.expect("write");
            let mut one = [0u8; 1];
            server.read_exact(&mut one).await.expect("read");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!relay.is_finished());
        // Then silence: closed with a timeout error.
        let r = tokio::time::timeout(Duration::from_secs(5), relay)
            .await
            .expect("relay ends")
            .expect("join");
        assert_eq!(r.expect_err("idle").kind(), io::ErrorKind::TimedOut);
    }
}
