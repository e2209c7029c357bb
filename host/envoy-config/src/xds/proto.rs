//! JSON → protobuf for Envoy resources: prost-reflect dynamic messages over the descriptor set
//! shipped with envoy-types (copied by build.rs), so the bootstrap JSON stays the one source.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage};

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
/// ECDS: the module's HTTP filter config, updated in place without touching its listener.
pub const EXTENSION: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

/// Every type we serve, in the order a change is pushed: secrets and clusters (with their
/// endpoints) before the filter configs, listeners and routes that use them (Envoy's
/// make-before-break).
pub const PUSH_ORDER: [&str; 6] = [SECRET, CLUSTER, ENDPOINT, EXTENSION, LISTENER, ROUTE];

/// Short name of a type URL for logs (`Listener`, `Cluster`, ...).
pub fn short(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

/// Why a resource could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("the envoy-types descriptor set is unreadable: {0}")]
    Pool(String),
    #[error("unknown resource type {0}")]
    UnknownType(String),
    #[error("{kind} {name:?}: {message}")]
    Invalid {
        kind: String,
        name: String,
        message: String,
    },
}

/// The descriptor pool of every Envoy API type (decoded once).
pub fn pool() -> Result<&'static DescriptorPool, ProtoError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| ProtoError::Pool(e.clone()))
}

/// Encode one resource (proto3 JSON, `@type` inside `Any` resolved from the pool) to bytes.
/// Unknown fields are errors: a typo must fail here, not be dropped silently.
pub fn encode(type_url: &str, name: &str, json: &serde_json::Value) -> Result<Vec<u8>, ProtoError> {
    let pool = pool()?;
    let full = type_url.rsplit('/').next().unwrap_or(type_url);
    let desc = pool
        .get_message_by_name(full)
        .ok_or_else(|| ProtoError::UnknownType(type_url.to_string()))?;
    let invalid = |message: String| ProtoError::Invalid {
        kind: short(type_url).to_string(),
        name: name.to_string(),
        message,
    };
    let text = serde_json::to_string(json).map_err(|e| invalid(e.to_string()))?;
    let mut de = serde_json::Deserializer::from_str(&text);
    let msg = DynamicMessage::deserialize_with_options(
        desc,
        &mut de,
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .map_err(|e| invalid(e.to_string()))?;
    Ok(msg.encode_to_vec())
}

/// Decode bytes of `type_url` back to JSON (tests and debugging).
pub fn decode(type_url: &str, bytes: &[u8]) -> Result<serde_json::Value, ProtoError> {
    let pool = pool()?;
    let full = type_url.rsplit('/').next().unwrap_or(type_url);
    let desc = pool
        .get_message_by_name(full)
        .ok_or_else(|| ProtoError::UnknownType(type_url.to_string()))?;
    let invalid = |message: String| ProtoError::Invalid {
        kind: short(type_url).to_string(),
        name: String::new(),
        message,
    };
    let msg = DynamicMessage::decode(desc, bytes).map_err(|e| invalid(e.to_string()))?;
    serde_json::to_value(&msg).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_type_we_use_is_in_the_pool() {
        let pool = pool().expect("pool");
        for t in PUSH_ORDER {
            assert!(
                pool.get_message_by_name(t.trim_start_matches("type.googleapis.com/"))
                    .is_some(),
                "{t}"
            );
        }
        for t in [
            "envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport",
            "envoy.extensions.bootstrap.internal_listener.v3.InternalListener",
            "envoy.extensions.filters.http.set_filter_state.v3.Config",
            "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "envoy.config.trace.v3.OpenTelemetryConfig",
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "google.protobuf.Struct",
        ] {
            assert!(pool.get_message_by_name(t).is_some(), "{t}");
        }
    }

    #[test]
    fn encodes_nested_any_and_round_trips() {
        let c = json!({
            "name": "c", "type": "EDS", "connect_timeout": "10s",
            "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}},
            "transport_socket": {"name": "t", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}},
        });
        let bytes = encode(CLUSTER, "c", &c).expect("encode");
        let back = decode(CLUSTER, &bytes).expect("decode");
        assert_eq!(back["name"], "c");
        assert_eq!(back["connectTimeout"], "10s");
        assert_eq!(
            back["transportSocket"]["typedConfig"]["@type"],
            "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
        );
    }

    #[test]
    fn errors_name_the_resource() {
        for (json, want) in [
            (json!({"name": "x", "bogus_field": 1}), "bogus_field"),
            (json!({"name": "x", "type": "NOPE"}), "NOPE"),
            (
                json!({"name": "x", "transport_socket": {"name": "t", "typed_config": {"@type": "type.googleapis.com/no.such.Type"}}}),
                "no.such.Type",
            ),
        ] {
            let err = encode(CLUSTER, "x", &json).expect_err("must fail");
            let s = err.to_string();
            assert!(s.contains("Cluster \"x\"") && s.contains(want), "{s}");
        }
    }
}
