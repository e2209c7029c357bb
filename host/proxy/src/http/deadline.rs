//! A response body bounded by the route timeout: Envoy's route timeout runs until the upstream
//! response is complete, so a body still streaming at the deadline is cut with an error.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::upstream::{BoxError, ProxyBody};

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
