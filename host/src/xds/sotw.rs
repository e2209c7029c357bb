//! State-of-the-world ADS streams: per type the subscribed names, the version sent and its
//! nonce; ACKs and NACKs tracked, a NACKed version never re-sent, changes pushed in order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};
use tracing::{debug, warn};

use super::cache::{Cache, Push};
use super::proto;
use super::stream_loop::{self, Protocol, Session};

type Tx = mpsc::Sender<Result<DiscoveryResponse, Status>>;

/// Listeners and clusters are wildcard types: no names (or `*`) means "all of them".
pub fn is_wildcard_type(type_url: &str) -> bool {
    type_url == proto::LISTENER || type_url == proto::CLUSTER
}

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    sent_version: Option<String>,
    nonce: String,
    /// A version Envoy rejected: never sent again.
    rejected: Option<String>,
}

struct Stream {
    s: Session<DiscoveryResponse>,
    types: BTreeMap<String, TypeState>,
}

/// Serve one SotW stream until either side ends it.
pub async fn run(cache: Arc<Cache>, inbound: Streaming<DiscoveryRequest>, tx: Tx) {
    let s = Stream {
        s: Session::new(cache, tx),
        types: BTreeMap::new(),
    };
    stream_loop::run(s, inbound).await;
}

impl Protocol for Stream {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const KIND: &'static str = "stream";

    fn session(&mut self) -> &mut Session<DiscoveryResponse> {
        &mut self.s
    }

    fn serves(&self, type_url: &str) -> bool {
        self.types.contains_key(type_url)
    }

    /// Handle one request; false ends the stream.
    async fn on_request(&mut self, r: DiscoveryRequest) -> bool {
        if !self.s.subscribe(r.node.as_ref()).await {
            return false;
        }
        if r.type_url.is_empty() {
            return true;
        }
        let first = !self.types.contains_key(&r.type_url);
        let st = self.types.entry(r.type_url.clone()).or_default();
        if !r.response_nonce.is_empty() && r.response_nonce != st.nonce {
            debug!(node = %self.s.node, type_url = %r.type_url, "xds: stale nonce ignored");
            return true;
        }
        if let Some(err) = &r.error_detail {
            warn!(
                node = %self.s.node,
                resource_type = proto::short(&r.type_url),
                rejected_version = ?st.sent_version,
                kept_version = %r.version_info,
                "xds: NACK from Envoy: {}", err.message
            );
            st.rejected = st.sent_version.clone();
            self.s
                .record_nack(&r.type_url, &r.response_nonce, &err.message);
        } else if !r.response_nonce.is_empty() {
            debug!(node = %self.s.node, type_url = %r.type_url, version = %r.version_info, "xds: ACK");
        }
        let wildcard = is_wildcard_type(&r.type_url)
            && (r.resource_names.is_empty() || r.resource_names.iter().any(|n| n == "*"));
        let names: BTreeSet<String> = r.resource_names.into_iter().filter(|n| n != "*").collect();
        let names_changed = wildcard != st.wildcard || names != st.names;
        st.wildcard = wildcard;
        st.names = names;
        if first || names_changed {
            return self.respond(&r.type_url, true).await;
        }
        true
    }

    /// Send the current resources of `type_url` if they differ from what was sent (or when
    /// `force`d by a new subscription). False when the stream is gone.
    async fn respond(&mut self, type_url: &str, force: bool) -> bool {
        let Some(snap) = self.s.snap.as_ref().map(|rx| Arc::clone(&rx.borrow())) else {
            return true;
        };
        let Some(st) = self.types.get_mut(type_url) else {
            return true;
        };
        let version = snap.version(type_url).to_string();
        if !force
            && (st.sent_version.as_deref() == Some(&version)
                || st.rejected.as_deref() == Some(&version))
        {
            return true;
        }
        let chosen: Vec<_> = snap
            .of(type_url)
            .filter(|r| st.wildcard || st.names.contains(&r.name))
            .collect();
        self.s.nonce += 1;
        st.nonce = self.s.nonce.to_string();
        st.sent_version = Some(version.clone());
        let push = Push {
            node: self.s.node.clone(),
            type_url: type_url.to_string(),
            delta: false,
            version: version.clone(),
            nonce: st.nonce.clone(),
            names: chosen.iter().map(|r| r.name.clone()).collect(),
            removed: Vec::new(),
            bytes: chosen.iter().map(|r| r.body.len()).sum(),
        };
        let resp = DiscoveryResponse {
            version_info: version,
            resources: chosen
                .iter()
                .map(|r| Any {
                    type_url: type_url.to_string(),
                    value: r.body.as_ref().clone(),
                })
                .collect(),
            type_url: type_url.to_string(),
            nonce: st.nonce.clone(),
            ..Default::default()
        };
        debug!(node = %self.s.node, resource_type = proto::short(type_url), count = push.names.len(), "xds: push");
        self.s.cache.record_push(push);
        self.s.tx.send(Ok(resp)).await.is_ok()
    }
}
