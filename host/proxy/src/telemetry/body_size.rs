//! `istio_response_bytes` and `istio_request_duration_milliseconds` as the response streams:
//! a body wrapper observes the bytes it passed (headers included) and the time once, at its end.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use prometheus_client::metrics::histogram::Histogram;

use crate::telemetry::request_metrics::ResponseHandles;
use crate::upstream::ProxyBody;

/// Approximate wire size of a header block (name, `: `, value, CRLF per field), as Envoy's
/// `byteSize()` counts it for `request.total_size` / `response.total_size`.
pub fn header_bytes(headers: &HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum()
}

/// `resp` with its size (headers included) and the request's duration since `start`
/// observed when its body ends.
pub fn counted(
    resp: http::Response<ProxyBody>,
    handles: ResponseHandles,
    start: Instant,
) -> http::Response<ProxyBody> {
    let head = header_bytes(resp.headers()) + 16;
    resp.map(|b| {
        CountedBody::new(b, head, handles.response_bytes)
            .timed(handles.duration, start)
            .boxed()
    })
}

/// A body that observes its total size into a histogram once.
pub struct CountedBody<B> {
    inner: B,
    bytes: u64,
    histogram: Option<Histogram>,
    /// The duration histogram and the request's start, observed with the size.
    timer: Option<(Histogram, Instant)>,
}

impl<B> CountedBody<B> {
    /// Count `inner`, starting from `header_bytes` (the response head's size).
    pub fn new(inner: B, header_bytes: u64, histogram: Histogram) -> Self {
        CountedBody {
            inner,
            bytes: header_bytes,
            histogram: Some(histogram),
            timer: None,
        }
    }

    /// Also observe the milliseconds since `start` into `duration` when the body ends.
    pub fn timed(mut self, duration: Histogram, start: Instant) -> Self {
        self.timer = Some((duration, start));
        self
    }

    fn finish(&mut self) {
        if let Some(h) = self.histogram.take() {
            h.observe(self.bytes as f64);
        }
        if let Some((h, start)) = self.timer.take() {
            h.observe(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
}

impl<B> Drop for CountedBody<B> {
    fn drop(&mut self) {
        // A body dropped early (client gone) still reports what it sent.
        self.finish();
    }
}

impl<B> Body for CountedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.finish(),
            Poll::Pending => {}
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
    use http_body_util::Full;

    fn sum(h: &Histogram) -> String {
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register("b", "b", h.clone());
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out.lines()
            .find(|l| l.starts_with("b_sum"))
            .unwrap_or_default()
            .to_string()
    }

    #[tokio::test]
    async fn counts_body_and_headers_once() {
        let h = Histogram::new([10.0, 100.0].into_iter());
        let body = CountedBody::new(Full::new(Bytes::from_static(b"hello world")), 20, h.clone());
        let collected = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(collected.ok().as_deref(), Some(&b"hello world"[..]));
        assert_eq!(sum(&h), "b_sum 31.0");
        let mut headers = HeaderMap::new();
        headers.insert("content-type", http::HeaderValue::from_static("text/plain"));
        assert_eq!(header_bytes(&headers), 12 + 10 + 4);
    }

    #[test]
    fn a_dropped_body_reports_what_it_had() {
        let h = Histogram::new([10.0].into_iter());
        drop(CountedBody::new(
            Full::new(Bytes::from_static(b"xyz")),
            5,
            h.clone(),
        ));
        assert_eq!(sum(&h), "b_sum 5.0");
    }
}
