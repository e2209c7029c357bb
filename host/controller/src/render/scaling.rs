//! The optional HorizontalPodAutoscaler (targets the Deployment; default metric CPU 80%) and
//! PodDisruptionBudget (selects the pods), from the parametersRef ConfigMap.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::json;

use super::{build, Target};
use crate::params::{Autoscaler, DisruptionBudget};
use crate::Error;

/// CPU target when the parameters name no metric (the HPA API's own default is 80%).
const DEFAULT_CPU_UTILIZATION: i32 = 80;

pub fn autoscaler(
    t: &Target,
    a: &Autoscaler,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<HorizontalPodAutoscaler, Error> {
    let metrics = match &a.metrics {
        Some(m) => json!(m),
        None => json!([{
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}},
        }]),
    };
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": t.name},
        "minReplicas": a.min_replicas.unwrap_or(1),
        "maxReplicas": a.max_replicas,
        "metrics": metrics,
    });
    if let Some(b) = &a.behavior {
        spec["behavior"] = json!(b);
    }
    build(
        "HorizontalPodAutoscaler",
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": t.metadata(labels, annotations),
            "spec": spec,
        }),
    )
}

pub fn disruption_budget(
    t: &Target,
    b: &DisruptionBudget,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<PodDisruptionBudget, Error> {
    let mut spec = json!({"selector": {"matchLabels": t.selector()}});
    if let Some(m) = &b.min_available {
        spec["minAvailable"] = json!(m);
    }
    if let Some(m) = &b.max_unavailable {
        spec["maxUnavailable"] = json!(m);
    }
    build(
        "PodDisruptionBudget",
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": t.metadata(labels, annotations),
            "spec": spec,
        }),
    )
}
