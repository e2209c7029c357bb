//! A fake Kubernetes API server on loopback speaking the real protocol to the real kube client:
//! LIST/WATCH (resourceVersions, bookmarks, `410 Gone`, dropped streams, missing CRDs) and the
//! writes a CLI makes (GET, POST, PATCH, DELETE; `write.rs`).
//!
//! Objects are written through the test API ([`FakeApiServer::apply`], [`FakeApiServer::delete`])
//! or over HTTP: each write bumps one global resourceVersion and is sent to the open watches
//! (and kept in a history, so a watch resumed from an older resourceVersion replays what it
//! missed, unless the history was compacted: then the watch gets `410 Gone`, as from etcd
//! compaction).

mod serve;
mod write;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// One change, as a watch event.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub rv: u64,
    /// `group/version/plural` (`v1/services` for core kinds).
    pub collection: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub object: Value,
}

/// How dropped watches end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// The response ends cleanly (as the API server does at `timeoutSeconds`).
    End,
    /// The connection is cut mid-response (no final chunk).
    Abort,
}

/// How a watch from a compacted resourceVersion is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// HTTP 200 and an `ERROR` event with code 410 (what the API server's watch cache does).
    Event,
    /// An HTTP `410 Gone` response.
    Http,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub rv: u64,
    pub uid: u64,
    /// Objects per collection, by `(namespace, name)`.
    pub objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
    pub history: Vec<Change>,
    /// Watches from a resourceVersion below this get 410.
    pub compacted: u64,
    pub gone: Option<Gone>,
    /// Collections answered with 404 (their CRD "not installed").
    pub missing: HashSet<String>,
    /// Collections answered with 403 (the client's RBAC does not allow them).
    pub forbidden: HashSet<String>,
    /// `(verb, collection)` of every request: verb `list`, `watch`, `get`, `create`, `patch`
    /// or `delete`.
    pub requests: Vec<(&'static str, String)>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub events: broadcast::Sender<Change>,
    /// Bumped to end every open watch; the value says how.
    pub drops: watch::Sender<(u64, Drop)>,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_every: std::time::Duration,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store `obj` as `collection` `(ns, name)` under a new resourceVersion (a new object gets
    /// a uid and a creation time, an update keeps them) and publish the change.
    pub fn put(
        &self,
        st: &mut State,
        collection: &str,
        ns: &str,
        name: &str,
        mut obj: Value,
    ) -> Value {
        st.rv += 1;
        let rv = st.rv;
        let old = st
            .objects
            .get(collection)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned();
        let meta = &mut obj["metadata"];
        meta["resourceVersion"] = json!(rv.to_string());
        match &old {
            Some(o) => {
                meta["uid"] = o["metadata"]["uid"].clone();
                meta["creationTimestamp"] = o["metadata"]["creationTimestamp"].clone();
            }
            None => {
                st.uid += 1;
                let meta = &mut obj["metadata"];
                meta["uid"] = json!(format!("uid-{}", st.uid));
                if meta.get("creationTimestamp").is_none() {
                    meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
                }
            }
        }
        st.objects
            .entry(collection.to_string())
            .or_default()
            .insert((ns.to_string(), name.to_string()), obj.clone());
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.publish(st, collection.to_string(), kind, obj.clone());
        obj
    }

    /// Remove `collection` `(ns, name)` and publish its deletion; returns its last state.
    pub fn remove(&self, st: &mut State, collection: &str, ns: &str, name: &str) -> Option<Value> {
        let mut obj = st
            .objects
            .get_mut(collection)
            .and_then(|m| m.remove(&(ns.to_string(), name.to_string())))?;
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        self.publish(st, collection.to_string(), "DELETED", obj.clone());
        Some(obj)
    }

    fn publish(&self, st: &mut State, collection: String, kind: &'static str, object: Value) {
        let change = Change {
            rv: st.rv,
            collection,
            kind,
            object,
        };
        st.history.push(change.clone());
        // Sent under the lock: a watch subscribing under it sees every later change once.
        let _ = self.events.send(change);
    }
}

/// The plural of a kind, as the API server names collections.
pub fn plural(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    let vowel_y = k.ends_with("ay") || k.ends_with("ey") || k.ends_with("oy");
    if let Some(stem) = k.strip_suffix('y').filter(|_| !vowel_y) {
        format!("{stem}ies")
    } else if k.ends_with('s') {
        format!("{k}es")
    } else {
        format!("{k}s")
    }
}

/// The collection of `apiVersion` + `kind`.
pub fn collection(api_version: &str, kind: &str) -> String {
    format!("{api_version}/{}", plural(kind))
}

/// The fake API server; dropping it stops it.
#[derive(Debug)]
pub struct FakeApiServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::ops::Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    /// Start on 127.0.0.1 (bookmarks every 200 ms).
    pub async fn start() -> FakeApiServer {
        Self::start_with(std::time::Duration::from_millis(200)).await
    }

    pub async fn start_with(bookmark_every: std::time::Duration) -> FakeApiServer {
        let (events, _) = broadcast::channel(4096);
        let (drops, _) = watch::channel((0, Drop::End));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 1,
                ..Default::default()
            }),
            events,
            drops,
            bookmark_every,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake API server");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(serve::serve(listener, shared.clone()));
        FakeApiServer { addr, shared, task }
    }

    /// The server URL (plain HTTP).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Write a kubeconfig pointing at this server into `dir`; returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: default}}\ncurrent-context: fake\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Create or update an object (`apiVersion`, `kind`, `metadata.name`, and
    /// `metadata.namespace` for namespaced kinds). Returns its new resourceVersion.
    pub fn apply(&self, obj: Value) -> u64 {
        let av = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        assert!(
            !av.is_empty() && !kind.is_empty(),
            "apiVersion and kind: {obj}"
        );
        let coll = collection(&av, &kind);
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .expect("metadata.name")
            .to_string();
        let mut st = self.shared.lock();
        self.shared.put(&mut st, &coll, &ns, &name, obj);
        st.rv
    }

    /// Apply every document of a YAML text (as `kubectl apply -f`).
    pub fn apply_yaml(&self, text: &str) {
        use serde::Deserialize;
        for doc in serde_yaml::Deserializer::from_str(text) {
            let v = Value::deserialize(doc).expect("test YAML");
            if !v.is_null() {
                self.apply(v);
            }
        }
    }

    /// Delete an object; returns whether it existed.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let coll = collection(api_version, kind);
        let mut st = self.shared.lock();
        self.shared
            .remove(&mut st, &coll, namespace, name)
            .is_some()
    }

    /// The stored object, as a GET would return it.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let coll = collection(api_version, kind);
        self.shared
            .lock()
            .objects
            .get(&coll)
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .cloned()
    }

    /// Replace an existing object's `status` (as its controller does through the status
    /// subresource); returns whether it existed.
    pub fn set_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> bool {
        let coll = collection(api_version, kind);
        let mut st = self.shared.lock();
        let Some(mut obj) = st
            .objects
            .get(&coll)
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .cloned()
        else {
            return false;
        };
        obj["status"] = status;
        self.shared.put(&mut st, &coll, namespace, name, obj);
        true
    }

    /// Answer 404 for `apiVersion`/`kind` (its CRD not installed) or serve it again.
    pub fn set_installed(&self, api_version: &str, kind: &str, installed: bool) {
        let coll = collection(api_version, kind);
        let mut st = self.shared.lock();
        if installed {
            st.missing.remove(&coll);
        } else {
            st.missing.insert(coll);
        }
    }

    /// Answer 403 Forbidden for every request on `apiVersion`/`kind` (as RBAC does), or not.
    pub fn set_forbidden(&self, api_version: &str, kind: &str, forbidden: bool) {
        let coll = collection(api_version, kind);
        let mut st = self.shared.lock();
        if forbidden {
            st.forbidden.insert(coll);
        } else {
            st.forbidden.remove(&coll);
        }
    }

    /// End every open watch.
    pub fn drop_watches(&self, how: Drop) {
        self.shared.drops.send_modify(|(n, d)| {
            *n += 1;
            *d = how;
        });
    }

    /// Compact the history: a watch resumed from any resourceVersion up to now is refused
    /// with 410 (`how`) and the client must list again. Open watches are dropped.
    pub fn compact(&self, how: Gone) {
        {
            let mut st = self.shared.lock();
            // As etcd compaction at a new revision: every resourceVersion a client holds is
            // older; a list after it returns one that can be watched from.
            st.rv += 1;
            st.compacted = st.rv;
            st.history.clear();
            st.gone = Some(how);
        }
        self.drop_watches(Drop::End);
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// How many `verb` (`list` or `watch`) requests `apiVersion`/`kind` got.
    pub fn requests(&self, verb: &str, api_version: &str, kind: &str) -> usize {
        let coll = collection(api_version, kind);
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|(v, c)| *v == verb && *c == coll)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_match_the_api_server() {
        for (k, p) in [
            ("Service", "services"),
            ("EndpointSlice", "endpointslices"),
            ("GatewayClass", "gatewayclasses"),
            ("ServiceEntry", "serviceentries"),
            ("AuthorizationPolicy", "authorizationpolicies"),
            ("HTTPRoute", "httproutes"),
            ("Namespace", "namespaces"),
            ("Gateway", "gateways"),
        ] {
            assert_eq!(plural(k), p);
        }
    }
}
