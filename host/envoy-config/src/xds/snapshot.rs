//! Versioned xDS snapshots: every resource encoded once, versioned by a hash of its canonical
//! JSON; a type's state-of-the-world version is the hash of its (name, version) set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bootstrap::{self, Inputs};

use super::jwks::JwksInliner;
use super::proto;
use super::resources::{self, JsonResources, SplitOptions};
use super::XdsError;

/// One encoded resource.
#[derive(Debug, Clone)]
pub struct Resource {
    pub name: String,
    /// Hash of the resource's canonical JSON (sorted keys). Not of `body`: protobuf map
    /// fields (`google.protobuf.Struct`) encode in no fixed order, so equal resources may
    /// have different bytes.
    pub version: String,
    pub body: Arc<Vec<u8>>,
}

/// Equal when name and version are: the version is the content.
impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.version == other.version
    }
}

impl Eq for Resource {}

/// All resources for one node, by type URL and name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub types: BTreeMap<&'static str, BTreeMap<String, Resource>>,
    /// Per type: hash of the (name, version) set (the SotW `version_info`).
    pub versions: BTreeMap<&'static str, String>,
}

/// FNV-1a, 64 bit: stable across runs and platforms (versions survive a server restart).
pub fn fnv64(chunks: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in chunks {
        for b in *c {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // Separator so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Snapshot {
    /// Encode every JSON resource; the first invalid one fails the whole snapshot.
    pub fn encode(json: &JsonResources) -> Result<Snapshot, XdsError> {
        let mut snap = Snapshot::default();
        for (type_url, by_name) in json {
            let mut out = BTreeMap::new();
            for (name, v) in by_name {
                let body = proto::encode(type_url, name, v)?;
                let canonical = serde_json::to_vec(v).unwrap_or_default();
                let version = format!("{:016x}", fnv64(&[&canonical]));
                out.insert(
                    name.clone(),
                    Resource {
                        name: name.clone(),
                        version,
                        body: Arc::new(body),
                    },
                );
            }
            let set: Vec<&[u8]> = out
                .values()
                .flat_map(|r| [r.name.as_bytes(), r.version.as_bytes()])
                .collect();
            snap.versions
                .insert(type_url, format!("{:016x}", fnv64(&set)));
            snap.types.insert(type_url, out);
        }
        Ok(snap)
    }

    /// Resources of one type (empty when the snapshot has none).
    pub fn of(&self, type_url: &str) -> impl Iterator<Item = &Resource> {
        self.types
            .get(type_url)
            .into_iter()
            .flat_map(|m| m.values())
    }

    pub fn get(&self, type_url: &str, name: &str) -> Option<&Resource> {
        self.types.get(type_url).and_then(|m| m.get(name))
    }

    /// The SotW version of a type ("" when the snapshot has none of it).
    pub fn version(&self, type_url: &str) -> &str {
        self.versions.get(type_url).map_or("", String::as_str)
    }

    /// What a delta push from `older` to `self` carries: (type, name, encoded bytes) of every
    /// added or changed resource, and (type, name, 0) of every removed one.
    pub fn diff(&self, older: &Snapshot) -> Vec<(&'static str, String, usize)> {
        let mut out = Vec::new();
        for (t, by_name) in &self.types {
            for r in by_name.values() {
                if older.get(t, &r.name) != Some(r) {
                    out.push((*t, r.name.clone(), r.body.len()));
                }
            }
        }
        for (t, by_name) in &older.types {
            for name in by_name.keys() {
                if self.get(t, name).is_none() {
                    out.push((*t, name.clone(), 0));
                }
            }
        }
        out
    }

    /// Total encoded bytes (bench figure).
    pub fn bytes(&self) -> usize {
        self.types
            .values()
            .flat_map(|m| m.values())
            .map(|r| r.body.len())
            .sum()
    }
}

/// Where snapshots come from: the same inputs as `waypoint bootstrap`.
#[derive(Debug, Clone)]
pub struct Source {
    pub inputs: Inputs,
    pub rebind: BTreeMap<String, std::net::SocketAddr>,
    /// Listeners added to the generated ones before the split (tests: a plaintext entry into
    /// the internal L7 listener).
    pub extra_listeners: Vec<serde_json::Value>,
}

impl Source {
    /// Paths whose change means a rebuild: the config and the certificate files.
    pub fn watched(&self) -> Vec<PathBuf> {
        let mut p: Vec<PathBuf> = self
            .inputs
            .config
            .iter()
            .map(|c| self.inputs.root.join(c))
            .collect();
        p.extend(self.inputs.certs.all().map(|c| self.inputs.root.join(c)));
        p
    }

    /// Build the snapshot for `waypoint` (`NS/NAME`; `None`: the one in the config).
    /// Everything is validated (config, certificates, every resource's protobuf encoding)
    /// before a snapshot exists, so a bad change never replaces a good snapshot.
    pub fn build(&self, waypoint: Option<&str>) -> Result<Snapshot, XdsError> {
        self.build_with(waypoint, None)
    }

    /// [`Source::build`] with RequestAuthentication key sets inlined from `jwks` (as istiod
    /// pushes them) instead of fetched by Envoy (`remote_jwks`, the static bootstrap's form).
    pub fn build_with(
        &self,
        waypoint: Option<&str>,
        jwks: Option<&JwksInliner>,
    ) -> Result<Snapshot, XdsError> {
        let json = self.json_with(waypoint, jwks)?;
        Snapshot::encode(&json)
    }

    /// The JSON resources (before encoding) for `waypoint`.
    pub fn json(&self, waypoint: Option<&str>) -> Result<JsonResources, XdsError> {
        self.json_with(waypoint, None)
    }

    /// [`Source::json`], key sets inlined from `jwks` when given.
    pub fn json_with(
        &self,
        waypoint: Option<&str>,
        jwks: Option<&JwksInliner>,
    ) -> Result<JsonResources, XdsError> {
        let mut inputs = self.inputs.clone();
        if let Some(w) = waypoint {
            inputs.waypoint = Some(w.to_string());
        }
        let loaded = bootstrap::load(&inputs).map_err(|e| XdsError::Config(format!("{e:#}")))?;
        let mut text = String::new();
        for f in &loaded.files {
            let t = std::fs::read_to_string(f)
                .map_err(|e| XdsError::Config(format!("{}: {e}", f.display())))?;
            if !text.is_empty() {
                text.push_str("\n---\n");
            }
            text.push_str(&t);
        }
        let mut generated = bootstrap::generate(&loaded.snapshot, &loaded.options);
        bootstrap::ext_authz::add_xds_guard(&mut generated, &loaded.snapshot);
        if let Some(j) = jwks {
            bootstrap::jwt_authn::inline_remote(&mut generated, &loaded.snapshot, &|r| {
                j.text_for(r)
            });
        }
        if let Some(l) = generated["static_resources"]["listeners"].as_array_mut() {
            l.extend(self.extra_listeners.iter().cloned());
        }
        let root = self.inputs.root.clone();
        let read = move |p: &str| std::fs::read_to_string(root.join(Path::new(p)));
        resources::split(
            &generated,
            &SplitOptions {
                config_inline: Some(text),
                default_namespace: Some(inputs.namespace.clone()),
                rebind: self.rebind.clone(),
            },
            &read,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The bookinfo example (mesh pods over HBONE, plain pods, subsets) transforms and encodes.
    #[test]
    fn bookinfo_example_builds() {
        let source = Source {
            inputs: Inputs::bookinfo_example(),
            rebind: BTreeMap::new(),
            extra_listeners: Vec::new(),
        };
        let snap = source.build(None).expect("bookinfo snapshot");
        let count = |t: &str| snap.of(t).count();
        assert_eq!(count(proto::EXTENSION), 1);
        assert_eq!(count(proto::SECRET), 2);
        assert_eq!(count(proto::CLUSTER), count(proto::ENDPOINT));
        assert!(snap.get(proto::LISTENER, "connect_terminate").is_some());
        assert!(snap
            .of(proto::LISTENER)
            .any(|l| l.name.starts_with("connect_originate|")));
        for r in ["connect_terminate", "waypoint", "readiness", "stats"] {
            assert!(snap.get(proto::ROUTE, r).is_some(), "{r}");
        }
        // Rebuilding the same inputs gives the same versions (no spurious pushes).
        assert_eq!(source.build(None).expect("again"), snap);
    }

    #[test]
    fn versions_follow_content() {
        let mk = |port: u16| -> JsonResources {
            BTreeMap::from([(
                proto::CLUSTER,
                BTreeMap::from([
                    (
                        "a".to_string(),
                        json!({"name": "a", "connect_timeout": "1s"}),
                    ),
                    (
                        "b".to_string(),
                        json!({"name": "b", "load_assignment": {"cluster_name": "b", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}),
                    ),
                ]),
            )])
        };
        let s1 = Snapshot::encode(&mk(1)).expect("s1");
        let s1b = Snapshot::encode(&mk(1)).expect("s1b");
        let s2 = Snapshot::encode(&mk(2)).expect("s2");
        assert_eq!(s1, s1b);
        assert_eq!(s1.get(proto::CLUSTER, "a"), s2.get(proto::CLUSTER, "a"));
        assert_ne!(
            s1.get(proto::CLUSTER, "b").map(|r| &r.version),
            s2.get(proto::CLUSTER, "b").map(|r| &r.version)
        );
        assert_ne!(s1.version(proto::CLUSTER), s2.version(proto::CLUSTER));
        assert_eq!(s1.version(proto::LISTENER), "");
        let d = s2.diff(&s1);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].0, d[0].1.as_str()), (proto::CLUSTER, "b"));
        assert!(s1.diff(&s1b).is_empty());
    }
}
