//! The waypoint Gateway: the one `apply` writes (class, `mesh` HBONE listener on 15008,
//! `istio.io/waypoint-for`), and what `list`/`status` read back from any Gateway.

use std::collections::BTreeMap;

use gateway_api::gateways::{Gateway, GatewayListeners, GatewaySpec};
use kube::api::ObjectMeta;
use serde_json::Value;

use crate::names::{self, TrafficType};
use crate::object::Object;

/// What `apply` is asked to create.
#[derive(Clone, Debug, PartialEq)]
pub struct WaypointSpec {
    pub namespace: String,
    pub name: String,
    /// `spec.gatewayClassName`.
    pub class: String,
    /// `istio.io/waypoint-for`; `None` leaves the choice to the class (as istioctl does).
    pub traffic: Option<TrafficType>,
    /// `istio.io/rev`, if given.
    pub revision: Option<String>,
}

impl WaypointSpec {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The Gateway `apply` writes, as `istioctl waypoint generate` prints it but of `spec.class`.
pub fn waypoint_gateway(spec: &WaypointSpec) -> Result<Gateway, crate::Error> {
    names::check_name(&spec.name).map_err(|reason| crate::Error::InvalidName {
        name: spec.name.clone(),
        reason,
    })?;
    let mut labels = BTreeMap::new();
    if let Some(t) = spec.traffic {
        labels.insert(names::WAYPOINT_FOR.to_string(), t.to_string());
    }
    if let Some(r) = &spec.revision {
        labels.insert(names::REVISION.to_string(), r.clone());
    }
    Ok(Gateway {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            namespace: Some(spec.namespace.clone()),
            labels: (!labels.is_empty()).then_some(labels),
            ..Default::default()
        },
        spec: GatewaySpec {
            gateway_class_name: spec.class.clone(),
            listeners: vec![GatewayListeners {
                name: names::LISTENER.to_string(),
                port: names::HBONE_PORT,
                protocol: names::PROTOCOL.to_string(),
                ..Default::default()
            }],
            ..Default::default()
        },
        status: None,
    })
}

/// One condition of a Gateway's status.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Cond {
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// A Gateway's class.
pub fn class(gw: &Object) -> &str {
    gw.value["spec"]["gatewayClassName"]
        .as_str()
        .unwrap_or_default()
}

/// Whether `gw` is a waypoint: its class is ours (`classes`) or Istio's.
pub fn is_waypoint(gw: &Object, classes: &[String]) -> bool {
    let c = class(gw);
    c == names::ISTIO_CLASS || classes.iter().any(|k| k == c)
}

/// The condition `type_` of a Gateway's status, if written.
pub fn condition(gw: &Object, type_: &str) -> Option<Cond> {
    gw.value["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(type_))
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            Cond {
                status: s("status"),
                reason: s("reason"),
                message: s("message"),
            }
        })
}

/// Whether the Gateway is `Programmed=True` (what `apply --wait` waits for).
pub fn programmed(gw: &Object) -> bool {
    condition(gw, "Programmed").is_some_and(|c| c.status == "True")
}

/// `status.addresses[].value`.
pub fn addresses(gw: &Object) -> Vec<String> {
    gw.value["status"]["addresses"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `istio.io/waypoint-for` of the Gateway (the class may set a default `status` cannot see).
pub fn traffic(gw: &Object) -> Option<&str> {
    gw.label(names::WAYPOINT_FOR)
}

/// The `istio.io/rev` label, `default` when absent (as istioctl prints it).
pub fn revision(gw: &Object) -> &str {
    gw.label(names::REVISION).unwrap_or("default")
}

/// Whether the Gateway has the waypoint listener (`HBONE` on 15008).
pub fn has_mesh_listener(gw: &Object) -> bool {
    gw.value["spec"]["listeners"].as_array().is_some_and(|ls| {
        ls.iter().any(|l| {
            l["protocol"].as_str() == Some(names::PROTOCOL)
                && l["port"].as_i64() == Some(i64::from(names::HBONE_PORT))
        })
    })
}

/// A Gateway as JSON, for the summaries (which read every source the same way).
pub fn to_object(gw: &Gateway) -> Result<Object, crate::Error> {
    let v: Value = serde_json::to_value(gw).map_err(|e| crate::Error::Encode {
        what: format!(
            "Gateway {}/{}",
            gw.metadata.namespace.as_deref().unwrap_or_default(),
            gw.metadata.name.as_deref().unwrap_or_default()
        ),
        reason: e.to_string(),
    })?;
    Ok(Object::from_value(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(traffic: Option<TrafficType>) -> WaypointSpec {
        WaypointSpec {
            namespace: "bookinfo".into(),
            name: "wp".into(),
            class: "waypoint".into(),
            traffic,
            revision: None,
        }
    }

    #[test]
    fn the_gateway_has_our_class_the_hbone_listener_and_the_traffic_label() {
        let gw = waypoint_gateway(&spec(Some(TrafficType::All))).expect("valid");
        let v = serde_json::to_value(&gw).expect("json");
        assert_eq!(v["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(v["kind"], "Gateway");
        assert_eq!(
            v["metadata"],
            json!({"name": "wp", "namespace": "bookinfo", "labels": {"istio.io/waypoint-for": "all"}})
        );
        assert_eq!(
            v["spec"],
            json!({"gatewayClassName": "waypoint",
                   "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]})
        );
        assert!(v.get("status").is_none_or(Value::is_null));
        let o = to_object(&gw).expect("object");
        assert!(has_mesh_listener(&o) && traffic(&o) == Some("all"));
    }

    #[test]
    fn without_for_or_revision_the_gateway_has_no_labels() {
        let gw = waypoint_gateway(&spec(None)).expect("valid");
        assert!(gw.metadata.labels.is_none());
        let mut s = spec(None);
        s.revision = Some("canary".into());
        let o = to_object(&waypoint_gateway(&s).expect("valid")).expect("object");
        assert_eq!(revision(&o), "canary");
    }

    #[test]
    fn a_bad_name_is_refused_naming_it() {
        let mut s = spec(None);
        s.name = "none".into();
        let e = waypoint_gateway(&s).expect_err("an error").to_string();
        assert!(e.contains("\"none\"") && e.contains("reserved"), "{e}");
    }

    #[test]
    fn status_fields_are_read_from_the_conditions_and_addresses() {
        let gw = Object::from_value(json!({
            "metadata": {"name": "wp", "namespace": "ns"},
            "spec": {"gatewayClassName": "istio-waypoint"},
            "status": {
                "addresses": [{"type": "Hostname", "value": "wp.ns.svc.cluster.local"}],
                "conditions": [
                    {"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""},
                    {"type": "Programmed", "status": "False", "reason": "Pending", "message": "no pod"}
                ]
            }
        }));
        assert!(is_waypoint(&gw, &[]) && !programmed(&gw));
        assert_eq!(
            condition(&gw, "Programmed").map(|c| c.reason),
            Some("Pending".into())
        );
        assert_eq!(addresses(&gw), ["wp.ns.svc.cluster.local"]);
        assert_eq!(revision(&gw), "default");
        let other = Object::from_value(json!({"spec": {"gatewayClassName": "nginx"}}));
        assert!(!is_waypoint(&other, &["waypoint".to_string()]));
        assert!(condition(&other, "Programmed").is_none());
    }
}
