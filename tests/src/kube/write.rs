//! The fake API server's single-object requests as the real one answers them: GET, POST,
//! PATCH (merge, strategic, apply), DELETE; `Status` objects with 404, 405, 409, 400, 415, 422.
//!
//! Simplifications: a strategic merge patch is applied as a JSON merge patch (lists replaced,
//! not merged by key); server-side apply merges the applied object into the stored one as a
//! JSON merge patch and keeps no managedFields, so it never reports a field-ownership
//! conflict (what a forcing client, like `apply --overwrite`, sees anyway). `metadata.generation` starts at 1 and grows when `spec` changes; a write
//! to the object keeps its `status`, a write to `/status` changes only the status.

// The helpers' `Err` is the early HTTP answer itself (a response is large; it is sent once).
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::serve::{full, not_found, status, Target};
use super::{Shared, State};

type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

/// `plural` or `plural.group`, as the API server names a resource in its messages.
fn resource(collection: &str) -> (String, String) {
    let parts: Vec<&str> = collection.split('/').collect();
    match parts.as_slice() {
        [group, _version, plural] => (format!("{plural}.{group}"), group.to_string()),
        [_version, plural] => (plural.to_string(), String::new()),
        _ => (collection.to_string(), String::new()),
    }
}

/// A failure `Status` with `details` naming the object, as the API server writes it.
fn failure(
    code: u16,
    reason: &str,
    message: String,
    collection: &str,
    name: &str,
) -> Response<Body> {
    let (_, group) = resource(collection);
    let plural = collection.rsplit('/').next().unwrap_or_default();
    let mut s = status(code, reason, &message);
    s["details"] = json!({"name": name, "group": group, "kind": plural});
    full(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &s,
    )
}

fn not_found_object(collection: &str, name: &str) -> Response<Body> {
    let (res, _) = resource(collection);
    failure(
        404,
        "NotFound",
        format!("{res} \"{name}\" not found"),
        collection,
        name,
    )
}

fn bad_request(message: &str) -> Response<Body> {
    full(StatusCode::BAD_REQUEST, &status(400, "BadRequest", message))
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(t) = target.as_object_mut() {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn key(t: &Target) -> (String, String) {
    (
        t.namespace.clone().unwrap_or_default(),
        t.object.clone().unwrap_or_default(),
    )
}

fn stored(st: &State, t: &Target) -> Option<Value> {
    st.objects.get(&t.collection)?.get(&key(t)).cloned()
}

fn query<'a>(t: &'a Target, k: &str) -> Option<&'a str> {
    t.query
        .iter()
        .find(|(q, _)| q == k)
        .map(|(_, v)| v.as_str())
}

/// A namespaced write needs its Namespace (the real server's admission answers 404).
fn namespace_missing(st: &State, t: &Target) -> Option<Response<Body>> {
    let ns = t.namespace.as_deref()?;
    let exists = st
        .objects
        .get("v1/namespaces")
        .is_some_and(|m| m.contains_key(&(String::new(), ns.to_string())));
    (!exists).then(|| {
        failure(
            404,
            "NotFound",
            format!("namespaces \"{ns}\" not found"),
            "v1/namespaces",
            ns,
        )
    })
}

/// Check a new object's identity against the URL; `name` is the URL's, if any.
fn check_new(t: &Target, obj: &mut Value, name: Option<&str>) -> Result<String, Response<Body>> {
    if !obj.is_object() {
        return Err(bad_request("the body is not a JSON object"));
    }
    for field in ["apiVersion", "kind"] {
        if obj[field].as_str().is_none_or(str::is_empty) {
            return Err(bad_request(&format!(
                "Object '{}' is missing in '{obj}'",
                if field == "kind" {
                    "Kind"
                } else {
                    "apiVersion"
                }
            )));
        }
    }
    let body_name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    if body_name.is_empty() {
        return Err(failure(
            422,
            "Invalid",
            format!("{kind} \"\" is invalid: metadata.name: Required value: name or generateName is required"),
            &t.collection,
            "",
        ));
    }
    if name.is_some_and(|n| n != body_name) {
        return Err(bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    match (
        obj["metadata"]["namespace"].as_str(),
        t.namespace.as_deref(),
    ) {
        (Some(b), Some(u)) if b != u => return Err(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        (_, Some(u)) => obj["metadata"]["namespace"] = json!(u),
        _ => {}
    }
    Ok(body_name)
}

/// Body text, or a 400 naming what was wrong.
async fn body(req: Request<Incoming>) -> Result<(String, Vec<u8>), Response<Body>> {
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map_err(|e| bad_request(&format!("reading the body: {e}")))?
        .to_bytes();
    Ok((ct, bytes.to_vec()))
}

fn parse_json(bytes: &[u8]) -> Result<Value, Response<Body>> {
    serde_json::from_slice(bytes).map_err(|e| bad_request(&format!("the body is not JSON: {e}")))
}

/// Store a written object, keeping the generation and status rules above.
fn commit(
    shared: &Shared,
    st: &mut State,
    t: &Target,
    old: Option<&Value>,
    mut obj: Value,
    status_write: bool,
) -> Value {
    let (ns, name) = key(t);
    match old {
        None => {
            obj["metadata"]["generation"] = json!(1);
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        Some(old) => {
            if status_write {
                let status = obj["status"].clone();
                obj = old.clone();
                obj["status"] = status;
            } else {
                match old.get("status") {
                    Some(s) => obj["status"] = s.clone(),
                    None => {
                        if let Some(o) = obj.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
                let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
                let bump = i64::from(old.get("spec") != obj.get("spec"));
                obj["metadata"]["generation"] = json!(generation + bump);
            }
            for k in ["name", "namespace", "uid", "creationTimestamp"] {
                match old["metadata"].get(k) {
                    Some(v) => obj["metadata"][k] = v.clone(),
                    None => {
                        if let Some(m) = obj["metadata"].as_object_mut() {
                            m.remove(k);
                        }
                    }
                }
            }
        }
    }
    shared.put(st, &t.collection, &ns, &name, obj)
}

pub(super) async fn handle(
    req: Request<Incoming>,
    t: Target,
    shared: &Arc<Shared>,
) -> Response<Body> {
    let method = req.method().clone();
    let verb = match (&method, t.object.is_some()) {
        (&http::Method::GET, true) => "get",
        (&http::Method::POST, false) => "create",
        (&http::Method::PATCH, true) => "patch",
        (&http::Method::DELETE, true) => "delete",
        _ => {
            return full(
                StatusCode::METHOD_NOT_ALLOWED,
                &status(
                    405,
                    "MethodNotAllowed",
                    &format!("{method} is not supported on this path by the fake"),
                ),
            )
        }
    };
    shared.lock().requests.push((verb, t.collection.clone()));
    if shared.lock().missing.contains(&t.collection) {
        return not_found();
    }
    if t.subresource.as_deref().is_some_and(|s| s != "status") {
        return not_found();
    }
    if t.subresource.is_some() && !matches!(verb, "get" | "patch") {
        return full(
            StatusCode::METHOD_NOT_ALLOWED,
            &status(
                405,
                "MethodNotAllowed",
                "the status subresource is read and patched only",
            ),
        );
    }
    let (ct, bytes) = match verb {
        "create" | "patch" => match body(req).await {
            Ok(b) => b,
            Err(r) => return r,
        },
        _ => (String::new(), Vec::new()),
    };
    let name = t.object.clone().unwrap_or_default();
    let mut st = shared.lock();
    match verb {
        "get" => match stored(&st, &t) {
            Some(o) => full(StatusCode::OK, &o),
            None => not_found_object(&t.collection, &name),
        },
        "delete" => match shared.remove(&mut st, &t.collection, &key(&t).0, &name) {
            Some(o) => full(StatusCode::OK, &o),
            None => not_found_object(&t.collection, &name),
        },
        "create" => {
            let mut obj = match parse_json(&bytes) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let name = match check_new(&t, &mut obj, None) {
                Ok(n) => n,
                Err(r) => return r,
            };
            if let Some(r) = namespace_missing(&st, &t) {
                return r;
            }
            let mut t = t;
            t.object = Some(name.clone());
            if stored(&st, &t).is_some() {
                let (res, _) = resource(&t.collection);
                return failure(
                    409,
                    "AlreadyExists",
                    format!("{res} \"{name}\" already exists"),
                    &t.collection,
                    &name,
                );
            }
            let created = commit(shared, &mut st, &t, None, obj, false);
            full(StatusCode::CREATED, &created)
        }
        _ => patch(shared, &mut st, &t, &ct, &bytes),
    }
}

fn patch(shared: &Shared, st: &mut State, t: &Target, ct: &str, bytes: &[u8]) -> Response<Body> {
    let name = t.object.clone().unwrap_or_default();
    let status_write = t.subresource.is_some();
    let old = stored(st, t);
    let patch: Value = match ct {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => match parse_json(bytes) {
            Ok(v) => v,
            Err(r) => return r,
        },
        "application/apply-patch+yaml" => {
            if query(t, "fieldManager").is_none_or(str::is_empty) {
                return failure(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".to_string(),
                    &t.collection,
                    &name,
                );
            }
            match serde_yaml::from_slice::<Value>(bytes) {
                Ok(v) => v,
                Err(e) => return bad_request(&format!("error decoding YAML: {e}")),
            }
        }
        _ => {
            return full(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &status(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {ct:?})")),
            )
        }
    };
    let apply = ct == "application/apply-patch+yaml";
    let Some(old) = old else {
        if !apply || status_write {
            return not_found_object(&t.collection, &name);
        }
        // Server-side apply creates.
        let mut obj = patch;
        if let Err(r) = check_new(t, &mut obj, Some(&name)) {
            return r;
        }
        if let Some(r) = namespace_missing(st, t) {
            return r;
        }
        let created = commit(shared, st, t, None, obj, false);
        return full(StatusCode::CREATED, &created);
    };
    let want_rv = patch["metadata"]["resourceVersion"].as_str();
    if want_rv.is_some_and(|rv| Some(rv) != old["metadata"]["resourceVersion"].as_str()) {
        let (res, _) = resource(&t.collection);
        return failure(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {res} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
            &t.collection,
            &name,
        );
    }
    let mut obj = old.clone();
    merge(&mut obj, &patch);
    let updated = commit(shared, st, t, Some(&old), obj, status_write);
    full(StatusCode::OK, &updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "k": "x"});
        merge(
            &mut v,
            &json!({"a": {"b": null, "d": 3}, "l": [3], "k": {"n": 1}}),
        );
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [3], "k": {"n": 1}}));
    }

    #[test]
    fn resources_are_named_as_the_api_server_does() {
        assert_eq!(resource("v1/namespaces").0, "namespaces");
        assert_eq!(
            resource("gateway.networking.k8s.io/v1/gateways"),
            (
                "gateways.gateway.networking.k8s.io".to_string(),
                "gateway.networking.k8s.io".to_string()
            )
        );
    }
}
