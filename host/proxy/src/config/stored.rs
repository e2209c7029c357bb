//! The resources of an accepted config as the host keeps them between loads: identity and
//! origin as read, the object itself as compact JSON text, parsed back only for a fallback.
//!
//! A parsed `serde_json::Value` costs about 25× its text (a B-tree node of 11 slots per JSON
//! object): 6.2 KB per resource of the scale mesh, 240 MB at 10k services, against ~0.25 KB.

use std::collections::BTreeMap;

use waypoint_core::resource::RawResource;
use waypoint_core::ResourceId;

/// One resource of the config in force (what [`RawResource`] holds, `value` as JSON text).
#[derive(Debug, Clone)]
pub struct StoredResource {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub creation_timestamp: Option<String>,
    pub origin: String,
    pub seq: usize,
    labels: Box<[(Box<str>, Box<str>)]>,
    annotations: Box<[(Box<str>, Box<str>)]>,
    value: Box<str>,
}

fn pairs(m: BTreeMap<String, String>) -> Box<[(Box<str>, Box<str>)]> {
    m.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
}

fn map(p: &[(Box<str>, Box<str>)]) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl StoredResource {
    pub fn new(r: RawResource) -> Self {
        StoredResource {
            // Serialising a `Value` cannot fail (string keys only).
            value: serde_json::to_string(&r.value)
                .unwrap_or_default()
                .into_boxed_str(),
            api_version: r.api_version,
            kind: r.kind,
            namespace: r.namespace,
            name: r.name,
            creation_timestamp: r.creation_timestamp,
            origin: r.origin,
            seq: r.seq,
            labels: pairs(r.labels),
            annotations: pairs(r.annotations),
        }
    }

    pub fn id(&self) -> ResourceId {
        ResourceId::new(&self.kind, &self.namespace, &self.name)
    }

    /// The resource as it was read.
    pub fn restore(&self) -> RawResource {
        RawResource {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            labels: map(&self.labels),
            annotations: map(&self.annotations),
            creation_timestamp: self.creation_timestamp.clone(),
            origin: self.origin.clone(),
            seq: self.seq,
            // Written by `new` from a `Value`, so it parses back to the same `Value`.
            value: serde_json::from_str(&self.value).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_what_was_stored() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x, labels: {app: a}, annotations: {n: '1'}}\nspec: {ports: [{port: 80}]}\n";
        let loaded = waypoint_loader::load_text(yaml, "t.yaml", "default");
        let r = loaded.resources[0].clone();
        let back = StoredResource::new(r.clone()).restore();
        assert_eq!(
            (back.kind, back.namespace, back.name, back.origin),
            (r.kind, r.namespace, r.name, r.origin)
        );
        assert_eq!((back.labels, back.annotations), (r.labels, r.annotations));
        assert_eq!(back.value, r.value);
        assert_eq!(back.value["spec"]["ports"][0]["port"], 80);
    }
}
