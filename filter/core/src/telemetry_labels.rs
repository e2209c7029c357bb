//! Istio's telemetry labels, computed once for both runtimes: a pod's workload identity (name,
//! canonical service and revision) and the standard `istio_*` label set of one request.

use std::collections::BTreeMap;

use crate::decision::{Action, Decision};

/// Istio's label value for what the reporter does not know.
pub const UNKNOWN: &str = "unknown";

/// The `reporter` label of every series this waypoint emits.
pub const REPORTER: &str = "waypoint";

/// A workload as Istio's telemetry names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct WorkloadMeta {
    /// Workload name: the Deployment (etc.) owning the pod, or the pod name.
    pub name: String,
    pub namespace: String,
    pub canonical_service: String,
    pub canonical_revision: String,
    pub service_account: String,
}

/// The pod facts a workload's name and canonical service derive from.
#[derive(Debug, Clone, Copy)]
pub struct PodFacts<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    /// `metadata.generateName`; only a generated pod is named after its controller.
    pub generate_name: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
    /// The owner reference with `controller: true`, as (kind, name).
    pub controller: Option<(&'a str, &'a str)>,
    pub service_account: &'a str,
}

impl WorkloadMeta {
    /// Istio's derivation: workload name as `pkg/kube/util.go GetDeployMetaFromPod`, canonical
    /// name and revision as `pkg/kube/labels/labels.go CanonicalService` (istio/istio).
    pub fn of_pod(p: &PodFacts<'_>) -> WorkloadMeta {
        let name = workload_name(p);
        WorkloadMeta {
            canonical_service: canonical_service(p.labels, &name),
            canonical_revision: canonical_revision(p.labels),
            name,
            namespace: p.namespace.to_string(),
            service_account: p.service_account.to_string(),
        }
    }
}

/// The workload name of a pod (istio `GetDeployMetaFromPod`): a pod with a `generateName` and
/// a controller is named after it, a ReplicaSet's pod-template hash (or Argo Rollout hash)
/// stripped to the Deployment's name, an OpenShift DeploymentConfig's RC by its
/// `deploymentconfig` label, a CronJob's Job without its `-<8..10 digits>` suffix; any other
/// pod by its own name.
pub fn workload_name(p: &PodFacts<'_>) -> String {
    let generated = p.generate_name.is_some_and(|g| !g.is_empty());
    let Some((kind, owner)) = p.controller.filter(|_| generated) else {
        return p.name.to_string();
    };
    let label = |k: &str| p.labels.get(k).map(String::as_str).unwrap_or("");
    let strip_hash = |hash: &str| {
        (!hash.is_empty() && owner.ends_with(hash))
            .then(|| owner.strip_suffix(&format!("-{hash}")).unwrap_or(owner))
    };
    match kind {
        "ReplicaSet" => strip_hash(label("pod-template-hash"))
            .or_else(|| strip_hash(label("rollouts-pod-template-hash")))
            .unwrap_or(owner)
            .to_string(),
        "ReplicationController" if !label("deploymentconfig").is_empty() => {
            label("deploymentconfig").to_string()
        }
        "Job" => cron_job_name(owner).unwrap_or(owner).to_string(),
        _ => owner.to_string(),
    }
}

/// `(.+)-\d{8,10}$`: a Job a CronJob made, named with its schedule timestamp.
fn cron_job_name(job: &str) -> Option<&str> {
    let (base, digits) = job.rsplit_once('-')?;
    (!base.is_empty()
        && (8..=10).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit()))
    .then_some(base)
}

/// Canonical service: the first label present of `service.istio.io/canonical-name`,
/// `app.kubernetes.io/name`, `app`; else the workload name.
pub fn canonical_service(labels: &BTreeMap<String, String>, workload: &str) -> String {
    [
        "service.istio.io/canonical-name",
        "app.kubernetes.io/name",
        "app",
    ]
    .iter()
    .find_map(|k| labels.get(*k))
    .cloned()
    .unwrap_or_else(|| workload.to_string())
}

/// Canonical revision: the first label present of `service.istio.io/canonical-revision`,
/// `app.kubernetes.io/version`, `version`; else `latest`.
pub fn canonical_revision(labels: &BTreeMap<String, String>) -> String {
    [
        "service.istio.io/canonical-revision",
        "app.kubernetes.io/version",
        "version",
    ]
    .iter()
    .find_map(|k| labels.get(*k))
    .cloned()
    .unwrap_or_else(|| "latest".to_string())
}

/// The label names of `istio_requests_total`, `istio_request_duration_milliseconds`,
/// `istio_request_bytes` and `istio_response_bytes`, in [`IstioLabels::values`] order.
pub const REQUEST_LABELS: [&str; 25] = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

/// Istio's standard label values of one request, in [`REQUEST_LABELS`] order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IstioLabels {
    pub values: [String; 25],
}

impl IstioLabels {
    /// `(name, value)` pairs in Istio's order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        REQUEST_LABELS
            .iter()
            .copied()
            .zip(self.values.iter().map(String::as_str))
    }

    /// The value of label `name` (None for a name not in [`REQUEST_LABELS`]).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// Where the source facts come from, best first.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceFacts<'a> {
    /// The peer's SPIFFE principal.
    pub principal: Option<&'a str>,
    /// The namespace of the peer identity.
    pub namespace: Option<&'a str>,
    /// The workload owning the peer (the registry's pod of the source IP or identity).
    pub workload: Option<&'a WorkloadMeta>,
    /// The CONNECT's W3C `baggage` (`k8s.deployment.name=...,service.name=...`), which a
    /// peer's metadata exchange may carry; wins over the registry where present.
    pub baggage: &'a str,
}

/// The destination service as resolved: (hostname, name, namespace).
pub type ServiceFacts<'a> = (&'a str, &'a str, &'a str);

/// Everything one request's labels derive from.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub source: SourceFacts<'a>,
    /// The resolved service; `None` labels the destination `unknown`.
    pub service: Option<ServiceFacts<'a>>,
    /// The workload of the chosen endpoint (the pod that served the request), if known.
    pub destination: Option<&'a WorkloadMeta>,
    /// The destination's SPIFFE principal, if known otherwise than from the workload.
    pub destination_principal: Option<&'a str>,
    /// The trust domain destination principals are formed in.
    pub trust_domain: &'a str,
    pub grpc: bool,
    pub status: u16,
    /// Envoy's response flag (`-` for none).
    pub flags: &'a str,
}

/// A `baggage` member's value.
pub fn baggage_get<'a>(baggage: &'a str, key: &str) -> Option<&'a str> {
    baggage.split(',').find_map(|member| {
        let member = member.split(';').next()?.trim();
        let (k, v) = member.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// Istio's label values for one request reported by the waypoint. The `app`/`version` labels
/// carry the canonical service and revision, as ztunnel's (`src/telemetry.rs`).
pub fn request_labels(f: &RequestFacts<'_>) -> IstioLabels {
    let unknown = || UNKNOWN.to_string();
    let s = &f.source;
    let bag = |k: &str| baggage_get(s.baggage, k).filter(|v| !v.is_empty());
    let src_workload = bag("k8s.deployment.name")
        .or_else(|| bag("k8s.pod.name"))
        .map(str::to_string)
        .or_else(|| s.workload.map(|w| w.name.clone()))
        .unwrap_or_else(unknown);
    let src_service = bag("service.name")
        .map(str::to_string)
        .or_else(|| s.workload.map(|w| w.canonical_service.clone()))
        .unwrap_or_else(unknown);
    let src_revision = bag("service.version")
        .map(str::to_string)
        .or_else(|| s.workload.map(|w| w.canonical_revision.clone()))
        .unwrap_or_else(unknown);
    let src_namespace = s
        .namespace
        .or(bag("k8s.namespace.name"))
        .or(s.workload.map(|w| w.namespace.as_str()))
        .map_or_else(unknown, str::to_string);
    let (svc_host, svc_name, svc_ns) = match f.service {
        Some((h, n, ns)) => (h.to_string(), n.to_string(), ns.to_string()),
        None => (unknown(), unknown(), unknown()),
    };
    let d = f.destination;
    let dst_workload = d.map_or_else(unknown, |w| w.name.clone());
    let dst_namespace = d.map_or_else(|| svc_ns.clone(), |w| w.namespace.clone());
    let dst_principal = f
        .destination_principal
        .map(str::to_string)
        .or_else(|| {
            d.map(|w| {
                format!(
                    "spiffe://{}/ns/{}/sa/{}",
                    f.trust_domain, w.namespace, w.service_account
                )
            })
        })
        .unwrap_or_else(unknown);
    // Without a known pod, the service's name stands for its canonical service (Istio's
    // fallback for a workload without labels) and the revision is Istio's default.
    let dst_service = d.map_or_else(|| svc_name.clone(), |w| w.canonical_service.clone());
    let dst_revision = d.map_or_else(|| "latest".to_string(), |w| w.canonical_revision.clone());
    let dst_version = d.map_or_else(unknown, |w| w.canonical_revision.clone());
    IstioLabels {
        values: [
            REPORTER.to_string(),
            src_workload,
            src_service.clone(),
            src_revision.clone(),
            src_namespace,
            s.principal.map_or_else(unknown, str::to_string),
            src_service,
            src_revision,
            bag("k8s.cluster.name").map_or_else(unknown, str::to_string),
            dst_workload,
            dst_namespace,
            dst_principal,
            dst_service.clone(),
            dst_version,
            svc_host,
            svc_name,
            svc_ns,
            dst_service,
            dst_revision,
            unknown(),
            if f.grpc { "grpc" } else { "http" }.to_string(),
            f.status.to_string(),
            String::new(),
            f.flags.to_string(),
            "mutual_tls".to_string(),
        ],
    }
}

/// The counter of AuthorizationPolicy denials by policy (not an Istio metric: Istio's labels
/// name no policy), with [`DENIAL_LABELS`].
pub const POLICY_DENIALS: &str = "waypoint_policy_denials_total";

/// The label names of [`POLICY_DENIALS`].
pub const DENIAL_LABELS: [&str; 3] = ["reporter", "policy", "destination_service"];

/// The `policy` label of a denial no DENY policy matched: no ALLOW policy allowed it.
pub const NO_ALLOW_MATCHED: &str = "no-allow-matched";

/// The policy a denied decision is counted under: the first matching DENY policy
/// (`namespace/name`), else [`NO_ALLOW_MATCHED`]. `None` for a decision that is no deny.
pub fn denying_policy(d: &Decision<'_>) -> Option<String> {
    if d.action != Action::Deny {
        return None;
    }
    let deny = d
        .policies
        .iter()
        .find(|p| p.action == "DENY" && p.matched && !p.dry_run);
    Some(deny.map_or_else(
        || NO_ALLOW_MATCHED.to_string(),
        |p| format!("{}/{}", p.policy.namespace, p.policy.name),
    ))
}

/// Istio's labels of a TCP connection: the request set with `request_protocol="tcp"` and no
/// response code (empty, which Prometheus treats as absent, as Istio's TCP metrics have none).
pub fn tcp_labels(f: &RequestFacts<'_>) -> IstioLabels {
    let mut l = request_labels(f);
    for (name, v) in REQUEST_LABELS.iter().zip(l.values.iter_mut()) {
        match *name {
            "request_protocol" => *v = "tcp".to_string(),
            "response_code" => v.clear(),
            _ => {}
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pod<'a>(
        labels: &'a BTreeMap<String, String>,
        generated: bool,
        controller: Option<(&'a str, &'a str)>,
    ) -> PodFacts<'a> {
        PodFacts {
            name: "reviews-v2-5b4f8c9d7-x2x7q",
            namespace: "default",
            generate_name: generated.then_some("reviews-v2-5b4f8c9d7-"),
            labels,
            controller,
            service_account: "bookinfo-reviews",
        }
    }

    #[test]
    fn workload_names_follow_istio_get_deploy_meta_from_pod() {
        let hashed = labels(&[("pod-template-hash", "5b4f8c9d7")]);
        let rs = Some(("ReplicaSet", "reviews-v2-5b4f8c9d7"));
        assert_eq!(workload_name(&pod(&hashed, true, rs)), "reviews-v2");
        // Not generated: the pod's own name, whatever owns it.
        assert_eq!(
            workload_name(&pod(&hashed, false, rs)),
            "reviews-v2-5b4f8c9d7-x2x7q"
        );
        // No hash label (a bare ReplicaSet): its name.
        let none = labels(&[]);
        assert_eq!(workload_name(&pod(&none, true, rs)), "reviews-v2-5b4f8c9d7");
        // A hash the owner name does not end with: not stripped.
        let other = labels(&[("pod-template-hash", "abc")]);
        assert_eq!(
            workload_name(&pod(&other, true, rs)),
            "reviews-v2-5b4f8c9d7"
        );
        let rollout = labels(&[("rollouts-pod-template-hash", "77f6")]);
        assert_eq!(
            workload_name(&pod(&rollout, true, Some(("ReplicaSet", "canary-77f6")))),
            "canary"
        );
        let dc = labels(&[("deploymentconfig", "frontend")]);
        assert_eq!(
            workload_name(&pod(
                &dc,
                true,
                Some(("ReplicationController", "frontend-3"))
            )),
            "frontend"
        );
        assert_eq!(
            workload_name(&pod(&none, true, Some(("Job", "backup-28771200")))),
            "backup"
        );
        assert_eq!(
            workload_name(&pod(&none, true, Some(("Job", "migrate-1")))),
            "migrate-1"
        );
        assert_eq!(
            workload_name(&pod(&none, true, Some(("StatefulSet", "db")))),
            "db"
        );
        assert_eq!(
            workload_name(&pod(&none, true, None)),
            "reviews-v2-5b4f8c9d7-x2x7q"
        );
    }

    #[test]
    fn canonical_service_and_revision_take_the_first_label_present() {
        let all = labels(&[
            ("service.istio.io/canonical-name", "c-name"),
            ("service.istio.io/canonical-revision", "c-rev"),
            ("app.kubernetes.io/name", "k-name"),
            ("app.kubernetes.io/version", "k-ver"),
            ("app", "a"),
            ("version", "v"),
        ]);
        assert_eq!(canonical_service(&all, "w"), "c-name");
        assert_eq!(canonical_revision(&all), "c-rev");
        let k8s = labels(&[
            ("app.kubernetes.io/name", "k-name"),
            ("app.kubernetes.io/version", "k-ver"),
            ("app", "a"),
            ("version", "v"),
        ]);
        assert_eq!(canonical_service(&k8s, "w"), "k-name");
        assert_eq!(canonical_revision(&k8s), "k-ver");
        let app = labels(&[("app", "a"), ("version", "v")]);
        assert_eq!(canonical_service(&app, "w"), "a");
        assert_eq!(canonical_revision(&app), "v");
        let none = labels(&[]);
        assert_eq!(canonical_service(&none, "w"), "w");
        assert_eq!(canonical_revision(&none), "latest");
        // Present but empty still counts (Istio looks the key up, not the value).
        let empty = labels(&[("app", "")]);
        assert_eq!(canonical_service(&empty, "w"), "");
    }

    fn decision<'s>(
        action: Action,
        policies: &[(&'s crate::ResourceId, &'static str, bool)],
    ) -> Decision<'s> {
        Decision {
            action,
            local: None,
            passthrough: None,
            forward: None,
            matched_rule: None,
            rule_position: None,
            service: None,
            policies: policies
                .iter()
                .map(|(policy, action, matched)| crate::decision::PolicyResult {
                    policy,
                    action,
                    matched: *matched,
                    dry_run: false,
                })
                .collect(),
            ext_authz: None,
            trace: Vec::new(),
        }
    }

    #[test]
    fn denials_are_counted_under_the_matching_deny_policy() {
        let allow = crate::ResourceId::new("AuthorizationPolicy", "ns", "allow-viewers");
        let deny = crate::ResourceId::new("AuthorizationPolicy", "ns", "deny-admin");
        let d = decision(
            Action::Deny,
            &[(&allow, "ALLOW", false), (&deny, "DENY", true)],
        );
        assert_eq!(denying_policy(&d).as_deref(), Some("ns/deny-admin"));
        let d = decision(
            Action::Deny,
            &[(&allow, "ALLOW", false), (&deny, "DENY", false)],
        );
        assert_eq!(denying_policy(&d).as_deref(), Some(NO_ALLOW_MATCHED));
        let d = decision(Action::Route, &[(&deny, "DENY", false)]);
        assert_eq!(denying_policy(&d), None);
    }

    fn reviews_v2() -> WorkloadMeta {
        let l = labels(&[
            ("app", "reviews"),
            ("version", "v2"),
            ("pod-template-hash", "5b4f8c9d7"),
        ]);
        WorkloadMeta::of_pod(&pod(&l, true, Some(("ReplicaSet", "reviews-v2-5b4f8c9d7"))))
    }

    #[test]
    fn request_labels_name_the_chosen_pod_and_the_source_workload() {
        let dst = reviews_v2();
        let src = WorkloadMeta {
            name: "productpage-v1".into(),
            namespace: "default".into(),
            canonical_service: "productpage".into(),
            canonical_revision: "v1".into(),
            service_account: "bookinfo-productpage".into(),
        };
        let facts = RequestFacts {
            source: SourceFacts {
                principal: Some("spiffe://cluster.local/ns/default/sa/bookinfo-productpage"),
                namespace: Some("default"),
                workload: Some(&src),
                baggage: "",
            },
            service: Some(("reviews.default.svc.cluster.local", "reviews", "default")),
            destination: Some(&dst),
            destination_principal: None,
            trust_domain: "cluster.local",
            grpc: false,
            status: 200,
            flags: "-",
        };
        let l = request_labels(&facts);
        let want = [
            ("reporter", "waypoint"),
            ("source_workload", "productpage-v1"),
            ("source_canonical_service", "productpage"),
            ("source_canonical_revision", "v1"),
            ("source_app", "productpage"),
            ("source_version", "v1"),
            ("destination_workload", "reviews-v2"),
            ("destination_workload_namespace", "default"),
            (
                "destination_principal",
                "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
            ),
            ("destination_app", "reviews"),
            ("destination_version", "v2"),
            ("destination_canonical_service", "reviews"),
            ("destination_canonical_revision", "v2"),
            ("destination_service", "reviews.default.svc.cluster.local"),
            ("destination_service_name", "reviews"),
            ("response_code", "200"),
            ("request_protocol", "http"),
        ];
        for (k, v) in want {
            assert_eq!(l.get(k), Some(v), "{k}");
        }
        // Baggage wins for the source; no pod known for the destination: unknown / latest.
        let facts = RequestFacts {
            source: SourceFacts {
                baggage: "k8s.deployment.name=sleep,service.name=sleep-svc,service.version=v9",
                ..facts.source
            },
            destination: None,
            status: 503,
            flags: "UF",
            ..facts
        };
        let l = request_labels(&facts);
        assert_eq!(l.get("source_workload"), Some("sleep"));
        assert_eq!(l.get("source_canonical_service"), Some("sleep-svc"));
        assert_eq!(l.get("source_version"), Some("v9"));
        assert_eq!(l.get("destination_workload"), Some("unknown"));
        assert_eq!(l.get("destination_version"), Some("unknown"));
        assert_eq!(l.get("destination_canonical_service"), Some("reviews"));
        assert_eq!(l.get("destination_canonical_revision"), Some("latest"));
        assert_eq!(l.get("destination_principal"), Some("unknown"));
        assert_eq!(l.get("response_flags"), Some("UF"));
        assert_eq!(l.pairs().count(), 25);
        let t = tcp_labels(&facts);
        assert_eq!(denying_policy(&decision(Action::Route, &[])), None);
        assert_eq!(t.get("request_protocol"), Some("tcp"));
        assert_eq!(t.get("response_code"), Some(""));
        assert_eq!(t.get("destination_workload"), Some("unknown"));
    }
}
