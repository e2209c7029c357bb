//! The per-kind stores the watchers fill: one map of raw resources per kind, whether each
//! kind has had its first full list, and a notification on every change.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::Notify;
use waypoint_core::resource::RawResource;

/// `(namespace, name)` of an object within its kind.
pub type Key = (String, String);

#[derive(Debug, Default)]
struct KindStore {
    label: String,
    /// Whether the first full list arrived (or the kind is known to be absent).
    synced: bool,
    objects: BTreeMap<Key, RawResource>,
}

/// Every kind's objects; the watchers write, the deliverer reads the whole set.
#[derive(Debug, Default)]
pub struct Stores {
    kinds: Mutex<Vec<KindStore>>,
    /// Signalled on every change (a permit is kept when nobody waits).
    pub changed: Notify,
}

fn same(a: &BTreeMap<Key, RawResource>, b: &BTreeMap<Key, RawResource>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, ra), (kb, rb))| ka == kb && ra.value == rb.value)
}

impl Stores {
    /// Empty, unsynced stores for kinds labelled `labels` (in delivery order).
    pub fn new(labels: impl IntoIterator<Item = String>) -> Stores {
        Stores {
            kinds: Mutex::new(
                labels
                    .into_iter()
                    .map(|label| KindStore {
                        label,
                        ..Default::default()
                    })
                    .collect(),
            ),
            changed: Notify::new(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Vec<KindStore>) -> R) -> R {
        f(&mut self.kinds.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replace kind `i`'s objects with a full list (marks it synced). Objects absent from
    /// the list are gone. Notifies only when something changed.
    pub fn replace(&self, i: usize, objects: BTreeMap<Key, RawResource>) {
        let changed = self.with(|ks| {
            let Some(k) = ks.get_mut(i) else { return false };
            if k.synced && same(&k.objects, &objects) {
                return false;
            }
            k.synced = true;
            k.objects = objects;
            true
        });
        if changed {
            self.changed.notify_one();
        }
    }

    /// Add or update one object of kind `i`.
    pub fn apply(&self, i: usize, r: RawResource) {
        let changed = self.with(|ks| {
            let Some(k) = ks.get_mut(i) else { return false };
            let key = (r.namespace.clone(), r.name.clone());
            if k.objects.get(&key).is_some_and(|old| old.value == r.value) {
                return false;
            }
            k.objects.insert(key, r);
            true
        });
        if changed {
            self.changed.notify_one();
        }
    }

    /// Remove one object of kind `i`.
    pub fn delete(&self, i: usize, key: &Key) {
        if self.with(|ks| ks.get_mut(i).and_then(|k| k.objects.remove(key)).is_some()) {
            self.changed.notify_one();
        }
    }

    /// The object `key` of kind `i`, if stored.
    pub fn get(&self, i: usize, key: &Key) -> Option<RawResource> {
        self.with(|ks| ks.get(i).and_then(|k| k.objects.get(key).cloned()))
    }

    /// Whether every kind has had its first full list.
    pub fn synced(&self) -> bool {
        self.with(|ks| ks.iter().all(|k| k.synced))
    }

    /// Kinds still waiting for their first full list.
    pub fn pending(&self) -> Vec<String> {
        self.with(|ks| {
            ks.iter()
                .filter(|k| !k.synced)
                .map(|k| k.label.clone())
                .collect()
        })
    }

    /// Every stored resource, kind by kind in order and by namespace and name, numbered in
    /// that order (`seq`, the core's tie-breaker after creation time).
    pub fn snapshot(&self) -> Vec<RawResource> {
        self.with(|ks| {
            let mut out: Vec<RawResource> = ks
                .iter()
                .flat_map(|k| k.objects.values().cloned())
                .collect();
            for (i, r) in out.iter_mut().enumerate() {
                r.seq = i;
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_core::resource::parse_manifests;

    fn svc(name: &str, port: u16) -> RawResource {
        let text = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: ns}}\nspec: {{ports: [{{port: {port}}}]}}\n"
        );
        parse_manifests(&text, "t", "ns", 0).0.remove(0)
    }

    fn key(name: &str) -> Key {
        ("ns".into(), name.into())
    }

    #[tokio::test]
    async fn synced_after_every_kind_listed_and_changes_notify() {
        let s = Stores::new(["A".to_string(), "B".to_string()]);
        assert!(!s.synced());
        assert_eq!(s.pending(), ["A", "B"]);
        s.replace(0, BTreeMap::from([(key("a"), svc("a", 80))]));
        assert_eq!(s.pending(), ["B"]);
        s.replace(1, BTreeMap::new());
        assert!(s.synced());
        s.changed.notified().await; // a permit was stored

        // The same object again: no notification.
        s.apply(0, svc("a", 80));
        let quiet =
            tokio::time::timeout(std::time::Duration::from_millis(20), s.changed.notified());
        assert!(quiet.await.is_err(), "an unchanged object notified");
        s.apply(0, svc("b", 81));
        s.delete(0, &key("a"));
        let names: Vec<_> = s.snapshot().into_iter().map(|r| (r.name, r.seq)).collect();
        assert_eq!(names, [("b".to_string(), 0)]);
        // A relist with the same contents does not notify either.
        s.changed.notified().await;
        s.replace(0, BTreeMap::from([(key("b"), svc("b", 81))]));
        let quiet =
            tokio::time::timeout(std::time::Duration::from_millis(20), s.changed.notified());
        assert!(quiet.await.is_err(), "an identical relist notified");
    }
}
