//! The Gateway's `spec.infrastructure.parametersRef` ConfigMap: replicas, resources, an
//! autoscaler and a disruption budget, parsed strictly (an unknown key is an error).
//!
//! Keys (each value YAML): `replicas` (integer), `resources` (a container's
//! ResourceRequirements), `horizontalPodAutoscaler` (`minReplicas`, `maxReplicas`,
//! optional `metrics`, `behavior`; the `spec:` wrapper Istio's ConfigMaps use is accepted),
//! `podDisruptionBudget` (`minAvailable` or `maxUnavailable`, also under `spec:`). Istio reads
//! the same key names as strategic-merge patches (`deploymentcontroller.go`); we take only
//! these fields.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscalerBehavior, MetricSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Parsed parameters; `Default` is "no ConfigMap".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    pub replicas: Option<i32>,
    pub resources: Option<ResourceRequirements>,
    pub autoscaler: Option<Autoscaler>,
    pub disruption_budget: Option<DisruptionBudget>,
}

/// The HPA's spec without its target (always the waypoint's Deployment).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Autoscaler {
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    pub metrics: Option<Vec<MetricSpec>>,
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// The PDB's spec without its selector (always the waypoint's pods).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisruptionBudget {
    pub min_available: Option<IntOrString>,
    pub max_unavailable: Option<IntOrString>,
}

/// Why a parameters ConfigMap is refused; the message goes into the Gateway's `Accepted`
/// condition (reason `InvalidParameters`).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamsError {
    #[error("parametersRef must be a core ConfigMap, got group {group:?} kind {kind:?}")]
    Kind { group: String, kind: String },
    #[error("parametersRef ConfigMap {0:?} not found")]
    NotFound(String),
    #[error("ConfigMap {name:?} key {key:?}: unknown parameter (known: replicas, resources, horizontalPodAutoscaler, podDisruptionBudget)")]
    UnknownKey { name: String, key: String },
    #[error("ConfigMap {name:?} key {key:?}: {message}")]
    Invalid {
        name: String,
        key: String,
        message: String,
    },
}

/// Parse the ConfigMap's `data`. `binaryData` is not read.
pub fn parse(cm: &ConfigMap) -> Result<Params, ParamsError> {
    let name = cm.metadata.name.clone().unwrap_or_default();
    let empty = BTreeMap::new();
    let data = cm.data.as_ref().unwrap_or(&empty);
    let mut p = Params::default();
    for (key, value) in data {
        let invalid = |message: String| ParamsError::Invalid {
            name: name.clone(),
            key: key.clone(),
            message,
        };
        match key.as_str() {
            "replicas" => {
                let n: i32 = value.trim().parse().map_err(|e| invalid(format!("{e}")))?;
                if n < 0 {
                    return Err(invalid("must not be negative".into()));
                }
                p.replicas = Some(n);
            }
            "resources" => p.resources = Some(yaml(value).map_err(invalid)?),
            "horizontalPodAutoscaler" => {
                let a: Autoscaler = spec_yaml(value).map_err(invalid)?;
                if a.max_replicas < 1 || a.min_replicas.is_some_and(|m| m < 1 || m > a.max_replicas)
                {
                    return Err(invalid("need 1 <= minReplicas <= maxReplicas".into()));
                }
                p.autoscaler = Some(a);
            }
            "podDisruptionBudget" => {
                let b: DisruptionBudget = spec_yaml(value).map_err(invalid)?;
                if b.min_available.is_some() == b.max_unavailable.is_some() {
                    return Err(invalid(
                        "set exactly one of minAvailable and maxUnavailable".into(),
                    ));
                }
                p.disruption_budget = Some(b);
            }
            _ => {
                return Err(ParamsError::UnknownKey {
                    name,
                    key: key.clone(),
                })
            }
        }
    }
    Ok(p)
}

fn yaml<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_yaml::from_str(s).map_err(|e| e.to_string())
}

/// A value given either bare or under `spec:` (Istio's patch form).
fn spec_yaml<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    let v: serde_json::Value = yaml(s)?;
    let v = match v {
        serde_json::Value::Object(mut m) if m.len() == 1 && m.contains_key("spec") => {
            m.remove("spec").unwrap_or_default()
        }
        other => other,
    };
    serde_json::from_value(v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(pairs: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("params".into()),
                ..Default::default()
            },
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn reads_every_key_and_the_spec_wrapper() {
        let p = parse(&cm(&[
            ("replicas", "3"),
            ("resources", "requests: {cpu: 200m}"),
            (
                "horizontalPodAutoscaler",
                "spec: {minReplicas: 2, maxReplicas: 5}",
            ),
            ("podDisruptionBudget", "minAvailable: 1"),
        ]))
        .expect("valid");
        assert_eq!(p.replicas, Some(3));
        assert_eq!(p.autoscaler.as_ref().map(|a| a.max_replicas), Some(5));
        assert_eq!(p.autoscaler.and_then(|a| a.min_replicas), Some(2));
        assert_eq!(
            p.disruption_budget.and_then(|b| b.min_available),
            Some(IntOrString::Int(1))
        );
        assert!(p.resources.is_some());
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        assert!(matches!(
            parse(&cm(&[("replica", "3")])),
            Err(ParamsError::UnknownKey { .. })
        ));
        assert!(matches!(
            parse(&cm(&[("replicas", "-1")])),
            Err(ParamsError::Invalid { .. })
        ));
        assert!(matches!(
            parse(&cm(&[(
                "horizontalPodAutoscaler",
                "minReplicas: 4\nmaxReplicas: 2"
            )])),
            Err(ParamsError::Invalid { .. })
        ));
        assert!(matches!(
            parse(&cm(&[(
                "podDisruptionBudget",
                "{minAvailable: 1, maxUnavailable: 1}"
            )])),
            Err(ParamsError::Invalid { .. })
        ));
        assert!(matches!(
            parse(&cm(&[(
                "horizontalPodAutoscaler",
                "maxReplicas: 2\ntargetCPU: 3"
            )])),
            Err(ParamsError::Invalid { .. })
        ));
    }
}
