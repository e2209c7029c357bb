//! The ADS stream loop shared by state-of-the-world and delta streams: the per-stream state
//! (node, snapshot watch, nonces, per-type state) and the loop reading requests and pushing.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};
use tracing::{debug, warn};

use super::cache::Cache;
use super::proto::PUSH_ORDER;
use super::snapshot::Snapshot;

/// One ADS stream: what every stream holds, and per type Envoy asked for the protocol's
/// state `T`. Responses are of type `Resp`.
pub struct Stream<T, Resp> {
    pub cache: Arc<Cache>,
    pub tx: mpsc::Sender<Result<Resp, Status>>,
    /// The waypoint the stream's node serves ("" before the first request).
    pub node: String,
    /// The node's snapshots (None before the first request).
    pub snap: Option<watch::Receiver<Arc<Snapshot>>>,
    /// The last nonce sent on this stream.
    pub nonce: u64,
    /// Per type URL Envoy asked for: the protocol's state.
    pub types: BTreeMap<String, T>,
}

impl<T, Resp> Stream<T, Resp> {
    /// The node's current snapshot (None before the first request).
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snap.as_ref().map(|rx| Arc::clone(&rx.borrow()))
    }

    /// On the first request, name the node and watch its snapshots. False ends the stream:
    /// the node has no snapshot, and Envoy is told so (UNAVAILABLE).
    async fn subscribe(&mut self, node: Option<&Node>) -> bool {
        if self.snap.is_some() {
            return true;
        }
        self.node = self.cache.waypoint_of(node);
        match self.cache.subscribe(&self.node) {
            Ok(rx) => {
                self.snap = Some(rx);
                true
            }
            Err(e) => {
                warn!(waypoint = %self.node, "xds: no snapshot for node: {e}");
                let _ = self.tx.send(Err(Status::unavailable(e.to_string()))).await;
                false
            }
        }
    }
}

/// What the loop reads of a request, whatever its protocol.
pub trait Request: Send + 'static {
    fn node(&self) -> Option<&Node>;
    fn type_url(&self) -> &str;
}

macro_rules! request {
    ($($t:ty),+) => {$(
        impl Request for $t {
            fn node(&self) -> Option<&Node> {
                self.node.as_ref()
            }
            fn type_url(&self) -> &str {
                &self.type_url
            }
        }
    )+};
}
request!(DiscoveryRequest, DeltaDiscoveryRequest);

/// One ADS protocol (state-of-the-world or delta), implemented by its stream type.
pub trait Protocol: Send {
    type Request: Request;
    /// The stream's name in the log line that ends it.
    const KIND: &'static str;

    /// Handle a request for a type, once the node is known; `first`: the stream's first
    /// request for this type. False ends the stream.
    fn on_request(&mut self, r: Self::Request, first: bool) -> impl Future<Output = bool> + Send;
    /// Push what changed for `type_url` (even nothing when `force`d); false when the stream
    /// is gone.
    fn respond(&mut self, type_url: &str, force: bool) -> impl Future<Output = bool> + Send;
}

impl<T, Resp> Stream<T, Resp>
where
    Self: Protocol,
{
    /// Handle one request: the first names the node; one naming no type only does that.
    /// False ends the stream.
    async fn handle(&mut self, r: <Self as Protocol>::Request) -> bool {
        if !self.subscribe(r.node()).await {
            return false;
        }
        if r.type_url().is_empty() {
            return true;
        }
        let first = !self.types.contains_key(r.type_url());
        self.on_request(r, first).await
    }
}

/// Serve one stream until either side ends it: requests as they come, and on every new
/// snapshot the types Envoy asked for, in push order.
pub async fn run<T, Resp>(
    cache: Arc<Cache>,
    mut inbound: Streaming<<Stream<T, Resp> as Protocol>::Request>,
    tx: mpsc::Sender<Result<Resp, Status>>,
) where
    Stream<T, Resp>: Protocol,
{
    let mut s = Stream {
        cache,
        tx,
        node: String::new(),
        snap: None,
        nonce: 0,
        types: BTreeMap::new(),
    };
    loop {
        tokio::select! {
            req = inbound.message() => match req {
                Ok(Some(r)) => {
                    if !s.handle(r).await {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(node = %s.node, "xds: {} ended: {e}", <Stream<T, Resp>>::KIND);
                    break;
                }
            },
            ok = changed(&mut s.snap) => {
                if !ok {
                    break;
                }
                for t in PUSH_ORDER {
                    if s.types.contains_key(t) && !s.respond(t, false).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Wait for a new snapshot (pending forever before the first request names the node).
pub async fn changed(rx: &mut Option<watch::Receiver<Arc<Snapshot>>>) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::xds::resources::JsonResources;

    /// Whether `changed` finishes within 50 ms, and with what.
    async fn within(rx: &mut Option<watch::Receiver<Arc<Snapshot>>>) -> Option<bool> {
        tokio::time::timeout(Duration::from_millis(50), changed(rx))
            .await
            .ok()
    }

    #[tokio::test]
    async fn changed_waits_for_a_node_then_follows_its_snapshots() {
        let snap = || Arc::new(Snapshot::encode(&JsonResources::new()).expect("empty snapshot"));
        // Before the first request names the node: never.
        assert_eq!(within(&mut None).await, None);
        let (tx, rx) = watch::channel(snap());
        let mut rx = Some(rx);
        for (send, want) in [(false, None), (true, Some(true)), (false, None)] {
            if send {
                tx.send(snap()).expect("receiver alive");
            }
            assert_eq!(within(&mut rx).await, want, "after send: {send}");
        }
        // The cache dropped the node's channel: the stream ends.
        drop(tx);
        assert_eq!(within(&mut rx).await, Some(false));
    }
}
