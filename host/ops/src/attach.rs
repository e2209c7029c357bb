//! Which routes and policies apply at a waypoint: parentRefs, VirtualService hosts and
//! targetRefs naming its Gateway, its GatewayClass or a Service bound to it.

use serde_json::Value;

use crate::binding::BoundService;
use crate::object::{AttachKind, Inventory, Object};

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// The waypoint a summary is for.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub class: &'a str,
    pub services: &'a [BoundService],
}

/// One route or policy and what attaches it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    pub kind: AttachKind,
    pub namespace: String,
    pub name: String,
    /// `parentRef Gateway wp`, `host reviews`, `targetRef Service bookinfo/reviews`...
    pub via: String,
}

/// A reference as Gateway API writes it: `group` (`""` is core), `kind`, `name`, `namespace`.
struct Ref<'a> {
    group: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: &'a str,
}

fn reference<'a>(v: &'a Value, default_kind: &'a str, own_ns: &'a str) -> Ref<'a> {
    let s = |k: &str| v[k].as_str();
    let kind = s("kind").unwrap_or(default_kind);
    Ref {
        // A parentRef's group defaults to Gateway API's; a targetRef's has no default, and
        // Istio reads a Service targetRef with group "" or "core".
        group: s("group").unwrap_or(if kind == "Service" { "" } else { GATEWAY_GROUP }),
        kind,
        name: s("name").unwrap_or_default(),
        namespace: s("namespace").filter(|n| !n.is_empty()).unwrap_or(own_ns),
    }
}

impl Target<'_> {
    fn bound(&self, namespace: &str, name: &str) -> bool {
        self.services
            .iter()
            .any(|s| s.namespace == namespace && s.name == name)
    }

    /// What the reference `r` attaches, if it is this waypoint, its class or a bound Service.
    fn via(&self, r: &Ref<'_>, word: &str) -> Option<String> {
        match (r.group, r.kind) {
            (GATEWAY_GROUP, "Gateway") if r.name == self.name && r.namespace == self.namespace => {
                Some(format!("{word} Gateway {}", r.name))
            }
            (GATEWAY_GROUP, "GatewayClass") if r.name == self.class && word == "targetRef" => {
                Some(format!("{word} GatewayClass {}", r.name))
            }
            ("" | "core", "Service") if self.bound(r.namespace, r.name) => {
                Some(format!("{word} Service {}/{}", r.namespace, r.name))
            }
            _ => None,
        }
    }

    /// The bound Service a VirtualService host names (`name` in its namespace, `name.ns`,
    /// `name.ns.svc`, `name.ns.svc.<domain>`).
    fn host_service(&self, host: &str, vs_namespace: &str) -> bool {
        let mut parts = host.splitn(4, '.');
        let name = parts.next().unwrap_or_default();
        let (ns, svc) = (parts.next(), parts.next());
        match (ns, svc) {
            (None, _) => self.bound(vs_namespace, name),
            (Some(ns), None | Some("svc")) => self.bound(ns, name),
            _ => false,
        }
    }

    fn attachment(&self, kind: AttachKind, o: &Object) -> Option<Attachment> {
        let spec = &o.value["spec"];
        let via = match kind {
            AttachKind::HttpRoute | AttachKind::GrpcRoute => spec["parentRefs"]
                .as_array()?
                .iter()
                .find_map(|p| self.via(&reference(p, "Gateway", &o.namespace), "parentRef")),
            AttachKind::VirtualService => spec["hosts"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .find(|h| self.host_service(h, &o.namespace))
                .map(|h| format!("host {h}")),
            AttachKind::AuthorizationPolicy => {
                let many = spec["targetRefs"].as_array().into_iter().flatten();
                let one = spec.get("targetRef").filter(|r| r.is_object());
                // targetRefs are local to the policy's namespace.
                many.chain(one).find_map(|r| {
                    let mut r = reference(r, "", &o.namespace);
                    r.namespace = &o.namespace;
                    self.via(&r, "targetRef")
                })
            }
        }?;
        Some(Attachment {
            kind,
            namespace: o.namespace.clone(),
            name: o.name.clone(),
            via,
        })
    }
}

/// Every route and policy of `inv` attached to `target`, routes first, each kind in
/// `namespace/name` order.
pub fn attachments(inv: &Inventory, target: &Target<'_>) -> Vec<Attachment> {
    AttachKind::ALL
        .into_iter()
        .flat_map(|k| {
            inv.attachable
                .get(&k)
                .into_iter()
                .flatten()
                .filter_map(move |o| target.attachment(k, o))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::Via;
    use serde_json::json;

    fn obj(ns: &str, name: &str, spec: Value) -> Object {
        Object::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
    }

    fn svc(ns: &str, name: &str) -> BoundService {
        BoundService {
            namespace: ns.into(),
            name: name.into(),
            via: Via::Namespace,
        }
    }

    fn check(kind: AttachKind, objects: Vec<Object>) -> Vec<(String, String)> {
        let services = [svc("shop", "cart"), svc("web", "front")];
        let target = Target {
            namespace: "shop",
            name: "wp",
            class: "waypoint",
            services: &services,
        };
        let mut inv = Inventory::default();
        inv.attachable.insert(kind, objects);
        attachments(&inv, &target)
            .into_iter()
            .map(|a| (format!("{}/{}", a.namespace, a.name), a.via))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn routes_attach_by_a_parent_gateway_or_a_bound_service() {
        let got = check(
            AttachKind::HttpRoute,
            vec![
                obj("shop", "to-gw", json!({"parentRefs": [{"name": "wp"}]})),
                obj(
                    "web",
                    "to-gw-ns",
                    json!({"parentRefs": [{"name": "wp", "namespace": "shop"}]}),
                ),
                obj(
                    "web",
                    "other-ns-gw",
                    json!({"parentRefs": [{"name": "wp"}]}),
                ),
                obj(
                    "shop",
                    "svc",
                    json!({"parentRefs": [{"group": "", "kind": "Service", "name": "cart"}]}),
                ),
                obj(
                    "shop",
                    "unbound",
                    json!({"parentRefs": [{"group": "", "kind": "Service", "name": "db"}]}),
                ),
                obj("shop", "no-refs", json!({})),
            ],
        );
        assert_eq!(
            got,
            pairs(&[
                ("shop/to-gw", "parentRef Gateway wp"),
                ("web/to-gw-ns", "parentRef Gateway wp"),
                ("shop/svc", "parentRef Service shop/cart"),
            ])
        );
    }

    #[test]
    fn virtual_services_attach_by_the_hosts_of_bound_services() {
        let got = check(
            AttachKind::VirtualService,
            vec![
                obj("shop", "short", json!({"hosts": ["cart"]})),
                obj("web", "short-elsewhere", json!({"hosts": ["cart"]})),
                obj(
                    "web",
                    "dotted",
                    json!({"hosts": ["x.example.com", "cart.shop"]}),
                ),
                obj(
                    "any",
                    "fqdn",
                    json!({"hosts": ["front.web.svc.cluster.local"]}),
                ),
                obj(
                    "any",
                    "external",
                    json!({"hosts": ["cart.shop.example.com"]}),
                ),
            ],
        );
        assert_eq!(
            got,
            pairs(&[
                ("shop/short", "host cart"),
                ("web/dotted", "host cart.shop"),
                ("any/fqdn", "host front.web.svc.cluster.local"),
            ])
        );
    }

    #[test]
    fn policies_attach_by_target_refs_in_their_own_namespace() {
        let gw = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "wp"});
        let got = check(
            AttachKind::AuthorizationPolicy,
            vec![
                obj("shop", "gw", json!({"targetRefs": [gw]})),
                obj("web", "gw-elsewhere", json!({"targetRefs": [gw]})),
                obj(
                    "shop",
                    "single",
                    json!({"targetRef": {"kind": "Service", "group": "", "name": "cart"}}),
                ),
                obj(
                    "web",
                    "svc",
                    json!({"targetRefs": [{"kind": "Service", "group": "core", "name": "front"}]}),
                ),
                obj(
                    "istio-system",
                    "class",
                    json!({"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "GatewayClass", "name": "waypoint"}]}),
                ),
                obj(
                    "shop",
                    "selector",
                    json!({"selector": {"matchLabels": {"app": "cart"}}}),
                ),
            ],
        );
        assert_eq!(
            got,
            pairs(&[
                ("shop/gw", "targetRef Gateway wp"),
                ("shop/single", "targetRef Service shop/cart"),
                ("web/svc", "targetRef Service web/front"),
                ("istio-system/class", "targetRef GatewayClass waypoint"),
            ])
        );
    }
}
