//! `list` and `status` as pure functions of an [`Inventory`]: the waypoint Gateways chosen,
//! one row each, or each one's readiness, bindings, attached routes and policies.

use crate::attach::{self, Attachment, Target};
use crate::binding::{self, BoundService};
use crate::cert::CertStatus;
use crate::gateway::{self, Cond};
use crate::names;
use crate::object::{Inventory, Object};

/// Which waypoints a verb is about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// Only this namespace (`None`: all, `-A`).
    pub namespace: Option<String>,
    /// Only this waypoint.
    pub name: Option<String>,
    /// Our class names (Istio's `istio-waypoint` always counts).
    pub classes: Vec<String>,
}

impl Selection {
    /// The waypoint Gateways of `inv` it selects, in `namespace/name` order.
    pub fn gateways<'a>(&self, inv: &'a Inventory) -> Vec<&'a Object> {
        inv.gateways
            .iter()
            .filter(|g| gateway::is_waypoint(g, &self.classes))
            .filter(|g| self.namespace.as_ref().is_none_or(|n| *n == g.namespace))
            .filter(|g| self.name.as_ref().is_none_or(|n| *n == g.name))
            .collect()
    }
}

/// The traffic a waypoint handles: its label, else its class's, else istiod's default.
pub fn traffic(inv: &Inventory, gw: &Object) -> String {
    gateway::traffic(gw)
        .or_else(|| {
            let class = gateway::class(gw);
            inv.classes
                .iter()
                .find(|c| c.name == class)
                .and_then(|c| c.label(names::WAYPOINT_FOR))
        })
        .unwrap_or(names::TrafficType::Service.as_str())
        .to_string()
}

/// One line of `list`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ListRow {
    pub namespace: String,
    pub name: String,
    pub class: String,
    pub revision: String,
    pub traffic: String,
    /// The `Programmed` condition's status, `Unknown` when none is written.
    pub programmed: String,
}

pub fn list(inv: &Inventory, sel: &Selection) -> Vec<ListRow> {
    sel.gateways(inv)
        .into_iter()
        .map(|g| ListRow {
            namespace: g.namespace.clone(),
            name: g.name.clone(),
            class: gateway::class(g).to_string(),
            revision: gateway::revision(g).to_string(),
            traffic: traffic(inv, g),
            programmed: gateway::condition(g, "Programmed")
                .map_or_else(|| "Unknown".to_string(), |c| c.status),
        })
        .collect()
}

/// Everything `status` says about one waypoint.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WaypointStatus {
    pub namespace: String,
    pub name: String,
    pub class: String,
    pub revision: String,
    pub traffic: String,
    pub programmed: Option<Cond>,
    pub accepted: Option<Cond>,
    pub addresses: Vec<String>,
    /// Namespaces labelled to use it.
    pub namespaces: Vec<String>,
    pub services: Vec<BoundService>,
    pub routes: Vec<Attachment>,
    pub policies: Vec<Attachment>,
    pub certificate: CertStatus,
    /// What looks wrong or surprising (no HBONE listener, nothing bound...).
    pub notes: Vec<String>,
}

impl WaypointStatus {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Ready: the Gateway is `Programmed=True`.
    pub fn ready(&self) -> bool {
        self.programmed.as_ref().is_some_and(|c| c.status == "True")
    }
}

/// The status of every selected waypoint; the certificate is `unknown (why)`, to be filled in
/// by whoever can ask the waypoint's admin.
pub fn status(inv: &Inventory, sel: &Selection, why_no_cert: &str) -> Vec<WaypointStatus> {
    sel.gateways(inv)
        .into_iter()
        .map(|g| one(inv, g, why_no_cert))
        .collect()
}

fn one(inv: &Inventory, g: &Object, why_no_cert: &str) -> WaypointStatus {
    let class = gateway::class(g).to_string();
    let traffic = traffic(inv, g);
    let services = binding::bound_services(inv, &g.namespace, &g.name);
    let (routes, policies): (Vec<_>, Vec<_>) = attach::attachments(
        inv,
        &Target {
            namespace: &g.namespace,
            name: &g.name,
            class: &class,
            services: &services,
        },
    )
    .into_iter()
    .partition(|a| a.kind.is_route());
    let namespaces = binding::bound_namespaces(inv, &g.namespace, &g.name);
    let mut notes = Vec::new();
    if !gateway::has_mesh_listener(g) {
        notes.push(format!(
            "no {} listener on port {}: ztunnel cannot send traffic to it",
            names::PROTOCOL,
            names::HBONE_PORT
        ));
    }
    if matches!(traffic.as_str(), "workload" | "none") && !services.is_empty() {
        notes.push(format!(
            "{}={traffic}: the bound Services' traffic does not go through it",
            names::WAYPOINT_FOR
        ));
    }
    if namespaces.is_empty() && services.is_empty() {
        notes.push(format!(
            "no Namespace or Service uses it (label one {}={})",
            names::USE_WAYPOINT,
            g.name
        ));
    }
    WaypointStatus {
        namespace: g.namespace.clone(),
        name: g.name.clone(),
        revision: gateway::revision(g).to_string(),
        traffic,
        programmed: gateway::condition(g, "Programmed"),
        accepted: gateway::condition(g, "Accepted"),
        addresses: gateway::addresses(g),
        namespaces,
        services,
        routes,
        policies,
        certificate: CertStatus::unknown(why_no_cert),
        notes,
        class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn obj(v: Value) -> Object {
        Object::from_value(v)
    }

    fn inventory() -> Inventory {
        let mut inv = Inventory {
            gateways: vec![
                obj(json!({"metadata": {"namespace": "a", "name": "wp"},
                    "spec": {"gatewayClassName": "waypoint",
                             "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]},
                    "status": {"conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed", "message": ""}]}})),
                obj(
                    json!({"metadata": {"namespace": "b", "name": "istio", "labels": {"istio.io/waypoint-for": "workload", "istio.io/rev": "canary"}},
                    "spec": {"gatewayClassName": "istio-waypoint", "listeners": []}}),
                ),
                obj(json!({"metadata": {"namespace": "a", "name": "ingress"},
                    "spec": {"gatewayClassName": "nginx", "listeners": []}})),
            ],
            classes: vec![obj(
                json!({"metadata": {"name": "waypoint", "labels": {"istio.io/waypoint-for": "all"}}}),
            )],
            namespaces: vec![obj(
                json!({"metadata": {"name": "a", "labels": {"istio.io/use-waypoint": "wp"}}}),
            )],
            services: vec![obj(json!({"metadata": {"namespace": "a", "name": "cart"}}))],
            ..Default::default()
        };
        inv.attachable.insert(
            crate::object::AttachKind::AuthorizationPolicy,
            vec![obj(json!({"metadata": {"namespace": "a", "name": "deny"},
                "spec": {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "wp"}]}}))],
        );
        inv.attachable.insert(
            crate::object::AttachKind::VirtualService,
            vec![obj(
                json!({"metadata": {"namespace": "a", "name": "cart"}, "spec": {"hosts": ["cart"]}}),
            )],
        );
        inv
    }

    fn all(classes: &[&str]) -> Selection {
        Selection {
            classes: classes.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn list_has_waypoints_of_our_and_istios_class_only() {
        let rows = list(&inventory(), &all(&["waypoint"]));
        let got: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{}/{} {} {} {} {}",
                    r.namespace, r.name, r.class, r.revision, r.traffic, r.programmed
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "a/wp waypoint default all True",
                "b/istio istio-waypoint canary workload Unknown"
            ],
            "the class's waypoint-for when the Gateway has none; nginx is no waypoint"
        );
        let only_b = Selection {
            namespace: Some("b".into()),
            ..all(&["waypoint"])
        };
        assert_eq!(list(&inventory(), &only_b).len(), 1);
        assert_eq!(list(&inventory(), &all(&["other"])).len(), 1);
    }

    #[test]
    fn status_gathers_bindings_attachments_and_notes() {
        let sel = Selection {
            name: Some("wp".into()),
            ..all(&["waypoint"])
        };
        let st = status(&inventory(), &sel, "no --admin given");
        assert_eq!(st.len(), 1);
        let s = &st[0];
        assert!(s.ready());
        assert_eq!(s.namespaces, ["a"]);
        assert_eq!(s.services.len(), 1);
        assert_eq!(s.routes.len(), 1);
        assert_eq!(s.routes[0].via, "host cart");
        assert_eq!(s.policies[0].via, "targetRef Gateway wp");
        assert!(s.notes.is_empty(), "{:?}", s.notes);
        assert_eq!(s.certificate, CertStatus::unknown("no --admin given"));

        let only_istio = status(&inventory(), &all(&[]), "x");
        assert_eq!(only_istio.len(), 1, "class waypoint is not ours here");
        let istio = &only_istio[0];
        assert!(!istio.ready() && istio.programmed.is_none());
        assert!(istio.notes.iter().any(|n| n.contains("HBONE listener")));
        assert!(istio
            .notes
            .iter()
            .any(|n| n.contains("no Namespace or Service")));
    }
}
