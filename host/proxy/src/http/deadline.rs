//! Deadlines of one request: the route timeout over all attempts (and the response body: Envoy's
//! route timeout runs until the upstream response is complete, so a body still streaming at the
//! deadline is cut with an error), the per-try timeout, and the stream idle timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::upstream::{BoxError, ProxyBody};

/// The route timeout of one request (`None`: no route timeout, Istio's default).
#[derive(Debug, Clone, Copy)]
pub struct RequestDeadline(Option<Instant>);

impl RequestDeadline {
    /// Start the route timeout `timeout` now.
    pub fn start(timeout: Option<Duration>) -> Self {
        RequestDeadline(timeout.map(|t| Instant::now() + t))
    }

    /// The bound of the next attempt: what is left of the route timeout, or the per-try
    /// timeout when shorter.
    pub fn attempt_limit(&self, per_try: Option<Duration>) -> Option<Duration> {
        let remaining = self.0.map(|d| d.saturating_duration_since(Instant::now()));
        match (remaining, per_try) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the route timeout has passed (no retry after it).
    pub fn passed(&self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }

    /// The response body, cut when the route timeout passes while it streams.
    pub fn bound(&self, body: ProxyBody) -> ProxyBody {
        match self.0 {
            Some(d) => DeadlineBody::new(body, d).boxed(),
            None => body,
        }
    }
}

/// With the whole request sent (`replayable`), waiting for the response is idle time: Envoy's
/// stream idle timeout (`idle`) bounds it when it is shorter than the attempt's `limit` (no
/// route timeout is Istio's default).
pub fn stream_idle(
    idle: Option<Duration>,
    replayable: bool,
    limit: Option<Duration>,
) -> Option<Duration> {
    idle.filter(|i| replayable && limit.is_none_or(|l| *i < l))
}

/// `inner`, failing with "upstream request timeout" once `deadline` passes.
pub struct DeadlineBody {
    inner: ProxyBody,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    pub fn new(inner: ProxyBody, deadline: Instant) -> Self {
        DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline.into())),
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::info!("route timeout while streaming the response body");
                Poll::Ready(Some(Err("upstream request timeout".into())))
            }
            Poll::Pending => Poll::Pending,
        }
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
    use http_body_util::BodyExt;
    use std::time::Duration;

    #[tokio::test]
    async fn complete_body_passes_and_slow_body_is_cut() {
        let fast = http_body_util::Full::new(Bytes::from_static(b"ok"))
            .map_err(|e| match e {})
            .boxed();
        let got = DeadlineBody::new(fast, Instant::now() + Duration::from_secs(5))
            .collect()
            .await
            .expect("body");
        assert_eq!(got.to_bytes(), Bytes::from_static(b"ok"));

        let slow = Never.boxed();
        let r = DeadlineBody::new(slow, Instant::now() + Duration::from_millis(50))
            .collect()
            .await;
        assert!(r.is_err());
    }

    /// A body that never produces a frame.
    struct Never;

    impl Body for Never {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Pending
        }
    }
}
