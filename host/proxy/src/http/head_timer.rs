//! The request-head timer of the HTTP/1 servers inside tunnels: Envoy's
//! `request_headers_timeout` counts from the first byte of a request head, hyper's from the
//! moment it starts waiting for one, which would close every idle keep-alive connection after
//! it. [`HeadTimer`] hands hyper a sleep that waits for the connection's idle timeout until a
//! byte arrives, then for the header timeout from that byte; the waits of one connection share
//! one tokio timer, so a request costs no timer registration.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
/// uses its timer only for the header read timeout: it asks for a sleep each time it starts
/// waiting for a request head, and drops it once the head is parsed. Every such sleep reuses
/// the connection's one tokio timer (kept in `slot`), which is re-armed only when a wait needs
/// an earlier deadline than the one it holds, or when it fired before the wait's deadline: a
/// keep-alive request whose head arrives in one read touches no timer wheel at all.
#[derive(Debug, Clone)]
pub struct HeadTimer {
    reads: Arc<AtomicU64>,
    /// From the first byte of a head until the whole head (`None`: off).
    head: Option<Duration>,
    /// Waiting for a request with no byte of it yet (`None`: off).
    idle: Option<Duration>,
    /// The connection's timer while no wait holds it (created by the first wait polled).
    slot: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
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
                slot: Arc::default(),
            },
            reads,
        )
    }

    /// Whether hyper needs the timer at all.
    pub fn enabled(&self) -> bool {
        self.head.is_some() || self.idle.is_some()
    }

    fn start(&self) -> HeadSleep {
        let sleep = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        HeadSleep {
            timer: self.clone(),
            start_reads: self.reads.load(Ordering::Relaxed),
            armed: false,
            deadline: tokio::time::Instant::now() + self.idle.unwrap_or(FOREVER),
            sleep,
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

/// One wait for a request head: the idle timeout until the connection reads a byte, then the
/// head timeout from that byte.
struct HeadSleep {
    timer: HeadTimer,
    start_reads: u64,
    armed: bool,
    /// When this wait ends.
    deadline: tokio::time::Instant,
    /// The connection's timer while this wait holds it; it may be set for an earlier
    /// deadline (a former wait's), never a later one while polled.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // hyper polls this after every read that leaves the head incomplete, so the first byte
        // is seen on the poll that follows it.
        if !this.armed && this.timer.reads.load(Ordering::Relaxed) != this.start_reads {
            this.armed = true;
            let head = tokio::time::Instant::now() + this.timer.head.unwrap_or(FOREVER);
            this.deadline = this.deadline.min(head);
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        loop {
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // Fired for an earlier wait's deadline: re-arm for this one.
                Poll::Ready(()) if tokio::time::Instant::now() < deadline => {
                    sleep.as_mut().reset(deadline)
                }
                Poll::Ready(()) => return Poll::Ready(()),
            }
        }
    }
}

impl Drop for HeadSleep {
    fn drop(&mut self) {
        if let Some(sleep) = self.sleep.take() {
            *self.timer.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(sleep);
        }
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

    #[tokio::test(start_paused = true)]
    async fn a_later_wait_is_not_cut_short_by_an_earlier_head_deadline() {
        let (timer, reads) =
            HeadTimer::new(Some(Duration::from_secs(10)), Some(Duration::from_secs(60)));
        // First wait: a byte arrives, the head timeout (10 s) is armed, then the head is
        // complete and hyper drops the wait.
        let mut first = timer.sleep_until(Instant::now());
        tokio::select! {
            _ = first.as_mut() => panic!("fired while idle"),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        reads.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            _ = first.as_mut() => panic!("fired before the head timeout"),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        drop(first);
        // The next wait reuses the connection's timer, still set 9 s ahead: it must wait the
        // whole idle timeout.
        let start = tokio::time::Instant::now();
        timer.sleep_until(Instant::now()).await;
        assert_eq!(start.elapsed().as_secs(), 60);
        // And a wait after that one fired gets its full idle timeout again.
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
