//! Delta ADS streams: per type what Envoy holds (name → version); only changed resources and
//! removals are sent; a NACKed response rolls that back and its versions are never re-sent.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as PbResource,
};
use envoy_types::pb::google::protobuf::Any;
use tracing::{debug, warn};

use super::cache::{Nack, Push};
use super::proto;
use super::sotw::is_wildcard_type;
use super::stream_loop::{Protocol, Stream};

/// One resource of an unacknowledged response: name, the version Envoy held before (None:
/// none) and the version sent (None: removed).
type Sent = (String, Option<String>, Option<String>);

/// What a delta stream tracks of one type.
#[derive(Debug, Default)]
pub struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    /// What Envoy holds: name → version.
    known: BTreeMap<String, String>,
    /// (name, version) pairs Envoy rejected: never sent again ("" = a rejected removal).
    rejected: BTreeSet<(String, String)>,
    /// Unacknowledged responses: nonce → (name → version Envoy held before, sent version).
    pending: BTreeMap<String, Vec<Sent>>,
}

impl Protocol for Stream<TypeState, DeltaDiscoveryResponse> {
    type Request = DeltaDiscoveryRequest;
    const KIND: &'static str = "delta stream";

    async fn on_request(&mut self, r: DeltaDiscoveryRequest, first: bool) -> bool {
        let st = self.types.entry(r.type_url.clone()).or_default();
        if first {
            st.known = r.initial_resource_versions.clone().into_iter().collect();
            // An empty first subscription of a wildcard type is the legacy wildcard.
            st.wildcard = is_wildcard_type(&r.type_url) && r.resource_names_subscribe.is_empty();
        }
        if !r.response_nonce.is_empty() {
            match st.pending.remove(&r.response_nonce) {
                Some(sent) => {
                    if let Some(err) = &r.error_detail {
                        warn!(
                            node = %self.node,
                            resource_type = proto::short(&r.type_url),
                            resources = ?sent.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>(),
                            "xds: NACK from Envoy: {}", err.message
                        );
                        // Envoy keeps what it had: roll back, and never re-send these versions.
                        for (name, before, version) in sent {
                            // A rejected removal is remembered as the empty version.
                            st.rejected
                                .insert((name.clone(), version.unwrap_or_default()));
                            match before {
                                Some(b) => st.known.insert(name, b),
                                None => st.known.remove(&name),
                            };
                        }
                        self.cache.record_nack(Nack {
                            node: self.node.clone(),
                            type_url: r.type_url.clone(),
                            nonce: r.response_nonce.clone(),
                            message: err.message.clone(),
                        });
                    } else {
                        debug!(node = %self.node, type_url = %r.type_url, "xds: delta ACK");
                    }
                }
                None => debug!(node = %self.node, type_url = %r.type_url, "xds: unknown nonce"),
            }
        }
        for n in &r.resource_names_subscribe {
            if n == "*" {
                st.wildcard = true;
            } else {
                st.names.insert(n.clone());
            }
        }
        for n in &r.resource_names_unsubscribe {
            if n == "*" {
                st.wildcard = false;
            } else {
                st.names.remove(n);
                st.known.remove(n);
            }
        }
        let subscribed = !r.resource_names_subscribe.is_empty();
        if first || subscribed {
            return self.respond(&r.type_url, first).await;
        }
        true
    }

    /// Send what changed for `type_url` since what Envoy holds; `force` sends even an empty
    /// response (the first answer for a type ends Envoy's initial fetch).
    async fn respond(&mut self, type_url: &str, force: bool) -> bool {
        let (Some(snap), Some(st)) = (self.snapshot(), self.types.get_mut(type_url)) else {
            return true;
        };
        let mut changed = Vec::new();
        for r in snap.of(type_url) {
            if !(st.wildcard || st.names.contains(&r.name)) {
                continue;
            }
            st.rejected.remove(&(r.name.clone(), String::new()));
            if st.known.get(&r.name) == Some(&r.version)
                || st.rejected.contains(&(r.name.clone(), r.version.clone()))
            {
                continue;
            }
            changed.push(r.clone());
        }
        let removed: Vec<String> = st
            .known
            .keys()
            .filter(|n| {
                snap.get(type_url, n).is_none()
                    && !st.rejected.contains(&((*n).clone(), String::new()))
            })
            .cloned()
            .collect();
        if changed.is_empty() && removed.is_empty() && !force {
            return true;
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let mut undo = Vec::new();
        for r in &changed {
            let before = st.known.insert(r.name.clone(), r.version.clone());
            undo.push((r.name.clone(), before, Some(r.version.clone())));
        }
        for n in &removed {
            let before = st.known.remove(n);
            undo.push((n.clone(), before, None));
        }
        st.pending.insert(nonce.clone(), undo);
        let version = snap.version(type_url).to_string();
        self.cache.record_push(Push {
            node: self.node.clone(),
            type_url: type_url.to_string(),
            delta: true,
            version: version.clone(),
            nonce: nonce.clone(),
            names: changed.iter().map(|r| r.name.clone()).collect(),
            removed: removed.clone(),
            bytes: changed.iter().map(|r| r.body.len()).sum(),
        });
        debug!(node = %self.node, resource_type = proto::short(type_url), changed = changed.len(), removed = removed.len(), "xds: delta push");
        let resp = DeltaDiscoveryResponse {
            system_version_info: version,
            resources: changed
                .into_iter()
                .map(|r| PbResource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(Any {
                        type_url: type_url.to_string(),
                        value: r.body.as_ref().clone(),
                    }),
                    ..Default::default()
                })
                .collect(),
            type_url: type_url.to_string(),
            removed_resources: removed,
            nonce,
            ..Default::default()
        };
        self.tx.send(Ok(resp)).await.is_ok()
    }
}
