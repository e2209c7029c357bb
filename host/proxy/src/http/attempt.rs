//! One upstream attempt: the endpoints in the order attempts use them (least request, outlier
//! ejection), and one exchange bounded by the attempt's timeout or the stream idle timeout.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::http::random::rng;
use crate::policy::plan::ForwardPlan;
use crate::upstream::{ProxyBody, Target, UpstreamError, Wire};
use crate::Shared;

/// The endpoints attempts go to, in order (the plan's, reordered only by least request and
/// outlier ejection), and with outlier detection every endpoint of the plan (the peers an
/// ejection is judged against).
pub fn targets<'p>(shared: &Shared, fp: &'p ForwardPlan) -> (Cow<'p, [Target]>, Vec<SocketAddr>) {
    if !fp.least_request && fp.outlier.is_none() {
        return (Cow::Borrowed(&fp.targets), Vec::new());
    }
    let mut targets = fp.targets.clone();
    let peers: Vec<SocketAddr> = match fp.outlier {
        Some(_) => targets.iter().map(|t| t.addr).collect(),
        None => Vec::new(),
    };
    if fp.least_request {
        shared.active.pick(&mut targets, &mut rng());
    }
    if fp.outlier.is_some() {
        // Ejected endpoints go last; the attempt loop walks the list in order.
        shared.outliers.order(&mut targets);
    }
    (Cow::Owned(targets), peers)
}

/// How one attempt failed.
#[derive(Debug)]
pub enum AttemptError {
    /// The stream idle timeout fired before the response headers (never retried).
    StreamIdle,
    Upstream(UpstreamError),
}

/// Send `req` to `target`, bounded by `idle` (the stream idle timeout) when set, else by
/// `limit` (route and per-try timeouts). The caller counts the attempt in flight (least
/// request) for as long as it lasts, its retry backoff included.
pub async fn send(
    shared: &Shared,
    fp: &ForwardPlan,
    target: &Target,
    wire: Wire,
    req: Request<ProxyBody>,
    limit: Option<Duration>,
    idle: Option<Duration>,
) -> Result<Response<Incoming>, AttemptError> {
    let send = shared
        .upstreams
        .send_in(fp.pool.as_ref(), target, wire, req);
    match (idle, limit) {
        (Some(i), _) => match tokio::time::timeout(i, send).await {
            Ok(r) => r.map_err(AttemptError::Upstream),
            Err(_) => Err(AttemptError::StreamIdle),
        },
        (None, Some(l)) => match tokio::time::timeout(l, send).await {
            Ok(r) => r.map_err(AttemptError::Upstream),
            Err(_) => Err(AttemptError::Upstream(UpstreamError::Timeout(
                target.to_string(),
            ))),
        },
        (None, None) => send.await.map_err(AttemptError::Upstream),
    }
}
