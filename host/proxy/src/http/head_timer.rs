//! The request-head timer of the HTTP/1 servers inside tunnels: Envoy's
//! `request_headers_timeout` counts from the first byte of a request head, hyper's from the
//! moment it starts waiting for one, which would close every idle keep-alive connection after
//! it. [`HeadTimer`] hands hyper a sleep that waits for the connection's idle timeout until a
//! byte arrives, then for the header timeout from that byte.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest wait when a timeout is off (tokio's timer wheel spans about two years).
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// A stream that counts the reads that returned bytes.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    reads: Arc<AtomicU64>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, reads: Arc<AtomicU64>) -> Self {
        Counted { inner, reads }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.reads.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
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

/// hyper's header-read timer for one connection (see the module doc). hyper's HTTP/1 server
/// uses its timer only for the header read timeout.
#[derive(Debug, Clone)]
pub struct HeadTimer {
    reads: Arc<AtomicU64>,
    /// From the first byte of a head until the whole head (`None`: off).
    head: Option<Duration>,
    /// Waiting for a request with no byte of it yet (`None`: off).
    idle: Option<Duration>,
}

impl HeadTimer {
    /// The timer, and the counter to wrap the connection's stream with ([`Counted`]).
    pub fn new(head: Option<Duration>, idle: Option<Duration>) -> (HeadTimer, Arc<AtomicU64>) {
        let reads = Arc::new(AtomicU64::new(0));
        (
            HeadTimer {
                reads: reads.clone(),
                head,
                idle,
            },
            reads,
        )
    }

    /// Whether hyper needs the timer at all.
    pub fn enabled(&self) -> bool {
        self.head.is_some() || self.idle.is_some()
    }

    fn start(&self) -> HeadSleep {
        let now = tokio::time::Instant::now();
        HeadSleep {
            reads: self.reads.clone(),
            start_reads: self.reads.load(Ordering::Relaxed),
            head: self.head,
            armed: false,
            sleep: Box::pin(tokio::time::sleep_until(now + self.idle.unwrap_or(FOREVER))),
        }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(PlainSleep(Box::pin(tokio::time::sleep(duration))))
    }

    /// hyper asks for `now + header_read_timeout` when it starts waiting for a head; the
    /// deadline is ours to choose (idle until the first byte, then the head timeout).
    fn sleep_until(&self, _deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.start())
    }
}

/// Waits for the idle timeout until the connection reads a byte, then for the head timeout.
struct HeadSleep {
    reads: Arc<AtomicU64>,
    start_reads: u64,
    head: Option<Duration>,
    armed: bool,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // hyper polls this after every read that leaves the head incomplete, so the first byte
        // is seen on the poll that follows it.
        if !self.armed && self.reads.load(Ordering::Relaxed) != self.start_reads {
            self.armed = true;
            let deadline = tokio::time::Instant::now() + self.head.unwrap_or(FOREVER);
            if deadline < self.sleep.deadline() {
                self.sleep.as_mut().reset(deadline);
            }
        }
        self.sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HeadSleep {}

struct PlainSleep(Pin<Box<tokio::time::Sleep>>);

impl Future for PlainSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for PlainSleep {}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;

    #[tokio::test(start_paused = true)]
    async fn idle_until_the_first_byte_then_the_head_timeout() {
        let (timer, reads) = HeadTimer::new(
            Some(Duration::from_secs(10)),
            Some(Duration::from_secs(3600)),
        );
        let mut sleep = timer.sleep_until(Instant::now());
        let start = tokio::time::Instant::now();
        // Idle for 20 s (longer than the head timeout): still waiting.
        tokio::select! {
            _ = sleep.as_mut() => panic!("fired while idle"),
            _ = tokio::time::sleep(Duration::from_secs(20)) => {}
        }
        // A byte arrives: the head timeout runs from now.
        reads.fetch_add(1, Ordering::Relaxed);
        sleep.as_mut().await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(30) && took < Duration::from_secs(31),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_closes_a_connection_that_sends_nothing() {
        let (timer, _reads) =
            HeadTimer::new(Some(Duration::from_secs(10)), Some(Duration::from_secs(60)));
        let start = tokio::time::Instant::now();
        timer.sleep_until(Instant::now()).await;
        assert_eq!(start.elapsed().as_secs(), 60);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_read_before_the_wait_do_not_arm_it() {
        let (timer, reads) =
            HeadTimer::new(Some(Duration::from_secs(10)), Some(Duration::from_secs(60)));
        reads.fetch_add(5, Ordering::Relaxed);
        let start = tokio::time::Instant::now();
        timer.sleep_until(Instant::now()).await;
        assert_eq!(start.elapsed().as_secs(), 60);
    }

    #[tokio::test]
    async fn counted_stream_counts_reads_with_bytes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut a, b) = tokio::io::duplex(64);
        let reads = Arc::new(AtomicU64::new(0));
        let mut c = Counted::new(b, reads.clone());
        a.write_all(b"abc").await.expect("write");
        let mut buf = [0u8; 8];
        let n = c.read(&mut buf).await.expect("read");
        assert_eq!(n, 3);
        assert_eq!(reads.load(Ordering::Relaxed), 1);
        drop(a);
        assert_eq!(c.read(&mut buf).await.expect("eof"), 0);
        assert_eq!(reads.load(Ordering::Relaxed), 1);
    }
}
