//! Istio ServiceEntry (networking.istio.io v1/v1beta1/v1alpha3): strict input types and
//! conversion to `ServiceInfo` so a ServiceEntry can be bound and routed like a Service.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use crate::error::Diagnostics;
use crate::resource::RawResource;
use crate::service::{Endpoint, ServiceInfo, ServiceKind, ServicePort};

// Every field of the API is accepted so valid Istio config parses; the waypoint reads a few.
#[allow(dead_code)]
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceEntrySpec {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    ports: Vec<SePort>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    resolution: Option<String>,
    #[serde(default)]
    endpoints: Vec<SeEndpoint>,
    #[serde(default)]
    workload_selector: Option<serde_json::Value>,
    #[serde(default)]
    export_to: Vec<String>,
    #[serde(default)]
    subject_alt_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SePort {
    number: u32,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    target_port: Option<u32>,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeEndpoint {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    ports: BTreeMap<String, u32>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    locality: Option<String>,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    service_account: Option<String>,
}

fn is_service_entry(r: &RawResource) -> bool {
    r.kind == "ServiceEntry"
        && r.group() == "networking.istio.io"
        && matches!(r.version(), "v1" | "v1beta1" | "v1alpha3")
}

pub(crate) fn service_entries(
    resources: &[RawResource],
    diags: &mut Diagnostics,
) -> Vec<ServiceInfo> {
    let mut out = Vec::new();
    for r in resources.iter().filter(|r| is_service_entry(r)) {
        let spec: ServiceEntrySpec = match r.parse_spec() {
            Ok(s) => s,
            Err(e) => {
                diags.error(e);
                continue;
            }
        };
        if spec.hosts.is_empty() {
            diags.error(r.error("spec.hosts", "at least one host is required"));
            continue;
        }
        let mut ok = true;
        let mut ports = Vec::new();
        for (i, p) in spec.ports.iter().enumerate() {
            let Ok(port) = u16::try_from(p.number) else {
                diags.error(r.error(
                    format!("spec.ports[{i}].number"),
                    format!("invalid port {}", p.number),
                ));
                ok = false;
                continue;
            };
            let target = match p.target_port.map(u16::try_from) {
                None => port,
                Some(Ok(t)) => t,
                Some(Err(_)) => {
                    diags.error(r.error(format!("spec.ports[{i}].targetPort"), "invalid port"));
                    ok = false;
                    continue;
                }
            };
            ports.push(ServicePort {
                name: p.name.clone().unwrap_or_default(),
                port,
                target_port: Some(target),
                target_port_name: None,
                protocol: p
                    .protocol
                    .clone()
                    .unwrap_or_else(|| "http".into())
                    .to_ascii_lowercase(),
            });
        }
        let mut vips = Vec::new();
        for (i, a) in spec.addresses.iter().enumerate() {
            // CIDR addresses are allowed by Istio; only single IPs can be VIPs here.
            let ip = a.split('/').next().unwrap_or(a);
            match ip.parse::<IpAddr>() {
                Ok(v) => vips.push(v),
                Err(_) => {
                    diags.error(r.error(
                        format!("spec.addresses[{i}]"),
                        format!("invalid address {a:?}"),
                    ));
                    ok = false;
                }
            }
        }
        let mut endpoints = Vec::new();
        for (i, e) in spec.endpoints.iter().enumerate() {
            let Some(addr) = &e.address else { continue };
            match addr.parse::<IpAddr>() {
                Ok(ip) => endpoints.push(Endpoint {
                    ip,
                    labels: e.labels.clone(),
                    service_account: e.service_account.clone(),
                    namespace: r.namespace.clone(),
                    named_ports: e
                        .ports
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), u16::try_from(*v).ok()?)))
                        .collect(),
                    mesh: e
                        .labels
                        .get("istio.io/dataplane-mode")
                        .is_some_and(|m| m == "ambient"),
                    sidecar: false,
                }),
                // DNS names are resolved by the data path; the core only keeps IP endpoints.
                Err(_) => diags.warn(r.error(
                    format!("spec.endpoints[{i}].address"),
                    format!(
                        "{addr:?} is not an IP; DNS endpoints are not resolved by the waypoint"
                    ),
                )),
            }
        }
        if !ok {
            continue;
        }
        let mut hosts = spec.hosts.iter().map(|h| h.to_ascii_lowercase());
        let hostname = hosts.next().unwrap_or_default();
        out.push(ServiceInfo {
            kind: ServiceKind::ServiceEntry,
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            hostname,
            aliases: hosts.collect(),
            vips,
            ports,
            labels: r.labels.clone(),
            selector: BTreeMap::new(),
            endpoints,
        });
    }
    out
}
