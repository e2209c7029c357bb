//! The objects `list` and `status` read, one shape for both sources: from the API server
//! (any kube object) or from manifest files (the loader's raw resources).

use std::collections::BTreeMap;

use serde_json::Value;
use waypoint_core::resource::RawResource;

/// One object: where it is, its labels, and the whole object for the fields a summary reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: Value,
}

impl Object {
    /// From a JSON object as the API server sends it (`metadata.namespace`, `.name`, `.labels`).
    pub fn from_value(value: Value) -> Object {
        let meta = &value["metadata"];
        let s = |k: &str| meta[k].as_str().unwrap_or_default().to_string();
        let labels = meta["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Object {
            namespace: s("namespace"),
            name: s("name"),
            labels,
            value,
        }
    }

    /// From a resource read from a file (its namespace already defaulted by the loader).
    pub fn from_raw(r: &RawResource) -> Object {
        Object {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            labels: r.labels.clone(),
            value: r.value.clone(),
        }
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn key(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// The kinds that attach to a waypoint, in the order `status` prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum AttachKind {
    #[serde(rename = "HTTPRoute")]
    HttpRoute,
    #[serde(rename = "GRPCRoute")]
    GrpcRoute,
    VirtualService,
    AuthorizationPolicy,
}

impl AttachKind {
    pub const ALL: [AttachKind; 4] = [
        AttachKind::HttpRoute,
        AttachKind::GrpcRoute,
        AttachKind::VirtualService,
        AttachKind::AuthorizationPolicy,
    ];

    /// The Kubernetes kind.
    pub fn kind(self) -> &'static str {
        match self {
            AttachKind::HttpRoute => "HTTPRoute",
            AttachKind::GrpcRoute => "GRPCRoute",
            AttachKind::VirtualService => "VirtualService",
            AttachKind::AuthorizationPolicy => "AuthorizationPolicy",
        }
    }

    /// A route (else a policy).
    pub fn is_route(self) -> bool {
        !matches!(self, AttachKind::AuthorizationPolicy)
    }

    fn of(kind: &str) -> Option<AttachKind> {
        AttachKind::ALL.into_iter().find(|k| k.kind() == kind)
    }
}

/// Everything a summary reads: Gateways and their classes, Namespaces, Services and the kinds that attach.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    pub gateways: Vec<Object>,
    /// GatewayClasses (their `istio.io/waypoint-for` is a Gateway's default).
    pub classes: Vec<Object>,
    pub namespaces: Vec<Object>,
    pub services: Vec<Object>,
    pub attachable: BTreeMap<AttachKind, Vec<Object>>,
}

impl Inventory {
    /// From resources read from files. A Namespace that only appears as the namespace of other
    /// objects is not invented: namespace bindings come from Namespace manifests.
    pub fn from_resources(resources: &[RawResource]) -> Inventory {
        let mut inv = Inventory::default();
        for r in resources {
            let o = Object::from_raw(r);
            match (r.group(), r.kind.as_str()) {
                ("gateway.networking.k8s.io", "Gateway") => inv.gateways.push(o),
                ("gateway.networking.k8s.io", "GatewayClass") => inv.classes.push(Object {
                    namespace: String::new(),
                    ..o
                }),
                ("", "Namespace") => inv.namespaces.push(Object {
                    namespace: String::new(),
                    ..o
                }),
                ("", "Service") => inv.services.push(o),
                (_, kind) => {
                    if let Some(k) = AttachKind::of(kind) {
                        inv.attachable.entry(k).or_default().push(o);
                    }
                }
            }
        }
        inv.sort();
        inv
    }

    /// Every list in `namespace/name` order (output is stable whatever the source order).
    pub fn sort(&mut self) {
        let by_key = |a: &Object, b: &Object| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name));
        self.gateways.sort_by(by_key);
        self.classes.sort_by(by_key);
        self.namespaces.sort_by(by_key);
        self.services.sort_by(by_key);
        for v in self.attachable.values_mut() {
            v.sort_by(by_key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const USE: &str = crate::names::USE_WAYPOINT;

    #[test]
    fn an_api_object_keeps_its_namespace_name_and_string_labels() {
        let o = Object::from_value(
            json!({"metadata": {"name": "reviews", "namespace": "bookinfo",
            "labels": {"istio.io/use-waypoint": "wp", "n": 1}}}),
        );
        assert_eq!(o.key(), "bookinfo/reviews");
        assert_eq!(o.label(USE), Some("wp"));
        assert_eq!(o.labels.len(), 1, "a non-string label value is not a label");
        let ns = Object::from_value(json!({"metadata": {"name": "bookinfo"}}));
        assert_eq!(ns.key(), "bookinfo");
    }

    #[test]
    fn resources_from_files_are_sorted_by_kind_and_key() {
        let text = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: b}
spec: {}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: z}
spec: {gatewayClassName: waypoint, listeners: []}
---
apiVersion: v1
kind: Namespace
metadata: {name: z}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a}
spec: {}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
"#;
        let (raw, errors) = waypoint_core::resource::parse_manifests(text, "t.yaml", "ns1", 0);
        assert!(errors.is_empty(), "{errors:?}");
        let inv = Inventory::from_resources(&raw);
        assert_eq!(inv.gateways.len(), 1);
        assert_eq!(inv.namespaces[0].key(), "z");
        let policies: Vec<String> = inv.attachable[&AttachKind::AuthorizationPolicy]
            .iter()
            .map(Object::key)
            .collect();
        assert_eq!(policies, ["ns1/a", "ns1/b"]);
        assert_eq!(inv.attachable.len(), 1, "a ConfigMap attaches to nothing");
    }
}
