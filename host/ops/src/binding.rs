//! Which Namespaces and Services use which waypoint (Istio's `istio.io/use-waypoint` and
//! `istio.io/use-waypoint-namespace` labels), and the label patches that bind and unbind.

use serde_json::{json, Value};

use crate::names::{NONE, USE_WAYPOINT, USE_WAYPOINT_NAMESPACE};
use crate::object::{Inventory, Object};

/// What an object's labels say about its waypoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UseWaypoint {
    /// No `istio.io/use-waypoint` label: a Service follows its namespace.
    Unset,
    /// `istio.io/use-waypoint: none`: never a waypoint, whatever the namespace says.
    OptOut,
    /// The waypoint `namespace/name`.
    Waypoint { namespace: String, name: String },
}

/// The waypoint `obj` names. `own_namespace` is where the waypoint is when
/// `istio.io/use-waypoint-namespace` is absent: the object's namespace (a Namespace's name).
pub fn use_waypoint(obj: &Object, own_namespace: &str) -> UseWaypoint {
    match obj.label(USE_WAYPOINT) {
        None | Some("") => UseWaypoint::Unset,
        Some(NONE) => UseWaypoint::OptOut,
        Some(name) => UseWaypoint::Waypoint {
            namespace: obj
                .label(USE_WAYPOINT_NAMESPACE)
                .filter(|n| !n.is_empty())
                .unwrap_or(own_namespace)
                .to_string(),
            name: name.to_string(),
        },
    }
}

fn is(u: &UseWaypoint, namespace: &str, name: &str) -> bool {
    matches!(u, UseWaypoint::Waypoint { namespace: n, name: w } if n == namespace && w == name)
}

/// Whether the Namespace `ns` uses the waypoint `namespace/name`.
pub fn namespace_uses(ns: &Object, namespace: &str, name: &str) -> bool {
    is(&use_waypoint(ns, &ns.name), namespace, name)
}

/// The Namespaces bound to the waypoint `namespace/name`, by name.
pub fn bound_namespaces(inv: &Inventory, namespace: &str, name: &str) -> Vec<String> {
    inv.namespaces
        .iter()
        .filter(|ns| namespace_uses(ns, namespace, name))
        .map(|ns| ns.name.clone())
        .collect()
}

/// How a Service came to use a waypoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Its own `istio.io/use-waypoint` label.
    Label,
    /// Its Namespace's label.
    Namespace,
}

/// A Service bound to a waypoint.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BoundService {
    pub namespace: String,
    pub name: String,
    pub via: Via,
}

/// A waypoint's own Services are never sent through a waypoint (istiod skips them).
fn is_waypoint_service(svc: &Object) -> bool {
    svc.label(waypoint_controller::labels::GATEWAY_NAME)
        .is_some()
        || svc.label(waypoint_controller::labels::MANAGED).is_some()
}

/// The Services bound to the waypoint `namespace/name`: by their own label, else by their
/// Namespace's (an opt-out `none` label wins over the Namespace).
pub fn bound_services(inv: &Inventory, namespace: &str, name: &str) -> Vec<BoundService> {
    inv.services
        .iter()
        .filter(|s| !is_waypoint_service(s))
        .filter_map(|s| {
            let via = match use_waypoint(s, &s.namespace) {
                UseWaypoint::OptOut => return None,
                u @ UseWaypoint::Waypoint { .. } => is(&u, namespace, name).then_some(Via::Label),
                UseWaypoint::Unset => inv
                    .namespaces
                    .iter()
                    .any(|ns| ns.name == s.namespace && namespace_uses(ns, namespace, name))
                    .then_some(Via::Namespace),
            }?;
            Some(BoundService {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                via,
            })
        })
        .collect()
}

/// Services still labelled for the waypoint `namespace/name` (after it is deleted they point
/// at nothing), by `namespace/name`.
pub fn labelled_services(inv: &Inventory, namespace: &str, name: &str) -> Vec<String> {
    inv.services
        .iter()
        .filter(|s| is(&use_waypoint(s, &s.namespace), namespace, name))
        .map(Object::key)
        .collect()
}

/// Whether the Namespace `ns` must be labelled to use the waypoint `name` in it: not if it
/// already does; if it names another waypoint (or `none`), only with `overwrite`.
pub fn needs_enroll(ns: &Object, name: &str, overwrite: bool) -> Result<bool, crate::Error> {
    match use_waypoint(ns, &ns.name) {
        UseWaypoint::Waypoint { namespace, name: w } if namespace == ns.name && w == name => {
            Ok(false)
        }
        UseWaypoint::Unset => Ok(true),
        _ if overwrite => Ok(true),
        other => Err(crate::Error::NamespaceBound {
            namespace: ns.name.clone(),
            current: match other {
                UseWaypoint::Waypoint { namespace, name } => format!("{namespace}/{name}"),
                _ => NONE.to_string(),
            },
            wanted: name.to_string(),
        }),
    }
}

/// The merge patch that points a Namespace at the waypoint `name` in that same namespace
/// (a stale `istio.io/use-waypoint-namespace` is removed, or it would point elsewhere).
pub fn enroll_patch(name: &str) -> Value {
    json!({"metadata": {"labels": {USE_WAYPOINT: name, USE_WAYPOINT_NAMESPACE: null}}})
}

/// The merge patch that removes both binding labels.
pub fn unenroll_patch() -> Value {
    json!({"metadata": {"labels": {USE_WAYPOINT: null, USE_WAYPOINT_NAMESPACE: null}}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(ns: &str, name: &str, labels: Value) -> Object {
        Object::from_value(json!({"metadata": {"namespace": ns, "name": name, "labels": labels}}))
    }

    fn inventory() -> Inventory {
        Inventory {
            namespaces: vec![
                obj("", "shop", json!({USE_WAYPOINT: "wp"})),
                obj(
                    "",
                    "other",
                    json!({USE_WAYPOINT: "wp", USE_WAYPOINT_NAMESPACE: "shop"}),
                ),
                obj("", "plain", json!({})),
            ],
            services: vec![
                obj("shop", "cart", json!({})),
                obj("shop", "legacy", json!({USE_WAYPOINT: "none"})),
                obj("shop", "pay", json!({USE_WAYPOINT: "second"})),
                obj(
                    "shop",
                    "wp",
                    json!({"gateway.networking.k8s.io/gateway-name": "wp"}),
                ),
                obj(
                    "plain",
                    "one",
                    json!({USE_WAYPOINT: "wp", USE_WAYPOINT_NAMESPACE: "shop"}),
                ),
                obj("plain", "two", json!({USE_WAYPOINT: "wp"})),
                obj("other", "x", json!({})),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn namespaces_bind_by_name_and_by_waypoint_namespace() {
        assert_eq!(
            bound_namespaces(&inventory(), "shop", "wp"),
            ["shop", "other"]
        );
        assert!(bound_namespaces(&inventory(), "plain", "wp").is_empty());
    }

    #[test]
    fn services_bind_by_label_or_namespace_and_none_opts_out() {
        let got: Vec<(String, Via)> = bound_services(&inventory(), "shop", "wp")
            .into_iter()
            .map(|b| (format!("{}/{}", b.namespace, b.name), b.via))
            .collect();
        assert_eq!(
            got,
            [
                ("shop/cart".to_string(), Via::Namespace),
                ("plain/one".to_string(), Via::Label),
                ("other/x".to_string(), Via::Namespace),
            ],
            "legacy opts out, pay uses another waypoint, wp is the waypoint's own Service, \
             plain/two names a waypoint in plain"
        );
        assert_eq!(
            labelled_services(&inventory(), "plain", "wp"),
            ["plain/two"]
        );
    }

    #[test]
    fn a_namespace_is_enrolled_unless_it_uses_this_or_without_overwrite_another_waypoint() {
        let ns = |labels| obj("", "shop", labels);
        assert_eq!(needs_enroll(&ns(json!({})), "wp", false).ok(), Some(true));
        assert_eq!(
            needs_enroll(&ns(json!({USE_WAYPOINT: "wp"})), "wp", false).ok(),
            Some(false)
        );
        let elsewhere = ns(json!({USE_WAYPOINT: "wp", USE_WAYPOINT_NAMESPACE: "infra"}));
        let e = needs_enroll(&elsewhere, "wp", false).expect_err("another namespace's wp");
        assert_eq!(
            e.to_string(),
            "Namespace shop already uses waypoint infra/wp (label istio.io/use-waypoint); \
             pass --overwrite to point it at wp"
        );
        assert_eq!(needs_enroll(&elsewhere, "wp", true).ok(), Some(true));
        let opted_out = ns(json!({USE_WAYPOINT: "none"}));
        let e = needs_enroll(&opted_out, "wp", false).expect_err("opted out");
        assert!(e.to_string().contains("already uses waypoint none"), "{e}");
        assert_eq!(needs_enroll(&opted_out, "wp", true).ok(), Some(true));
    }

    #[test]
    fn patches_set_and_remove_both_labels() {
        assert_eq!(
            enroll_patch("wp")["metadata"]["labels"],
            json!({"istio.io/use-waypoint": "wp", "istio.io/use-waypoint-namespace": null})
        );
        let un = unenroll_patch();
        assert!(un["metadata"]["labels"]
            .as_object()
            .is_some_and(|m| m.len() == 2 && m.values().all(Value::is_null)));
    }
}
