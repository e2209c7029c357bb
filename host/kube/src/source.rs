//! The watchers: one kube-rs `watcher` per kind filling [`Stores`], and a deliverer that hands
//! the whole resource set to a callback once every kind is listed, debounced.
//!
//! Errors follow client-go's reflector: a failed list or watch (a `410 Gone` included, as an
//! `ERROR` event or an HTTP status) backs off (`retry.rs`: 0.5 s doubling to 10 s) and
//! relists (a dropped watch resumes from its resourceVersion); the store
//! keeps its contents meanwhile, so the last good config keeps serving. A kind whose CRD is
//! not installed (404 on list) is empty, logged once, and retried slowly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, watcher, Event};
use kube::Client;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use waypoint_core::resource::RawResource;

use crate::convert::to_raw;
use crate::kinds::{kinds, served_as, Kind};
use crate::store::{Key, Stores};

/// How the source watches and delivers.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// Namespace of the mesh config ConfigMap `istio` (Istio's root namespace).
    pub mesh_namespace: String,
    /// Quiet time after a change before the set is delivered (changes in a burst, such as
    /// a relist or `kubectl apply -f dir`, become one reload).
    pub debounce: Duration,
    /// Longest a delivery waits under a continuous stream of changes.
    pub max_delay: Duration,
    /// How often a kind whose CRD is not installed is listed again.
    pub missing_crd_retry: Duration,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            mesh_namespace: "istio-system".to_string(),
            debounce: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            missing_crd_retry: Duration::from_secs(30),
        }
    }
}

/// The running watchers; dropping it stops them.
#[derive(Debug)]
pub struct KubeSource {
    stores: Arc<Stores>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl KubeSource {
    /// Watch every kind of [`kinds`] and call `on_change` with the whole resource set after
    /// every kind's first full list and after each later change (debounced). `on_change` runs
    /// on tokio's blocking pool (it compiles the config); deliveries never overlap.
    pub fn start<F>(client: Client, opts: KubeOptions, on_change: F) -> KubeSource
    where
        F: Fn(Vec<RawResource>) + Send + Sync + 'static,
    {
        let ks = kinds(&opts.mesh_namespace);
        let stores = Arc::new(Stores::new(ks.iter().map(Kind::label)));
        let mut tasks: Vec<JoinHandle<()>> = ks
            .into_iter()
            .enumerate()
            .map(|(i, kind)| {
                tokio::spawn(watch_kind(
                    client.clone(),
                    i,
                    kind,
                    stores.clone(),
                    opts.missing_crd_retry,
                ))
            })
            .collect();
        tasks.push(tokio::spawn(deliver(
            stores.clone(),
            opts,
            Arc::new(on_change),
        )));
        KubeSource { stores, tasks }
    }

    /// Whether every kind has had its first full list (the first delivery follows).
    pub fn synced(&self) -> bool {
        self.stores.synced()
    }

    /// Kinds still waiting for their first full list.
    pub fn pending(&self) -> Vec<String> {
        self.stores.pending()
    }
}

/// Wait for changes, let a burst settle, and deliver the whole set once every kind is synced.
async fn deliver<F>(stores: Arc<Stores>, opts: KubeOptions, on_change: Arc<F>)
where
    F: Fn(Vec<RawResource>) + Send + Sync + 'static,
{
    loop {
        stores.changed.notified().await;
        let start = Instant::now();
        loop {
            let left = opts.max_delay.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            let quiet = opts.debounce.min(left);
            if tokio::time::timeout(quiet, stores.changed.notified())
                .await
                .is_err()
            {
                break;
            }
        }
        if !stores.synced() {
            debug!(pending = ?stores.pending(), "waiting for the first full list of every kind");
            continue;
        }
        let set = stores.snapshot();
        info!(
            resources = set.len(),
            "Kubernetes config changed; reloading"
        );
        let f = on_change.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || f(set)).await {
            warn!(error = %e, "config reload failed to run");
        }
    }
}

/// The API status code of a failed list or watch. kube's client reads a watch response's
/// body whatever its HTTP status, so a watch refused with 404 or 410 arrives as
/// `WatchFailed(Api)`; an `ERROR` event arrives as `WatchError`.
fn api_code(e: &watcher::Error) -> Option<u16> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s.code),
        watcher::Error::WatchError(s) => Some(s.code),
        _ => None,
    }
}

/// Whether a watcher error says the kind is not served (its CRD is not installed).
fn not_found(e: &watcher::Error) -> bool {
    api_code(e) == Some(404)
}

/// Whether a watch was refused with HTTP `410 Gone` (its resourceVersion is too old). An
/// `ERROR` event with 410 already makes kube's watcher relist.
fn gone_http(e: &watcher::Error) -> bool {
    matches!(e,
        watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) if s.code == 410)
}

/// Whether a watch's response could not be read as events (kube reads the body of any HTTP
/// status as a watch stream; a real API server's 404 is plain text).
fn unreadable_watch(e: &watcher::Error) -> bool {
    matches!(
        e,
        watcher::Error::WatchStartFailed(kube::Error::SerdeError(_))
            | watcher::Error::WatchFailed(kube::Error::SerdeError(_))
    )
}

fn key_of(obj: &DynamicObject) -> Key {
    (
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    )
}

/// One kind's watcher loop: list, watch, relist on error; fills store `i`.
async fn watch_kind(
    client: Client,
    i: usize,
    kind: Kind,
    stores: Arc<Stores>,
    missing_retry: Duration,
) {
    let label = kind.label();
    // The preferred version first, then the others the kind may be served at.
    let apis: Vec<_> = std::iter::once(kind.api.clone())
        .chain(
            kind.fallback_versions
                .iter()
                .map(|v| served_as(kind.api.clone(), v)),
        )
        .collect();
    let mut config = watcher::Config::default();
    if let Some(fs) = &kind.field_selector {
        config = config.fields(fs);
    }
    let start = |v: usize| {
        let api: Api<DynamicObject> = match &kind.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &apis[v]),
            None => Api::all_with(client.clone(), &apis[v]),
        };
        watcher(api, config.clone()).boxed()
    };
    let mut version = 0;
    let mut stream = start(version);
    let mut backoff = crate::retry::Backoff::default();
    let mut listing: Option<BTreeMap<Key, RawResource>> = None;
    let mut missing = false;
    // An object the core cannot read keeps its last good version (as a rejected file does).
    let convert = |api: &kube::discovery::ApiResource, obj: &DynamicObject| match to_raw(api, obj) {
        Ok(r) => Some(r),
        Err(e) => {
            warn!(kind = %label, resource = %e.name, namespace = %e.namespace, "object rejected: {}", e.message);
            None
        }
    };
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(ev) => ev,
            Err(e) if kind.optional && not_found(&e) && version + 1 < apis.len() => {
                // Not served at this version: try the next one at once.
                version += 1;
                debug!(kind = %label, version = %apis[version].version, "not served; trying another version");
                listing = None;
                stream = start(version);
                continue;
            }
            Err(e) if kind.optional && not_found(&e) => {
                if !missing {
                    warn!(kind = %label, retry = ?missing_retry, "kind not served by the API server (CRD not installed?): treated as empty");
                    missing = true;
                }
                listing = None;
                stores.replace(i, BTreeMap::new());
                tokio::time::sleep(missing_retry).await;
                // Start over with a list (from the preferred version): once the CRD is back,
                // resuming the old watch would miss the objects that exist already.
                version = 0;
                stream = start(version);
                continue;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                warn!(kind = %label, error = %e, ?delay, "watch failed; the last good config keeps serving; retrying after a backoff");
                listing = None;
                tokio::time::sleep(delay).await;
                if gone_http(&e) {
                    // kube's watcher retries a watch refused with HTTP 410 from the same
                    // resourceVersion forever; client-go's reflector relists. A new watcher
                    // starts with a list.
                    stream = start(version);
                } else if unreadable_watch(&e) {
                    // A watch answered with something that is no event stream: a real API
                    // server answers a resource it does not serve (CRD deleted, version no
                    // longer served) with a `text/plain` 404, which kube reports as a decode
                    // error. Relist from the preferred version: the list reports the 404
                    // properly and the not-served / other-version paths take over.
                    version = 0;
                    stream = start(version);
                }
                continue;
            }
        };
        // Only progress resets the backoff: kube's watcher emits `Init` before every list
        // attempt, so resetting on it would retry a failing list (403, API server down) every
        // half second forever.
        if !matches!(event, Event::Init) {
            backoff.reset();
        }
        if missing {
            info!(kind = %label, "kind now served; watching");
            missing = false;
        }
        match event {
            Event::Init => listing = Some(BTreeMap::new()),
            Event::InitApply(obj) => {
                let key = key_of(&obj);
                let r = convert(&apis[version], &obj).or_else(|| stores.get(i, &key));
                if let (Some(l), Some(r)) = (listing.as_mut(), r) {
                    l.insert(key, r);
                }
            }
            Event::InitDone => {
                let objects = listing.take().unwrap_or_default();
                debug!(kind = %label, objects = objects.len(), "listed");
                stores.replace(i, objects);
            }
            Event::Apply(obj) => {
                if let Some(r) = convert(&apis[version], &obj) {
                    stores.apply(i, r);
                }
            }
            Event::Delete(obj) => stores.delete(i, &key_of(&obj)),
        }
    }
}
