//! The waypoint's Service: ztunnel resolves the Gateway's Hostname address to it and needs
//! port 15008 (`state.rs` `fetch_waypoint`, Waypoint resolution mode); ports and annotation as
//! Istio's deployment controller renders them (`status-port` 15021, `mesh` 15008 `hbone`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use serde_json::json;

use super::{build, Target};
use crate::{labels, Error};

pub fn service(
    t: &Target,
    labels_: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<Service, Error> {
    let mut annotations = annotations.clone();
    annotations.insert(labels::TRAFFIC_DISTRIBUTION.into(), "PreferClose".into());
    build(
        "Service",
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": t.metadata(labels_, &annotations),
            "spec": {
                "type": "ClusterIP",
                "selector": t.selector(),
                "ports": [
                    {"name": "status-port", "port": labels::STATUS_PORT, "targetPort": labels::STATUS_PORT,
                     "protocol": "TCP", "appProtocol": "tcp"},
                    {"name": "mesh", "port": labels::HBONE_PORT, "targetPort": labels::HBONE_PORT,
                     "protocol": "TCP", "appProtocol": "hbone"},
                ],
            },
        }),
    )
}
