//! State-of-the-world ADS streams: per type the subscribed names, the version sent and its
//! nonce; ACKs and NACKs tracked, a NACKed version never re-sent, changes pushed in order.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use tracing::{debug, warn};

use super::cache::{Nack, Push};
use super::proto;
use super::stream_loop::{Protocol, Stream};

/// Listeners and clusters are wildcard types: no names (or `*`) means "all of them".
pub fn is_wildcard_type(type_url: &str) -> bool {
    type_url == proto::LISTENER || type_url == proto::CLUSTER
}

/// What a SotW stream tracks of one type.
#[derive(Debug, Default)]
pub struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    sent_version: Option<String>,
    nonce: String,
    /// A version Envoy rejected: never sent again.
    rejected: Option<String>,
}

impl Protocol for Stream<TypeState, DiscoveryResponse> {
    type Request = DiscoveryRequest;
    const KIND: &'static str = "stream";

    async fn on_request(&mut self, r: DiscoveryRequest, first: bool) -> bool {
        let st = self.types.entry(r.type_url.clone()).or_default();
        if !r.response_nonce.is_empty() && r.response_nonce != st.nonce {
            debug!(node = %self.node, type_url = %r.type_url, "xds: stale nonce ignored");
            return true;
        }
        if let Some(err) = &r.error_detail {
            warn!(
                node = %self.node,
                resource_type = proto::short(&r.type_url),
                rejected_version = ?st.sent_version,
                kept_version = %r.version_info,
                "xds: NACK from Envoy: {}", err.message
            );
            st.rejected = st.sent_version.clone();
            self.cache.record_nack(Nack {
                node: self.node.clone(),
                type_url: r.type_url.clone(),
                nonce: r.response_nonce.clone(),
                message: err.message.clone(),
            });
        } else if !r.response_nonce.is_empty() {
            debug!(node = %self.node, type_url = %r.type_url, version = %r.version_info, "xds: ACK");
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
        let (Some(snap), Some(st)) = (self.snapshot(), self.types.get_mut(type_url)) else {
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
        self.nonce += 1;
        st.nonce = self.nonce.to_string();
        st.sent_version = Some(version.clone());
        let push = Push {
            node: self.node.clone(),
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
        debug!(node = %self.node, resource_type = proto::short(type_url), count = push.names.len(), "xds: push");
        self.cache.record_push(push);
        self.tx.send(Ok(resp)).await.is_ok()
    }
}
