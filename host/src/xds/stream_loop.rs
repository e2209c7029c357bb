//! The ADS stream loop shared by state-of-the-world and delta streams: the per-stream session
//! (node, snapshot watch, nonces) and the loop reading requests and pushing new snapshots.

use std::future::Future;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};
use tracing::{debug, warn};

use super::cache::{Cache, Nack};
use super::proto::PUSH_ORDER;
use super::snapshot::Snapshot;

/// What every ADS stream holds, whatever its protocol.
pub struct Session<Resp> {
    pub cache: Arc<Cache>,
    pub tx: mpsc::Sender<Result<Resp, Status>>,
    /// The waypoint the stream's node serves ("" before the first request).
    pub node: String,
    /// The node's snapshots (None before the first request).
    pub snap: Option<watch::Receiver<Arc<Snapshot>>>,
    /// The last nonce sent on this stream.
    pub nonce: u64,
}

impl<Resp> Session<Resp> {
    pub fn new(cache: Arc<Cache>, tx: mpsc::Sender<Result<Resp, Status>>) -> Self {
        Session {
            cache,
            tx,
            node: String::new(),
            snap: None,
            nonce: 0,
        }
    }

    /// On the first request, name the node and watch its snapshots. False ends the stream:
    /// the node has no snapshot, and Envoy is told so (UNAVAILABLE).
    pub async fn subscribe(&mut self, node: Option<&Node>) -> bool {
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

    /// Record a NACK from Envoy of the response `nonce` for `type_url`.
    pub fn record_nack(&self, type_url: &str, nonce: &str, message: &str) {
        self.cache.record_nack(Nack {
            node: self.node.clone(),
            type_url: type_url.to_string(),
            nonce: nonce.to_string(),
            message: message.to_string(),
        });
    }
}

/// One ADS protocol (state-of-the-world or delta) as the stream loop drives it.
pub trait Protocol: Send {
    type Request: Send + 'static;
    type Response: Send + 'static;
    /// The stream's name in the log line that ends it.
    const KIND: &'static str;

    fn session(&mut self) -> &mut Session<Self::Response>;
    /// Whether Envoy has asked for `type_url` on this stream.
    fn serves(&self, type_url: &str) -> bool;
    /// Handle one request; false ends the stream.
    fn on_request(&mut self, r: Self::Request) -> impl Future<Output = bool> + Send;
    /// Push what changed for `type_url` (even nothing when `force`d); false when the stream
    /// is gone.
    fn respond(&mut self, type_url: &str, force: bool) -> impl Future<Output = bool> + Send;
}

/// Serve one stream until either side ends it: requests as they come, and on every new
/// snapshot the types Envoy asked for, in push order.
pub async fn run<P: Protocol>(mut p: P, mut inbound: Streaming<P::Request>) {
    loop {
        tokio::select! {
            req = inbound.message() => match req {
                Ok(Some(r)) => {
                    if !p.on_request(r).await {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(node = %p.session().node, "xds: {} ended: {e}", P::KIND);
                    break;
                }
            },
            ok = changed(&mut p.session().snap) => {
                if !ok {
                    break;
                }
                for t in PUSH_ORDER {
                    if p.serves(t) && !p.respond(t, false).await {
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
