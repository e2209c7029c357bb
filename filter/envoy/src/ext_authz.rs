//! CUSTOM AuthorizationPolicy on Envoy: the module asks no provider itself; it enables the
//! native `ext_authz` filter of that provider (after the module) through dynamic metadata.

use crate::config::FilterConfig;
use crate::stream::StreamHandle;

/// Dynamic-metadata namespace the provider's `ext_authz` filter keys its
/// `filter_enabled_metadata` on (the bootstrap generator writes the matching filters).
pub const METADATA_NS: &str = "waypoint.ext_authz";
/// Key under [`METADATA_NS`] holding the provider name.
pub const METADATA_KEY: &str = "provider";
/// Key under [`METADATA_NS`] set to `deny` when DENY/ALLOW denied the request but the provider
/// is asked first: the RBAC guard after the provider filters denies what the provider allows.
pub const THEN_KEY: &str = "then";

/// Enable `provider`'s ext_authz filter for this request. Written whatever the
/// `filter_config.metadata` level, since enforcement depends on it. Returns false when Envoy
/// has no filter for that provider (not in `ext_authz_filters`): the caller must deny, as
/// Envoy does for an unusable CUSTOM provider.
pub fn enable<S: StreamHandle>(s: &mut S, config: &FilterConfig, provider: &str) -> bool {
    if !config.ext_authz_filters.iter().any(|p| p == provider) {
        return false;
    }
    s.set_metadata(METADATA_NS, METADATA_KEY, provider);
    true
}

/// Ask `provider` first, then deny: enables its filter and marks the request for the RBAC
/// guard. False (the caller denies at once) when Envoy has no filter for the provider.
pub fn deny_after_provider<S: StreamHandle>(
    s: &mut S,
    config: &FilterConfig,
    provider: &str,
) -> bool {
    if !config.ext_authz_filters.iter().any(|p| p == provider) {
        return false;
    }
    s.set_metadata_batch(METADATA_NS, &[(METADATA_KEY, provider), (THEN_KEY, "deny")]);
    true
}
