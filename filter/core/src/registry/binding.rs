//! Waypoint binding as Istio does it: which Gateways are waypoints, and which services use
//! one (`istio.io/use-waypoint` on the Service/ServiceEntry, else on its Namespace).

use std::collections::BTreeMap;

use crate::error::Diagnostics;
use crate::resource::RawResource;
use crate::service::ServiceInfo;

/// Gateway classes that make a Gateway a waypoint.
pub const WAYPOINT_CLASSES: &[&str] = &["istio-waypoint", "waypoint"];

/// A waypoint Gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waypoint {
    pub namespace: String,
    pub name: String,
    pub class: String,
}

/// `namespace/name` of a waypoint.
pub type WaypointRef = (String, String);

/// Find every waypoint Gateway in the config.
pub fn find_waypoints(resources: &[RawResource], diags: &mut Diagnostics) -> Vec<Waypoint> {
    let mut out = Vec::new();
    for r in resources
        .iter()
        .filter(|r| r.kind == "Gateway" && r.group() == "gateway.networking.k8s.io")
    {
        let class = r
            .value
            .get("spec")
            .and_then(|s| s.get("gatewayClassName"))
            .and_then(|c| c.as_str());
        match class {
            Some(c) if WAYPOINT_CLASSES.contains(&c) => out.push(Waypoint {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                class: c.to_string(),
            }),
            Some(_) => {}
            None => diags.error(r.error("spec.gatewayClassName", "required")),
        }
    }
    out
}

/// The waypoint a service uses, per Istio: the Service's own `istio.io/use-waypoint` label
/// wins over its Namespace's; `none` opts out; `istio.io/use-waypoint-namespace` names the
/// waypoint's namespace (default: the labelled object's namespace).
/// (istio.io: ambient/usage/waypoint, "Configure a pod/service to use a waypoint".)
pub fn service_waypoint(
    svc: &ServiceInfo,
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
) -> Option<WaypointRef> {
    let from = |labels: &BTreeMap<String, String>| -> Option<Option<WaypointRef>> {
        let name = labels.get("istio.io/use-waypoint")?;
        if name == "none" || name.is_empty() {
            return Some(None);
        }
        let ns = labels
            .get("istio.io/use-waypoint-namespace")
            .cloned()
            .unwrap_or_else(|| svc.namespace.clone());
        Some(Some((ns, name.clone())))
    };
    if let Some(v) = from(&svc.labels) {
        return v;
    }
    namespaces.get(&svc.namespace).and_then(from).flatten()
}
