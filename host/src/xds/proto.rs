//! JSON → protobuf for Envoy resources: prost-reflect dynamic messages over the descriptor set
//! shipped with envoy-types (copied by build.rs).

use std::sync::OnceLock;

use prost_reflect::DescriptorPool;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The descriptor pool of every Envoy API type (decoded once).
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).expect("envoy-types descriptor set"))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn pool_has_types() {
        for t in [
            "envoy.config.listener.v3.Listener",
            "envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "google.protobuf.Struct",
        ] {
            assert!(pool().get_message_by_name(t).is_some(), "{t}");
        }
    }
}
