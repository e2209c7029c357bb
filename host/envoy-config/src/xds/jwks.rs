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
    /// Remote source → the text last inlined or reported changed (`None`: unverifiable).
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
    /// fails). True when a set differs from what was inlined (or reported) before: reported
    /// once per change, so the caller rebuilds once.
    pub async fn refresh(&self) -> bool {
        let rules: Vec<JwtRule> = lock(&self.wanted).values().cloned().collect();
        if rules.is_empty() {
            return false;
        }
        let refs: Vec<&JwtRule> = rules.iter().collect();
        self.cache.prepare(&refs).await;
        let mut inlined = lock(&self.inlined);
        let mut changed = false;
        for uri in rules.iter().filter_map(remote_uri) {
            let now = self.cache.remote_text(uri);
            if inlined.get(uri) != Some(&now) {
                inlined.insert(uri.to_string(), now);
                changed = true;
            }
        }
        changed
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use waypoint_core::resource::parse_manifests;
    use waypoint_core::{BuildOptions, Snapshot};

    /// A JWKS with one P-256 key (RFC 7517's example point) under `kid`.
    fn set(kid: &str) -> String {
        format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"{kid}","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}}]}}"#
        )
    }

    /// A loopback server answering every request with the current body.
    async fn serve(body: Arc<Mutex<String>>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let text = lock(&body).clone();
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        addr
    }

    fn rule(uri: &str) -> JwtRule {
        let text = format!(
            "{}apiVersion: security.istio.io/v1\nkind: RequestAuthentication\n\
             metadata: {{name: jwt, namespace: default}}\nspec:\n  targetRefs: [{{kind: Gateway, \
             group: gateway.networking.k8s.io, name: waypoint}}]\n  jwtRules:\n  - issuer: i\n    \
             jwksUri: {uri}\n",
            waypoint_core::waypoint_gateway_yaml!("default")
        );
        let (rs, errs) = parse_manifests(&text, "t.yaml", "default", 0);
        assert!(errs.is_empty(), "{errs:?}");
        let (snap, d) = Snapshot::build(&rs, &BuildOptions::default());
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        snap.jwt_rules()
            .first()
            .map(|r| (*r).clone())
            .expect("one rule")
    }

    #[tokio::test]
    async fn changes_are_reported_once_and_a_bad_fetch_keeps_the_last_set() {
        let body = Arc::new(Mutex::new(set("a")));
        let addr = serve(Arc::clone(&body)).await;
        let r = rule(&format!("http://{addr}/jwks.json"));
        let inliner = JwksInliner::new(Duration::from_millis(200));
        assert_eq!(inliner.text_for(&r), None, "nothing fetched yet");
        assert!(inliner.refresh().await, "first fetch");
        assert_eq!(inliner.text_for(&r).as_deref(), Some(set("a").as_str()));
        assert!(!inliner.refresh().await, "not due, nothing new");

        *lock(&body) = set("b");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(inliner.refresh().await, "rotated set");
        assert!(!inliner.refresh().await, "reported once");
        assert_eq!(inliner.text_for(&r).as_deref(), Some(set("b").as_str()));

        *lock(&body) = "not a key set".into();
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!inliner.refresh().await, "a failed fetch changes nothing");
        assert_eq!(inliner.text_for(&r).as_deref(), Some(set("b").as_str()));
    }
}
