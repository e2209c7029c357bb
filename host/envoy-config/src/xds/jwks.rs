//! JWKS inlined into the pushed config, as istiod does (pilot's `model/jwks_resolver.go`):
//! `waypoint xds` fetches every `jwksUri` itself and pushes a new snapshot when keys change.
//!
//! The fetching, caching and keep-the-last-good-set-on-failure is the host runtime's
//! [`JwksCache`]; this module records which sets the built snapshots use and when a refresh
//! changed one of them. A set never fetched is served as the unverifiable JWKS (istiod's fake
//! JWKS): Envoy accepts the config and every token of that issuer fails.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::info;
use waypoint_core::authn::{JwksSource, JwtRule};
use waypoint_proxy::jwks::JwksCache;

use super::cache::Cache;

/// Istio's `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL` default.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(20 * 60);

/// The key sets `waypoint xds` inlines, shared by the snapshot builder and the refresher.
#[derive(Debug)]
pub struct JwksInliner {
    cache: JwksCache,
    /// Remote source (jwksUri, or the discovery URI) → a rule that names it (timeout).
    wanted: Mutex<BTreeMap<String, JwtRule>>,
    /// Remote source → the text the last built snapshot inlined (`None`: unverifiable).
    inlined: Mutex<BTreeMap<String, Option<Arc<str>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn remote_uri(rule: &JwtRule) -> Option<&str> {
    match &rule.jwks {
        JwksSource::Remote(u) | JwksSource::Discovery(u) => Some(u),
        JwksSource::Inline(_) => None,
    }
}

impl JwksInliner {
    /// An inliner whose sets are fetched again every `refresh`.
    pub fn new(refresh: Duration) -> Arc<JwksInliner> {
        Arc::new(JwksInliner {
            cache: JwksCache::new(refresh),
            wanted: Mutex::default(),
            inlined: Mutex::default(),
        })
    }

    /// The JWKS text to inline for `rule` (`None`: not fetched yet, serve the unverifiable
    /// set). Called while a snapshot is built: remembers the rule for the refresher.
    pub fn text_for(&self, rule: &JwtRule) -> Option<Arc<str>> {
        let uri = remote_uri(rule)?;
        lock(&self.wanted)
            .entry(uri.to_string())
            .or_insert_with(|| rule.clone());
        let text = self.cache.remote_text(uri);
        lock(&self.inlined).insert(uri.to_string(), text.clone());
        text
    }

    /// Fetch every wanted set that is due (the cache keeps the last good set when a fetch
    /// fails). True when a set differs from what the last snapshot inlined.
    pub async fn refresh(&self) -> bool {
        let rules: Vec<JwtRule> = lock(&self.wanted).values().cloned().collect();
        if rules.is_empty() {
            return false;
        }
        let refs: Vec<&JwtRule> = rules.iter().collect();
        self.cache.prepare(&refs).await;
        let inlined = lock(&self.inlined);
        rules.iter().filter_map(remote_uri).any(|uri| {
            let now = self.cache.remote_text(uri);
            inlined.get(uri).is_none_or(|old| *old != now)
        })
    }
}

/// Refresh the sets every `tick` (a set is fetched only when due) and rebuild every node's
/// snapshot when one changed, so Envoy gets the new keys in the next push.
pub fn spawn_refresher(
    inliner: Arc<JwksInliner>,
    cache: Arc<Cache>,
    tick: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if inliner.refresh().await {
                info!("xds: JWKS changed; rebuilding snapshots");
                let cache = Arc::clone(&cache);
                // Building snapshots reads files and encodes protobuf: off the async workers.
                let _ = tokio::task::spawn_blocking(move || cache.rebuild()).await;
            }
        }
    })
}
