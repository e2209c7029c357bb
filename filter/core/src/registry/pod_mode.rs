//! How the waypoint reaches a pod: HBONE (ambient, or a sidecar that accepts HBONE), Istio
//! mutual TLS to its port (a sidecar without HBONE), or plaintext; read from labels only.

use std::collections::BTreeMap;

use super::k8s::PodInfo;

/// The label istiod's injector puts on every pod it gives a sidecar (`istio` unless the pod
/// sets it); istiod reads an endpoint's TLS mode from it (`kube.PodTLSMode`).
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// The label a workload sets when it accepts tunnels; the injector adds
/// `networking.istio.io/tunnel: http` to sidecars when `ISTIO_META_ENABLE_HBONE` is on (the
/// ambient profile sets it).
pub const TUNNEL_LABEL: &str = "networking.istio.io/tunnel";
/// The annotation Istio's CNI sets on a pod whose traffic ztunnel captures.
pub const REDIRECTION: &str = "ambient.istio.io/redirection";

/// How one endpoint is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// HTTP/2 CONNECT over mTLS to `<pod IP>:15008`.
    Hbone,
    /// Istio mutual TLS straight to `<pod IP>:<targetPort>` (the sidecar's inbound listener).
    IstioMtls,
    /// Plain TCP to `<pod IP>:<targetPort>`.
    Plaintext,
}

/// How `pod` (in a namespace with `ns_labels`) is reached. HBONE when the pod says it accepts
/// tunnels (istiod's `supportTunnel`: the `networking.istio.io/tunnel` list names `http`) or
/// ztunnel captures it; else Istio mTLS when it runs a sidecar (`security.istio.io/tlsMode:
/// istio`); else plaintext. An endpoint without a pod follows its namespace.
pub(crate) fn reach(ns_labels: Option<&BTreeMap<String, String>>, pod: Option<&PodInfo>) -> Reach {
    let label = |k: &str| pod.and_then(|p| p.labels.get(k)).map(String::as_str);
    if label(TUNNEL_LABEL).is_some_and(|l| l.split(',').any(|t| t.trim() == "http")) {
        return Reach::Hbone;
    }
    if captured(ns_labels, pod) {
        return Reach::Hbone;
    }
    if label(TLS_MODE_LABEL) == Some("istio") {
        return Reach::IstioMtls;
    }
    Reach::Plaintext
}

/// Whether ztunnel captures a pod's traffic. Its `ambient.istio.io/redirection` annotation,
/// when present, is what ztunnel acts on (istiod: a workload is HBONE-capable only once the CNI
/// marked it `enabled`); without it (hand-written manifests) the `istio.io/dataplane-mode`
/// labels of the pod, then its namespace, decide.
pub(crate) fn captured(
    ns_labels: Option<&BTreeMap<String, String>>,
    pod: Option<&PodInfo>,
) -> bool {
    if let Some(r) = pod.and_then(|p| p.redirection.as_deref()) {
        return r == "enabled";
    }
    match pod.and_then(|p| p.dataplane_mode.as_deref()) {
        Some("none") => false,
        Some("ambient") => true,
        _ => ns_labels
            .and_then(|l| l.get("istio.io/dataplane-mode"))
            .is_some_and(|m| m == "ambient"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: &[(&str, &str)], mode: Option<&str>, redirection: Option<&str>) -> PodInfo {
        PodInfo {
            namespace: "ns".into(),
            name: "p".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ips: Vec::new(),
            service_account: "default".into(),
            named_ports: BTreeMap::new(),
            dataplane_mode: mode.map(str::to_string),
            redirection: redirection.map(str::to_string),
            workload: Default::default(),
        }
    }

    #[test]
    fn captured_pods_are_mesh_by_annotation_then_labels() {
        let ambient_ns =
            BTreeMap::from([("istio.io/dataplane-mode".to_string(), "ambient".to_string())]);
        // (namespace ambient, pod label, annotation, expected)
        for (ns, mode, redirection, want) in [
            (true, None, None, true),
            (false, None, None, false),
            (true, Some("none"), None, false),
            (false, Some("ambient"), None, true),
            // The CNI's mark wins: captured, or not (yet) captured despite the labels.
            (false, None, Some("enabled"), true),
            (true, None, Some("disabled"), false),
            (true, Some("ambient"), Some("pending"), false),
        ] {
            let labels = ns.then_some(&ambient_ns);
            let p = pod(&[], mode, redirection);
            assert_eq!(
                captured(labels, Some(&p)),
                want,
                "{ns} {mode:?} {redirection:?}"
            );
        }
        assert!(
            captured(Some(&ambient_ns), None),
            "an endpoint without a pod follows its namespace"
        );
    }

    #[test]
    fn sidecars_are_hbone_when_they_accept_tunnels_else_istio_mtls() {
        let sidecar = [(TLS_MODE_LABEL, "istio")];
        let tunnel = [(TLS_MODE_LABEL, "istio"), (TUNNEL_LABEL, "http")];
        let tunnel_list = [(TLS_MODE_LABEL, "istio"), (TUNNEL_LABEL, "http3, http")];
        let disabled = [(TLS_MODE_LABEL, "disabled")];
        for (labels, mode, want) in [
            (&sidecar[..], None, Reach::IstioMtls),
            // A sidecar opted out of ambient keeps its own mTLS.
            (&sidecar[..], Some("none"), Reach::IstioMtls),
            (&tunnel[..], None, Reach::Hbone),
            (&tunnel[..], Some("none"), Reach::Hbone),
            (&tunnel_list[..], None, Reach::Hbone),
            (&disabled[..], None, Reach::Plaintext),
            (&[][..], None, Reach::Plaintext),
            (&[][..], Some("ambient"), Reach::Hbone),
        ] {
            let p = pod(labels, mode, None);
            assert_eq!(reach(None, Some(&p)), want, "{labels:?} {mode:?}");
        }
        assert_eq!(reach(None, None), Reach::Plaintext);
    }
}
