//! The request body on its way upstream: buffered when small enough so retries and mirrors can
//! replay it, else streamed once.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body;
use tracing::debug;

use crate::http::reply::{full, ProxyError};
use crate::http::request_timeout::InBody;
use crate::upstream::{BoxError, ProxyBody};

/// Largest request body buffered so it can be replayed for retries and mirrors
/// (Envoy's default per-connection buffer limit is 1 MiB).
const MAX_REPLAY_BODY: u64 = 1024 * 1024;

/// The request body, replayable when small enough.
pub enum ReqBody {
    Replayable(Bytes),
    Stream(Option<InBody>),
}

impl ReqBody {
    /// Buffer `body` when it is empty, or when a copy is wanted (`want_copy`: retries or
    /// mirrors) and its announced length fits the replay buffer.
    pub async fn prepare(body: InBody, want_copy: bool) -> Result<ReqBody, ProxyError> {
        let len = body.size_hint().exact();
        if body.is_end_stream() {
            Ok(ReqBody::Replayable(Bytes::new()))
        } else if want_copy && len.is_some_and(|l| l <= MAX_REPLAY_BODY) {
            match body.collect().await {
                Ok(b) => Ok(ReqBody::Replayable(b.to_bytes())),
                Err(e) => {
                    debug!(error = %e, "downstream body failed");
                    Err(ProxyError::DownstreamBody)
                }
            }
        } else {
            Ok(ReqBody::Stream(Some(body)))
        }
    }

    pub fn is_replayable(&self) -> bool {
        matches!(self, ReqBody::Replayable(_))
    }

    /// The body for the next attempt: a copy of a buffered one; a streamed one only once (an
    /// empty body after that, but a streamed body is never retried).
    pub fn for_attempt(&mut self) -> ProxyBody {
        match self {
            ReqBody::Replayable(b) => full(b.clone()),
            ReqBody::Stream(s) => match s.take() {
                Some(b) => b.map_err(|e| Box::new(e) as BoxError).boxed(),
                None => full(Bytes::new()),
            },
        }
    }
}
