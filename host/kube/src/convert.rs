//! An API object to the core's raw resource: serialized to JSON and read by the core's
//! manifest parser (the same limits and identity rules as a file), managed fields dropped.

use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use serde_json::Value;
use waypoint_core::resource::{parse_manifests, RawResource};
use waypoint_core::ConfigError;

/// Where a resource came from, as `RawResource::origin` (the parser appends `#0`).
pub fn origin(api: &ApiResource, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("kube:{}/{name}", api.kind)
    } else {
        format!("kube:{}/{namespace}/{name}", api.kind)
    }
}

/// Convert one object. List items may lack `apiVersion`/`kind` (the API server leaves them
/// out for built-in kinds): they are set from the watched kind.
pub fn to_raw(api: &ApiResource, obj: &DynamicObject) -> Result<RawResource, ConfigError> {
    let mut value = serde_json::to_value(obj).map_err(|e| {
        ConfigError::new(
            api.kind.clone(),
            obj.metadata.namespace.clone().unwrap_or_default(),
            obj.metadata.name.clone().unwrap_or_default(),
            "",
            format!("cannot serialize: {e}"),
        )
    })?;
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), Value::String(api.api_version.clone()));
        map.insert("kind".into(), Value::String(api.kind.clone()));
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            // Server-side apply bookkeeping: large, and nothing the waypoint reads.
            meta.remove("managedFields");
        }
    }
    let ns = obj.metadata.namespace.as_deref().unwrap_or("");
    let name = obj.metadata.name.as_deref().unwrap_or("");
    let (mut rs, errs) = parse_manifests(&value.to_string(), &origin(api, ns, name), "", 0);
    match (rs.pop(), errs.into_iter().next()) {
        (Some(r), None) => Ok(r),
        (_, Some(e)) => Err(e),
        (None, None) => Err(ConfigError::new(
            api.kind.clone(),
            ns,
            name,
            "",
            "the object produced no resource",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> ApiResource {
        ApiResource {
            group: "networking.istio.io".into(),
            version: "v1".into(),
            api_version: "networking.istio.io/v1".into(),
            kind: "VirtualService".into(),
            plural: "virtualservices".into(),
        }
    }

    #[test]
    fn a_list_item_without_type_gets_it_and_loses_managed_fields() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r", "namespace": "ns", "labels": {"a": "b"},
                         "creationTimestamp": "2026-01-01T00:00:00Z",
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"hosts": ["r"]}
        }))
        .expect("object");
        let r = to_raw(&api(), &obj).expect("raw");
        assert_eq!(r.kind, "VirtualService");
        assert_eq!(r.api_version, "networking.istio.io/v1");
        assert_eq!((r.namespace.as_str(), r.name.as_str()), ("ns", "r"));
        assert_eq!(r.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(
            r.creation_timestamp.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(r.origin, "kube:VirtualService/ns/r#0");
        assert!(r.value["metadata"].get("managedFields").is_none());
        assert_eq!(r.value["spec"]["hosts"][0], "r");
    }

    #[test]
    fn an_object_past_the_core_limits_is_an_error() {
        let mut deep = serde_json::json!(1);
        for _ in 0..100 {
            deep = serde_json::json!([deep]);
        }
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {"x": deep}
        }))
        .expect("object");
        let e = to_raw(&api(), &obj).expect_err("too deep");
        assert!(e.message.contains("limit"), "{e}");
    }
}
