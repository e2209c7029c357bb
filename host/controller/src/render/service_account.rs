//! The waypoint's ServiceAccount: its name is the identity ztunnel expects of the pods
//! (`spiffe://<td>/ns/<ns>/sa/<gw>`) and the one istiod's implicit allow policy names.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use serde_json::json;

use super::{build, Target};
use crate::Error;

pub fn service_account(
    t: &Target,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<ServiceAccount, Error> {
    build(
        "ServiceAccount",
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": t.metadata(labels, annotations),
        }),
    )
}
