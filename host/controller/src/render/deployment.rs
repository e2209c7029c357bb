//! The waypoint's Deployment, after Istio's waypoint template (`files/waypoint.yaml`): pods
//! labelled with the gateway name and `istio.io/dataplane-mode: none`, uid 1337, read-only
//! root, probes on `/healthz/ready` :15021, the `istio-ca` token and the mesh root mounted.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{json, Value};

use super::{build, Target};
use crate::params::Params;
use crate::{labels, Error, Mode, Options};

/// Istio's proxy defaults (`global.proxy.resources`): requests 100m/128Mi, limits 2/1Gi.
fn default_resources() -> Value {
    json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}})
}

pub fn deployment(
    t: &Target,
    o: &Options,
    p: &Params,
    labels_: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<Deployment, Error> {
    let mut pod_labels = labels_.clone();
    pod_labels.insert(labels::DATAPLANE_MODE.into(), "none".into());
    pod_labels.insert(labels::SIDECAR_INJECT.into(), "false".into());
    pod_labels.insert(labels::CANONICAL_NAME.into(), t.name.clone());
    let mut pod_annotations = annotations.clone();
    pod_annotations.insert("prometheus.io/scrape".into(), "true".into());
    pod_annotations.insert(
        "prometheus.io/port".into(),
        labels::METRICS_PORT.to_string(),
    );
    pod_annotations.insert("prometheus.io/path".into(), "/stats/prometheus".into());

    let resources = match &p.resources {
        Some(r) => json!(r),
        None => default_resources(),
    };
    let containers = match o.mode {
        Mode::Host => vec![host_container(t, o, resources)],
        Mode::Envoy => envoy_containers(t, o, resources),
    };
    let mut spec = json!({
        "selector": {"matchLabels": t.selector()},
        "template": {
            "metadata": {"labels": pod_labels, "annotations": pod_annotations},
            "spec": {
                "serviceAccountName": t.name,
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "containers": containers,
                "volumes": [
                    {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
                        "audience": labels::TOKEN_AUDIENCE, "expirationSeconds": 43200, "path": "istio-token"}}]}},
                    {"name": "istiod-ca-cert", "configMap": {"name": labels::ROOT_CONFIGMAP}},
                    {"name": "tmp", "emptyDir": {}},
                ],
            },
        },
    });
    // With an autoscaler the HPA owns the replica count; applying one here would fight it.
    if p.autoscaler.is_none() {
        spec["replicas"] = json!(p.replicas.unwrap_or(1));
    }
    build(
        "Deployment",
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": t.metadata(labels_, annotations),
            "spec": spec,
        }),
    )
}

/// The standalone host: `waypoint run --kube`, serving HBONE, readiness and metrics.
fn host_container(t: &Target, o: &Options, resources: Value) -> Value {
    // `--kube`: config from the API server; `--ca`: certificate from Istio's CA with the
    // mounted token and root (paths, CA address, cluster id, identity from the env below).
    let mut args = vec![
        "run".to_string(),
        "--kube".into(),
        "--waypoint".into(),
        t.namespaced(),
        "--mesh-namespace".into(),
        o.istio_namespace.clone(),
        "--ca".into(),
    ];
    args.extend(o.extra_args.iter().cloned());
    let mut c = base_container("waypoint", o, args, resources);
    c["ports"] = ports();
    c["readinessProbe"] = readiness(15, 4);
    c["startupProbe"] = readiness(1, 30);
    c
}

/// Stock Envoy with our module (listening on the same ports) plus `waypoint xds --kube`
/// serving it ADS on loopback.
fn envoy_containers(t: &Target, o: &Options, resources: Value) -> Vec<Value> {
    let mut envoy = base_container(
        "envoy",
        o,
        vec![
            "-c".into(),
            "/etc/waypoint/envoy-bootstrap.yaml".into(),
            // The image's bootstrap (made by `waypoint bootstrap --xds`) names a placeholder
            // waypoint; Envoy merges this over it, so xDS serves this Gateway's resources.
            "--config-yaml".into(),
            json!({"node": {
                "id": format!("waypoint~{}", t.namespaced()),
                "cluster": t.namespaced(),
                "metadata": {"WAYPOINT": t.namespaced()},
            }})
            .to_string(),
            "--log-level".into(),
            "warn".into(),
        ],
        resources,
    );
    envoy["command"] = json!(["/usr/local/bin/envoy"]);
    if let Some(env) = envoy["env"].as_array_mut() {
        env.push(json!({"name": "ENVOY_DYNAMIC_MODULES_SEARCH_PATH", "value": "/usr/local/lib/waypoint"}));
    }
    envoy["ports"] = ports();
    envoy["readinessProbe"] = readiness(15, 4);
    envoy["startupProbe"] = readiness(1, 30);
    let mut args = vec![
        "xds".to_string(),
        "--kube".into(),
        "--waypoint".into(),
        t.namespaced(),
        "--mesh-namespace".into(),
        o.istio_namespace.clone(),
        "--trust-domain".into(),
        o.trust_domain.clone(),
        "--listen".into(),
        format!("127.0.0.1:{}", labels::XDS_PORT),
    ];
    // The certificate from Istio's CA (env CA_ADDR, the token and root mounts), written to the
    // writable /tmp volume, renewed there at half-life, and served to Envoy over SDS.
    args.extend([
        "--ca".to_string(),
        "--ca-cert-dir".into(),
        "/tmp/waypoint-certs".into(),
    ]);
    args.extend(o.extra_args.iter().cloned());
    let xds = base_container(
        "xds",
        o,
        args,
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}),
    );
    vec![envoy, xds]
}

/// Image, args, environment (Istio's names, read by the CA flags), non-root security context and the mounts.
fn base_container(name: &str, o: &Options, args: Vec<String>, resources: Value) -> Value {
    let field = |path: &str| json!({"fieldRef": {"apiVersion": "v1", "fieldPath": path}});
    let mut c = json!({
        "name": name,
        "image": o.image,
        "args": args,
        "env": [
            {"name": "POD_NAME", "valueFrom": field("metadata.name")},
            {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
            {"name": "INSTANCE_IP", "valueFrom": field("status.podIP")},
            {"name": "SERVICE_ACCOUNT", "valueFrom": field("spec.serviceAccountName")},
            {"name": "TRUST_DOMAIN", "value": o.trust_domain},
            {"name": "CA_ADDR", "value": o.ca_address},
            {"name": "CLUSTER_ID", "value": o.cluster_id},
        ],
        "resources": resources,
        "securityContext": {
            "runAsUser": labels::PROXY_UID,
            "runAsGroup": labels::PROXY_UID,
            "runAsNonRoot": true,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "istio-token", "mountPath": labels::TOKEN_DIR, "readOnly": true},
            {"name": "istiod-ca-cert", "mountPath": labels::ROOT_DIR, "readOnly": true},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    });
    if !o.image_pull_policy.is_empty() {
        c["imagePullPolicy"] = json!(o.image_pull_policy);
    }
    c
}

fn ports() -> Value {
    json!([
        {"name": "hbone", "containerPort": labels::HBONE_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": labels::METRICS_PORT, "protocol": "TCP"},
        {"name": "status-port", "containerPort": labels::STATUS_PORT, "protocol": "TCP"},
    ])
}

/// Istio's waypoint probes: readiness every 15 s (4 failures), startup every 1 s (30).
fn readiness(period: i32, failures: i32) -> Value {
    json!({
        "httpGet": {"path": "/healthz/ready", "port": labels::STATUS_PORT},
        "periodSeconds": period,
        "timeoutSeconds": 1,
        "failureThreshold": failures,
    })
}
