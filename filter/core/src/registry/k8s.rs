//! Kubernetes core objects (Service, Pod, EndpointSlice, Namespace) read with k8s-openapi
//! types and turned into `ServiceInfo`s with endpoints.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use std::sync::Arc;

use crate::error::Diagnostics;
use crate::resource::RawResource;
use crate::service::{
    select_protocol, service_fqdn, Endpoint, ServiceInfo, ServiceKind, ServicePort, CLUSTER_DOMAIN,
};
use crate::telemetry_labels::{PodFacts, WorkloadMeta};

use super::pod_mode::{reach, Reach, REDIRECTION};

/// A pod, as far as the waypoint cares.
#[derive(Debug, Clone)]
pub(crate) struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ips: Vec<IpAddr>,
    pub service_account: String,
    pub named_ports: BTreeMap<String, u16>,
    /// `istio.io/dataplane-mode` label on the pod, if any.
    pub dataplane_mode: Option<String>,
    /// `ambient.istio.io/redirection` annotation, if any: set by Istio's CNI once the pod's
    /// traffic is actually captured by ztunnel.
    pub redirection: Option<String>,
    /// The pod's workload as Istio's telemetry names it.
    pub workload: Arc<WorkloadMeta>,
}

fn parse_obj<T: serde::de::DeserializeOwned>(
    r: &RawResource,
    diags: &mut Diagnostics,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(&r.value) {
        Ok(v) => Some(v),
        Err(e) => {
            diags.error(r.error(e.path().to_string(), e.inner().to_string()));
            None
        }
    }
}

fn is_core(r: &RawResource, kind: &str) -> bool {
    r.kind == kind && r.api_version == "v1"
}

pub(crate) fn pods(resources: &[RawResource], diags: &mut Diagnostics) -> Vec<PodInfo> {
    let mut out = Vec::new();
    for r in resources.iter().filter(|r| is_core(r, "Pod")) {
        let Some(pod) = parse_obj::<Pod>(r, diags) else {
            continue;
        };
        let mut ips = Vec::new();
        if let Some(status) = &pod.status {
            for s in status
                .pod_ips
                .iter()
                .flatten()
                .map(|p| p.ip.as_str())
                .chain(status.pod_ip.as_deref())
            {
                match s.parse::<IpAddr>() {
                    Ok(ip) if !ips.contains(&ip) => ips.push(ip),
                    Ok(_) => {}
                    Err(_) => diags.error(r.error("status.podIP", format!("invalid IP {s:?}"))),
                }
            }
        }
        let spec = pod.spec.unwrap_or_default();
        let named_ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let name = p.name.clone()?;
                u16::try_from(p.container_port)
                    .ok()
                    .map(|port| (name, port))
            })
            .collect();
        let service_account = spec
            .service_account_name
            .unwrap_or_else(|| "default".to_string());
        let controller = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| (o.kind.as_str(), o.name.as_str()));
        let workload = Arc::new(WorkloadMeta::of_pod(&PodFacts {
            name: &r.name,
            namespace: &r.namespace,
            generate_name: pod.metadata.generate_name.as_deref(),
            labels: &r.labels,
            controller,
            service_account: &service_account,
        }));
        out.push(PodInfo {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            dataplane_mode: r.labels.get("istio.io/dataplane-mode").cloned(),
            redirection: r.annotations.get(REDIRECTION).cloned(),
            labels: r.labels.clone(),
            ips,
            service_account,
            named_ports,
            workload,
        });
    }
    out
}

pub(crate) fn services(
    resources: &[RawResource],
    pods: &[PodInfo],
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
    diags: &mut Diagnostics,
) -> Vec<ServiceInfo> {
    let slices: Vec<(&RawResource, EndpointSlice)> = resources
        .iter()
        .filter(|r| r.kind == "EndpointSlice" && r.group() == "discovery.k8s.io")
        .filter_map(|r| parse_obj::<EndpointSlice>(r, diags).map(|s| (r, s)))
        .collect();
    // Pods by (namespace, label, value): a selector's candidates are the pods with its first
    // label, so matching services to pods is not services x pods.
    let mut by_label: rustc_hash::FxHashMap<(&str, &str, &str), Vec<usize>> = Default::default();
    for (i, p) in pods.iter().enumerate() {
        for (k, v) in &p.labels {
            by_label
                .entry((p.namespace.as_str(), k.as_str(), v.as_str()))
                .or_default()
                .push(i);
        }
    }
    let mut out = Vec::new();
    for r in resources.iter().filter(|r| is_core(r, "Service")) {
        let Some(svc) = parse_obj::<Service>(r, diags) else {
            continue;
        };
        let spec = svc.spec.unwrap_or_default();
        let mut ports = Vec::new();
        for (i, p) in spec.ports.iter().flatten().enumerate() {
            let Ok(port) = u16::try_from(p.port) else {
                diags.error(r.error(
                    format!("spec.ports[{i}].port"),
                    format!("invalid port {}", p.port),
                ));
                continue;
            };
            let (target_port, target_port_name) = match &p.target_port {
                None => (Some(port), None),
                Some(IntOrString::Int(t)) => match u16::try_from(*t) {
                    Ok(t) => (Some(t), None),
                    Err(_) => {
                        diags.error(r.error(
                            format!("spec.ports[{i}].targetPort"),
                            format!("invalid port {t}"),
                        ));
                        continue;
                    }
                },
                Some(IntOrString::String(s)) => match s.parse::<u16>() {
                    Ok(t) => (Some(t), None),
                    Err(_) => (None, Some(s.clone())),
                },
            };
            let name = p.name.clone().unwrap_or_default();
            ports.push(ServicePort {
                protocol: select_protocol(
                    port,
                    &name,
                    p.protocol.as_deref(),
                    p.app_protocol.as_deref(),
                ),
                name,
                port,
                target_port,
                target_port_name,
            });
        }
        let mut vips = Vec::new();
        for (i, ip) in spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter())
            .enumerate()
        {
            if ip == "None" || ip.is_empty() {
                continue;
            }
            match ip.parse::<IpAddr>() {
                Ok(v) if !vips.contains(&v) => vips.push(v),
                Ok(_) => {}
                Err(_) => diags.error(r.error(
                    format!("spec.clusterIPs[{i}]"),
                    format!("invalid IP {ip:?}"),
                )),
            }
        }
        let selector: BTreeMap<String, String> = spec.selector.unwrap_or_default();
        let ns_labels = namespaces.get(&r.namespace);
        let mut endpoints = Vec::new();
        let candidates = selector
            .iter()
            .next()
            .and_then(|(k, v)| by_label.get(&(r.namespace.as_str(), k.as_str(), v.as_str())))
            .map(Vec::as_slice)
            .unwrap_or_default();
        if !selector.is_empty() {
            // In pod order, as a scan of every pod would find them.
            for pod in candidates.iter().map(|&i| &pods[i]).filter(|p| {
                p.namespace == r.namespace
                    && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
            }) {
                let how = reach(ns_labels, Some(pod));
                for ip in &pod.ips {
                    endpoints.push(Endpoint {
                        ip: *ip,
                        labels: pod.labels.clone(),
                        service_account: Some(pod.service_account.clone()),
                        namespace: pod.namespace.clone(),
                        named_ports: pod.named_ports.clone(),
                        mesh: how == Reach::Hbone,
                        sidecar: how == Reach::IstioMtls,
                    });
                }
            }
        }
        // EndpointSlices labelled with this service add endpoints not already known from pods.
        for (sr, slice) in slices.iter().filter(|(sr, _)| {
            sr.namespace == r.namespace
                && sr.labels.get("kubernetes.io/service-name") == Some(&r.name)
        }) {
            for (ei, ep) in slice.endpoints.iter().enumerate() {
                let pod = ep.target_ref.as_ref().and_then(|t| {
                    pods.iter().find(|p| {
                        t.kind.as_deref() == Some("Pod")
                            && t.name.as_deref() == Some(&p.name)
                            && p.namespace == sr.namespace
                    })
                });
                for (ai, a) in ep.addresses.iter().enumerate() {
                    let Ok(ip) = a.parse::<IpAddr>() else {
                        diags.error(sr.error(
                            format!("endpoints[{ei}].addresses[{ai}]"),
                            format!("invalid IP {a:?}"),
                        ));
                        continue;
                    };
                    if endpoints.iter().any(|e: &Endpoint| e.ip == ip) {
                        continue;
                    }
                    let named_ports = slice
                        .ports
                        .iter()
                        .flatten()
                        .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.port?).ok()?)))
                        .collect();
                    let how = reach(ns_labels, pod);
                    endpoints.push(Endpoint {
                        ip,
                        labels: pod.map(|p| p.labels.clone()).unwrap_or_default(),
                        service_account: pod.map(|p| p.service_account.clone()),
                        namespace: sr.namespace.clone(),
                        named_ports,
                        mesh: how == Reach::Hbone,
                        sidecar: how == Reach::IstioMtls,
                    });
                }
            }
        }
        out.push(ServiceInfo {
            kind: ServiceKind::Service,
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            hostname: service_fqdn(&r.name, &r.namespace, CLUSTER_DOMAIN),
            aliases: Vec::new(),
            vips,
            ports,
            labels: r.labels.clone(),
            selector,
            endpoints,
        });
    }
    out
}
