//! Envoy's `request_timeout` for the host: the whole request (headers and body) must be
//! received, or the response begun, within the timeout; otherwise 408 `request timeout`.
//! The request body is wrapped so its end disarms the timer.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::Notify;

/// Set once the request body has been received to its end.
#[derive(Debug, Default)]
pub struct Received {
    done: AtomicBool,
    notify: Notify,
}

impl Received {
    fn mark(&self) {
        if !self.done.swap(true, Ordering::Release) {
            self.notify.notify_waiters();
        }
    }

    fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Resolves when the timeout fires: `limit` passed before the request was received.
    /// Never resolves once the request is complete.
    pub async fn expired(&self, limit: Duration) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_done() {
            return std::future::pending().await;
        }
        tokio::select! {
            _ = tokio::time::sleep(limit) => {
                if self.is_done() {
                    std::future::pending::<()>().await;
                }
            }
            _ = notified => std::future::pending().await,
        }
    }
}

/// The request body as the proxy reads it: hyper's body, reporting its end to [`Received`].
#[derive(Debug)]
pub struct InBody {
    inner: Incoming,
    received: Option<Arc<Received>>,
}

impl InBody {
    /// Wrap `inner`; `received` (when a request timeout is on) learns when it ends.
    pub fn new(inner: Incoming, received: Option<Arc<Received>>) -> InBody {
        let body = InBody { inner, received };
        if body.inner.is_end_stream() {
            body.mark();
        }
        body
    }

    fn mark(&self) {
        if let Some(r) = &self.received {
            r.mark();
        }
    }
}

impl Body for InBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.mark();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_when_the_request_is_not_received_in_time() {
        let r = Received::default();
        let start = tokio::time::Instant::now();
        r.expired(Duration::from_secs(3)).await;
        assert_eq!(start.elapsed().as_secs(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn never_fires_once_the_request_is_received() {
        let r = Arc::new(Received::default());
        let r2 = r.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            r2.mark();
        });
        tokio::select! {
            _ = r.expired(Duration::from_secs(3)) => panic!("fired after the request was received"),
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
        let done = Received::default();
        done.mark();
        tokio::select! {
            _ = done.expired(Duration::from_secs(1)) => panic!("fired for a received request"),
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
