//! Stage one of config: manifests (multi-document YAML or JSON, `kind: List` too) parsed into
//! raw resources with identity and defaults, and strict typed parsing of their specs.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ConfigError, ResourceId};

mod limits;
pub use limits::{check as check_limits, LimitViolation, ManifestLimits};

/// One Kubernetes object as read from a manifest.
#[derive(Debug, Clone)]
pub struct RawResource {
    /// `group/version` or `v1`.
    pub api_version: String,
    pub kind: String,
    /// `metadata.namespace`, or the default namespace (as `kubectl apply` places it).
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `metadata.creationTimestamp` if set (RFC 3339); used for "oldest wins" ordering.
    pub creation_timestamp: Option<String>,
    /// Where it came from: `file` and document index.
    pub origin: String,
    /// Order in which it was read (tie-breaker after creation time).
    pub seq: usize,
    /// The whole object.
    pub value: Value,
}

impl RawResource {
    /// API group (empty for core).
    pub fn group(&self) -> &str {
        match self.api_version.rsplit_once('/') {
            Some((g, _)) => g,
            None => "",
        }
    }

    /// API version without the group.
    pub fn version(&self) -> &str {
        match self.api_version.rsplit_once('/') {
            Some((_, v)) => v,
            None => &self.api_version,
        }
    }

    pub fn id(&self) -> ResourceId {
        ResourceId::new(&self.kind, &self.namespace, &self.name)
    }

    /// Error about `field` of this resource.
    pub fn error(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::new(
            self.kind.clone(),
            self.namespace.clone(),
            self.name.clone(),
            field,
            message,
        )
    }

    /// Strictly parse the top-level field `field` (usually `spec`) into `T`. A missing field
    /// parses as JSON `{}`. Errors carry the full field path (`spec.http[0].route`).
    pub fn parse_field<T: DeserializeOwned>(&self, field: &str) -> Result<T, ConfigError> {
        let empty = Value::Object(Default::default());
        let v = self.value.get(field).unwrap_or(&empty);
        let v = if v.is_null() { &empty } else { v };
        serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
            let path = e.path().to_string();
            let field_path = if path == "." || path.is_empty() {
                field.to_string()
            } else {
                format!("{field}.{path}")
            };
            self.error(field_path, e.inner().to_string())
        })
    }

    /// Strictly parse `spec`.
    pub fn parse_spec<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.parse_field("spec")
    }
}

/// Parse one manifest text (YAML, possibly multi-document, or JSON) under the default
/// [`ManifestLimits`]. Resources without `metadata.namespace` go to `default_namespace`.
/// Documents that are not objects with `kind`, `apiVersion` and `metadata.name` are reported
/// as errors; the rest are kept.
pub fn parse_manifests(
    text: &str,
    origin: &str,
    default_namespace: &str,
    seq_start: usize,
) -> (Vec<RawResource>, Vec<ConfigError>) {
    parse_manifests_with_limits(
        text,
        origin,
        default_namespace,
        seq_start,
        &ManifestLimits::DEFAULT,
    )
}

/// Is this error about a document whose identity (kind, name) is unknown: a text over a
/// limit, a syntax error, or a document without kind or name? Such errors are about the
/// whole manifest text, not one resource.
pub fn is_manifest_error(e: &ConfigError) -> bool {
    e.kind == MANIFEST
}

/// The `kind` of errors about a manifest text rather than one resource.
const MANIFEST: &str = "Manifest";

/// [`parse_manifests`] with explicit limits. A text over a limit is rejected whole, before
/// any parser runs, with one error naming `origin` and the document index.
pub fn parse_manifests_with_limits(
    text: &str,
    origin: &str,
    default_namespace: &str,
    seq_start: usize,
    limits: &ManifestLimits,
) -> (Vec<RawResource>, Vec<ConfigError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    if let Err(v) = check_limits(text, limits) {
        errors.push(ConfigError::new(
            MANIFEST,
            "",
            format!("{origin}#{}", v.document),
            "",
            v.message,
        ));
        return (out, errors);
    }
    let mut docs: Vec<Value> = Vec::new();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // JSON: one object, an array, or a stream of objects.
        for (i, v) in serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .enumerate()
        {
            match v {
                Ok(Value::Array(items)) => docs.extend(items),
                Ok(v) => docs.push(v),
                Err(e) => errors.push(ConfigError::new(
                    MANIFEST,
                    "",
                    format!("{origin}#{i}"),
                    "",
                    format!("invalid JSON: {e}"),
                )),
            }
        }
    } else {
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            match <Value as serde::Deserialize>::deserialize(doc) {
                Ok(Value::Null) => {}
                Ok(v) => docs.push(v),
                Err(e) => {
                    errors.push(ConfigError::new(
                        MANIFEST,
                        "",
                        format!("{origin}#{i}"),
                        "",
                        format!("invalid YAML: {e}"),
                    ));
                    // serde_yaml cannot resynchronise after a syntax error: its document
                    // iterator would keep yielding the same error forever.
                    break;
                }
            }
        }
    }
    let mut seq = seq_start;
    let mut stack: Vec<(usize, Value)> = docs.into_iter().enumerate().rev().collect();
    while let Some((i, doc)) = stack.pop() {
        // `kind: List` (kubectl get -o yaml) holds items.
        if doc.get("kind").and_then(Value::as_str) == Some("List") {
            if let Some(Value::Array(items)) = doc.get("items") {
                for item in items.iter().rev() {
                    stack.push((i, item.clone()));
                }
            }
            continue;
        }
        match to_raw(doc, &format!("{origin}#{i}"), default_namespace, seq) {
            Ok(r) => {
                seq += 1;
                out.push(r)
            }
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

fn to_raw(
    doc: Value,
    origin: &str,
    default_namespace: &str,
    seq: usize,
) -> Result<RawResource, ConfigError> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(default_namespace);
    // Namespace and cluster-scoped kinds have no namespace of their own.
    let namespace = if matches!(kind, "Namespace" | "GatewayClass") {
        ""
    } else {
        namespace
    };
    // Without kind or name the document has no identity: the error is about the manifest.
    let unidentified = |field: &str, msg: &str| {
        let msg = if kind.is_empty() {
            msg.to_string()
        } else {
            format!("{msg} (kind {kind})")
        };
        ConfigError::new(MANIFEST, "", origin, field, msg)
    };
    if !doc.is_object() {
        return Err(unidentified("", "document is not an object"));
    }
    if kind.is_empty() {
        return Err(unidentified("kind", "missing kind"));
    }
    if name.is_empty() {
        return Err(unidentified("metadata.name", "missing metadata.name"));
    }
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ConfigError::new(kind, namespace, name, "apiVersion", "missing apiVersion")
        })?;
    let string_map = |key: &str| -> BTreeMap<String, String> {
        meta.and_then(|m| m.get(key))
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), v)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(RawResource {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        labels: string_map("labels"),
        annotations: string_map("annotations"),
        creation_timestamp: meta
            .and_then(|m| m.get("creationTimestamp"))
            .and_then(Value::as_str)
            .map(str::to_string),
        origin: origin.to_string(),
        seq,
        value: doc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_doc_yaml_with_default_namespace() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n  namespace: x\n";
        let (rs, errs) = parse_manifests(text, "f.yaml", "default", 0);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].namespace, "default");
        assert_eq!(rs[1].namespace, "x");
        assert_eq!(rs[1].seq, 1);
    }

    #[test]
    fn json_list_and_errors() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n","labels":{"a":"b"}}},{"kind":"Service"}]}"#;
        let (rs, errs) = parse_manifests(text, "f.json", "default", 0);
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.name");
        assert!(is_manifest_error(&errs[0]), "{errs:?}");
    }

    #[test]
    fn missing_api_version_names_the_resource() {
        let (rs, errs) = parse_manifests("kind: Service\nmetadata: {name: a}\n", "f", "ns", 0);
        assert!(rs.is_empty());
        assert_eq!(errs.len(), 1);
        assert_eq!(
            (
                errs[0].kind.as_str(),
                errs[0].namespace.as_str(),
                errs[0].name.as_str()
            ),
            ("Service", "ns", "a")
        );
        assert!(!is_manifest_error(&errs[0]));
    }

    #[test]
    fn deep_nesting_is_rejected_by_the_limit_not_the_parser() {
        for text in [
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: a}}\n---\nx: {}",
                "[".repeat(200_000)
            ),
            format!("x: {}", "{a: ".repeat(50_000)),
            format!("[{}", "[".repeat(200_000)),
            (0..300).map(|i| format!("{}k:\n", " ".repeat(i))).collect(),
        ] {
            let (rs, errs) = parse_manifests(&text, "deep.yaml", "default", 0);
            assert!(rs.is_empty(), "the text is rejected whole");
            assert_eq!(errs.len(), 1, "{errs:?}");
            let msg = errs[0].to_string();
            assert!(msg.contains("deep.yaml#"), "{msg}");
            assert!(msg.contains("limit of 64"), "{msg}");
            assert!(!msg.contains("recursion"), "{msg}");
            assert!(is_manifest_error(&errs[0]));
        }
    }

    #[test]
    fn huge_document_is_rejected_naming_it() {
        let text = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: a}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: b}}\ndata: {{x: {}}}\n",
            "a".repeat(2 * 1024 * 1024)
        );
        let (rs, errs) = parse_manifests(&text, "big.yaml", "default", 0);
        assert!(rs.is_empty());
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].name, "big.yaml#1");
        assert!(errs[0].message.contains("1572864 bytes"), "{errs:?}");
    }

    #[test]
    fn malformed_yaml_is_one_error_and_terminates() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nkind: [unclosed\n---\napiVersion: v1\n";
        let (rs, errs) = parse_manifests(text, "bad.yaml", "default", 0);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].message.contains("invalid YAML"), "{errs:?}");
        assert!(rs.len() <= 1);
    }

    #[test]
    fn strict_parse_names_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Spec {
            hosts: Vec<String>,
        }
        let text =
            "apiVersion: v1\nkind: X\nmetadata: {name: a}\nspec:\n  hosts: [1]\n  bogus: 2\n";
        let (rs, _) = parse_manifests(text, "f", "default", 0);
        let err = rs[0].parse_spec::<Spec>().expect_err("bogus field");
        assert!(err.field.starts_with("spec"), "{err}");
    }
}
