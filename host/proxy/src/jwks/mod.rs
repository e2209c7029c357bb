//! Key sets for the JWT stage: inline `jwks` parsed once per text, `jwksUri` (and OpenID
//! discovery) sets fetched over HTTP(S), cached, refreshed, the last good set kept on failure.

mod fetch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};
use waypoint_core::authn::{JwksSource, JwtRule};
use waypoint_jwt::{KeySet, KeySource};

/// A failed fetch is tried again after this long (or the refresh interval, if shorter).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Remote {
    keys: Option<Arc<KeySet>>,
    /// The JWKS text `keys` came from (`waypoint xds` inlines it into Envoy's config).
    text: Option<Arc<str>>,
    /// When to fetch again.
    due: Instant,
}

/// The host's JWKS cache (one per process, shared by every config generation).
#[derive(Debug)]
pub struct JwksCache {
    refresh: Duration,
    inline: Mutex<HashMap<String, Option<Arc<KeySet>>>>,
    remote: Mutex<HashMap<String, Remote>>,
    client: fetch::Client,
}

impl JwksCache {
    /// A cache that fetches a remote set again every `refresh`.
    pub fn new(refresh: Duration) -> JwksCache {
        JwksCache {
            refresh,
            inline: Mutex::default(),
            remote: Mutex::default(),
            client: fetch::client(),
        }
    }

    /// Fetch every remote set `rules` need that is missing or due (awaited: the first
    /// request after a change waits for its keys, as Envoy's listener waits for remote JWKS).
    pub async fn prepare(&self, rules: &[&JwtRule]) {
        for r in rules {
            let (key, discovery) = match &r.jwks {
                JwksSource::Inline(_) => continue,
                JwksSource::Remote(u) => (u, false),
                JwksSource::Discovery(u) => (u, true),
            };
            if !self.due(key) {
                continue;
            }
            let timeout = Duration::from_millis(r.fetch_timeout_ms);
            let got = if discovery {
                fetch::discover(&self.client, key, timeout).await
            } else {
                fetch::get(&self.client, key, timeout).await
            };
            let parsed = got.and_then(|text| {
                KeySet::parse(&text)
                    .map(|keys| (keys, Arc::from(text)))
                    .map_err(|e| e.to_string())
            });
            let now = Instant::now();
            let mut remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
            let entry = remote.entry(key.clone()).or_insert(Remote {
                keys: None,
                text: None,
                due: now,
            });
            match parsed {
                Ok((keys, text)) => {
                    info!(uri = %key, keys = keys.len(), issuer = %r.issuer, "JWKS fetched");
                    entry.keys = Some(Arc::new(keys));
                    entry.text = Some(text);
                    entry.due = now + self.refresh;
                }
                Err(e) => {
                    warn!(uri = %key, issuer = %r.issuer, error = %e, rule = %r.id,
                        "JWKS fetch failed; keeping the last good key set");
                    entry.due = now + RETRY_AFTER_FAILURE.min(self.refresh);
                }
            }
        }
    }

    /// The last good JWKS text of a remote source (`jwksUri`, or the OpenID configuration's
    /// URI for discovery); `None` until a fetch succeeded.
    pub fn remote_text(&self, uri: &str) -> Option<Arc<str>> {
        let remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
        remote.get(uri).and_then(|e| e.text.clone())
    }

    fn due(&self, key: &str) -> bool {
        let remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
        remote.get(key).is_none_or(|e| e.due <= Instant::now())
    }

    fn inline_keys(&self, rule: &JwtRule, text: &str) -> Option<Arc<KeySet>> {
        let mut inline = self.inline.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = inline.get(text) {
            return k.clone();
        }
        let parsed = match KeySet::parse(text) {
            Ok(k) => Some(Arc::new(k)),
            Err(e) => {
                // istiod then serves a key set that verifies nothing: tokens fail.
                warn!(rule = %rule.id, issuer = %rule.issuer, error = %e,
                    "inline jwks is unusable; tokens of this issuer fail");
                None
            }
        };
        inline.insert(text.to_string(), parsed.clone());
        parsed
    }
}

impl KeySource for JwksCache {
    fn keys_for(&self, rule: &JwtRule) -> Option<Arc<KeySet>> {
        match &rule.jwks {
            JwksSource::Inline(text) => self.inline_keys(rule, text),
            JwksSource::Remote(u) | JwksSource::Discovery(u) => {
                let remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
                remote.get(u).and_then(|e| e.keys.clone())
            }
        }
    }
}
