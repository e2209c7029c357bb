//! Config for the running host: manifests loaded from files (or a resource set from the API
//! server), compiled into a [`Policy`], swapped atomically; an invalid resource is rejected
//! alone (see [`isolate`]).

pub mod isolate;
pub mod stored;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use tracing::{info, warn};
use waypoint_core::resource::RawResource;
use waypoint_core::{ConfigError, ResourceId};

use self::stored::StoredResource;
use crate::policy::compiled::Policy;
use crate::policy::options::PolicyOptions;

/// One accepted config generation.
#[derive(Debug)]
pub struct ConfigState {
    pub generation: u64,
    pub loaded_at: SystemTime,
    pub files: Vec<PathBuf>,
    /// The resources it was built from, kept compact (their JSON text).
    pub resources: Vec<StoredResource>,
    pub warnings: Vec<ConfigError>,
    /// Resources (or files) rejected in this generation; each is served at its last good
    /// version, or left out when it never was valid.
    pub errors: Vec<ConfigError>,
    pub policy: Policy,
    /// The resources that compiled without error: what an invalid update falls back to (their
    /// versions are in `resources`).
    pub good: HashSet<ResourceId>,
}

/// Where config comes from and how to compile it.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub paths: Vec<PathBuf>,
    pub default_namespace: String,
    pub options: PolicyOptions,
}

/// The live config.
#[derive(Debug, Default)]
pub struct ConfigStore {
    current: ArcSwapOption<ConfigState>,
    generation: AtomicU64,
    /// Errors of the last rejected change (empty when the last load succeeded).
    last_errors: std::sync::Mutex<Vec<ConfigError>>,
}

impl ConfigStore {
    pub fn new() -> Arc<Self> {
        Arc::new(ConfigStore::default())
    }

    /// The config in force, if one has been accepted.
    pub fn current(&self) -> Option<Arc<ConfigState>> {
        self.current.load_full()
    }

    /// Errors of the last load: the resources and files it rejected (the rest applied), or
    /// why the whole change was rejected. Empty when the last load was clean.
    pub fn last_errors(&self) -> Vec<ConfigError> {
        self.last_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Load and compile `source` and swap it in. An invalid resource is rejected alone and
    /// keeps its last good version; only a config-wide error (no waypoint to serve) rejects the
    /// whole change. Returns whether a new generation was stored. Every error is logged with
    /// its resource and field.
    pub fn reload(&self, source: &ConfigSource) -> bool {
        let loaded = waypoint_loader::load_paths(&source.paths, &source.default_namespace);
        self.apply(loaded, &source.options)
    }

    /// [`reload`](Self::reload) for a resource set read elsewhere (the Kubernetes API
    /// server): the same compile, per-resource isolation, last good and atomic swap.
    /// `resources` is the whole config; a resource absent from it is gone.
    pub fn reload_resources(&self, resources: Vec<RawResource>, options: &PolicyOptions) -> bool {
        let loaded = waypoint_loader::Loaded {
            resources,
            ..Default::default()
        };
        self.apply(loaded, options)
    }

    fn apply(&self, loaded: waypoint_loader::Loaded, options: &PolicyOptions) -> bool {
        let files = loaded.files.clone();
        let current = self.current();
        let prev = isolate::Previous {
            resources: current.as_deref().map_or(&[], |c| &c.resources[..]),
            good: current.as_deref().map(|c| &c.good),
        };
        let out = isolate::isolate(loaded, &prev, options);
        for w in &out.diagnostics.warnings {
            warn!(kind = %w.kind, namespace = %w.namespace, name = %w.name, field = %w.field, "config warning: {}", w.message);
        }
        for e in &out.errors {
            warn!(kind = %e.kind, namespace = %e.namespace, name = %e.name, field = %e.field, "config rejected: {}", e.message);
        }
        if let Some(why) = out.config_wide {
            let keeping = current.map(|c| c.generation);
            warn!(
                errors = out.errors.len(),
                keeping_generation = ?keeping,
                "config change rejected ({why}); last good config keeps serving"
            );
            *self.last_errors.lock().unwrap_or_else(|p| p.into_inner()) = out.errors;
            return false;
        }
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        info!(
            generation,
            resources = out.resources.len(),
            files = files.len(),
            rejected = out.errors.len(),
            "config accepted"
        );
        *self.last_errors.lock().unwrap_or_else(|p| p.into_inner()) = out.errors.clone();
        self.current.store(Some(Arc::new(ConfigState {
            generation,
            loaded_at: SystemTime::now(),
            files,
            resources: out.resources.into_iter().map(StoredResource::new).collect(),
            warnings: out.diagnostics.warnings,
            errors: out.errors,
            policy: out.policy,
            good: out.good,
        })));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_core::authz::Action;

    const GATEWAY: &str = waypoint_core::waypoint_gateway_yaml!("default");

    fn svc(name: &str, vip: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default, labels: {{istio.io/use-waypoint: waypoint}}}}\nspec: {{clusterIP: {vip}, ports: [{{name: http, port: 80}}]}}\n"
        )
    }

    fn deny(paths: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: deny-admin, namespace: default}}\nspec:\n  targetRefs: [{{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}}]\n  action: DENY\n  rules: [{{to: [{{operation: {{paths: {paths}}}}}]}}]\n"
        )
    }

    struct Dir(PathBuf);
    impl Dir {
        fn new(tag: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("wp-config-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&d).expect("mkdir");
            Dir(d)
        }
        fn write(&self, name: &str, text: &str) {
            std::fs::write(self.0.join(name), text).expect("write");
        }
        fn source(&self) -> ConfigSource {
            ConfigSource {
                paths: vec![self.0.clone()],
                default_namespace: "default".into(),
                options: PolicyOptions {
                    waypoint: None,
                    trust_domain: "cluster.local".into(),
                    hbone_port: 15008,
                },
            }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    fn names(c: &ConfigState, kind: &str) -> Vec<String> {
        let mut v: Vec<String> = c
            .resources
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.name.clone())
            .collect();
        v.sort();
        v
    }

    fn deny_paths(c: &ConfigState) -> serde_json::Value {
        c.resources
            .iter()
            .find(|r| r.name == "deny-admin")
            .map(|r| r.restore().value["spec"]["rules"][0]["to"][0]["operation"]["paths"].clone())
            .unwrap_or_default()
    }

    #[test]
    fn an_invalid_update_keeps_the_last_good_version_and_the_rest_applies() {
        let dir = Dir::new("isolate");
        dir.write("gateway.yaml", GATEWAY);
        dir.write("a.yaml", &svc("a", "10.96.0.1"));
        dir.write("policy.yaml", &deny("[/admin]"));
        let store = ConfigStore::new();
        assert!(store.reload(&dir.source()), "{:?}", store.last_errors());
        assert!(store.last_errors().is_empty());

        // The policy becomes invalid (a bogus field) while a new Service is added.
        dir.write(
            "policy.yaml",
            &deny("[/other]").replace("action: DENY", "action: DENY\n  bogus: 1"),
        );
        dir.write("b.yaml", &svc("b", "10.96.0.2"));
        assert!(
            store.reload(&dir.source()),
            "the rest of the config applies"
        );
        let c = store.current().expect("config");
        assert_eq!(c.generation, 2);
        assert_eq!(names(&c, "Service"), ["a", "b"]);
        // The policy's last good version serves: DENY /admin, not the invalid update.
        assert_eq!(deny_paths(&c), serde_json::json!(["/admin"]));
        let p = c.policy.snapshot.policies();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].action, Action::Deny);
        // Reported with resource and field, in the store and in the config dump's list.
        let errs = store.last_errors();
        assert!(
            errs.iter().any(|e| e.kind == "AuthorizationPolicy"
                && e.name == "deny-admin"
                && e.field.starts_with("spec")),
            "{errs:?}"
        );
        assert_eq!(c.errors, errs);
        assert_eq!(c.policy.snapshot.diagnostics.errors, errs);

        // Still invalid on the next load: the same last good version serves.
        dir.write("c.yaml", &svc("c", "10.96.0.3"));
        assert!(store.reload(&dir.source()));
        let c = store.current().expect("config");
        assert_eq!(names(&c, "Service"), ["a", "b", "c"]);
        assert_eq!(deny_paths(&c), serde_json::json!(["/admin"]));

        // Fixed: the new version applies and the errors clear.
        dir.write("policy.yaml", &deny("[/other]"));
        assert!(store.reload(&dir.source()));
        let c = store.current().expect("config");
        assert_eq!(deny_paths(&c), serde_json::json!(["/other"]));
        assert!(store.last_errors().is_empty());
    }

    #[test]
    fn a_never_valid_policy_is_rejected_alone_and_fails_closed() {
        let dir = Dir::new("never");
        dir.write("gateway.yaml", GATEWAY);
        dir.write("a.yaml", &svc("a", "10.96.0.1"));
        dir.write(
            "policy.yaml",
            &deny("[/admin]").replace("rules:", "bogus: 1\n  rules:"),
        );
        let store = ConfigStore::new();
        assert!(store.reload(&dir.source()));
        let c = store.current().expect("config");
        assert_eq!(names(&c, "Service"), ["a"]);
        // Authz never fails open: the unreadable policy denies every request to its target.
        let p = c.policy.snapshot.policies();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].action, Action::Deny);
        let errs = store.last_errors();
        assert!(
            errs.iter()
                .any(|e| e.name == "deny-admin" && e.message.contains("fails closed")),
            "{errs:?}"
        );
    }

    #[test]
    fn an_unparsable_file_keeps_its_last_good_contents() {
        let dir = Dir::new("file");
        dir.write("gateway.yaml", GATEWAY);
        dir.write("a.yaml", &svc("a", "10.96.0.1"));
        dir.write("b.yaml", "kind: [unclosed\n");
        let store = ConfigStore::new();
        // First load: the bad file is left out and reported; the rest applies.
        assert!(store.reload(&dir.source()));
        let c = store.current().expect("config");
        assert_eq!(names(&c, "Service"), ["a"]);
        let errs = store.last_errors();
        assert!(
            errs.iter().any(|e| e.to_string().contains("b.yaml#0")),
            "{errs:?}"
        );

        dir.write("b.yaml", &svc("b", "10.96.0.2"));
        assert!(store.reload(&dir.source()));
        assert_eq!(names(&store.current().expect("c"), "Service"), ["a", "b"]);
        // Nested past the depth limit, and a syntax error: b.yaml keeps its last good contents.
        for bad in [
            format!("{}x: {}", svc("b", "10.96.0.2"), "[".repeat(100_000)),
            format!("{}---\nkind: [unclosed\n", svc("b2", "10.96.0.4")),
        ] {
            dir.write("b.yaml", &bad);
            dir.write("a.yaml", &svc("a", "10.96.0.9"));
            assert!(store.reload(&dir.source()));
            let c = store.current().expect("config");
            assert_eq!(
                names(&c, "Service"),
                ["a", "b"],
                "{:?}",
                store.last_errors()
            );
            let errs = store.last_errors();
            assert!(
                errs.iter().any(|e| e.to_string().contains("b.yaml#")),
                "{errs:?}"
            );
            let a = c.policy.snapshot.registry.index_by_name("default", "a");
            let vip = a.map(|i| c.policy.snapshot.registry.services[i].vips.clone());
            assert!(
                format!("{vip:?}").contains("10.96.0.9"),
                "a.yaml applied: {vip:?}"
            );
        }
    }

    #[test]
    fn a_resource_set_from_elsewhere_reloads_as_files_do() {
        let parse = |text: &str| waypoint_core::resource::parse_manifests(text, "kube", "", 0).0;
        let options = Dir::new("set").source().options;
        let good = [GATEWAY, &svc("a", "10.96.0.1"), &deny("[/admin]")].join("---\n");
        let store = ConfigStore::new();
        assert!(store.reload_resources(parse(&good), &options));
        let c = store.current().expect("config");
        assert_eq!(c.generation, 1);
        assert_eq!(deny_paths(&c), serde_json::json!(["/admin"]));
        // An invalid update keeps the last good version; the rest applies.
        let bad = [
            GATEWAY,
            &svc("a", "10.96.0.1"),
            &svc("b", "10.96.0.2"),
            &deny("[/x]").replace("action: DENY", "action: DENY\n  bogus: 1"),
        ]
        .join("---\n");
        assert!(store.reload_resources(parse(&bad), &options));
        let c = store.current().expect("config");
        assert_eq!(names(&c, "Service"), ["a", "b"]);
        assert_eq!(deny_paths(&c), serde_json::json!(["/admin"]));
        assert!(store.last_errors().iter().any(|e| e.name == "deny-admin"));
        // A resource absent from the set is deleted.
        let fewer = [GATEWAY, &svc("b", "10.96.0.2")].join("---\n");
        assert!(store.reload_resources(parse(&fewer), &options));
        let c = store.current().expect("config");
        assert_eq!(names(&c, "Service"), ["b"]);
        assert!(c.policy.snapshot.policies().is_empty());
        // No waypoint: the whole change is rejected.
        assert!(!store.reload_resources(parse(&svc("c", "10.96.0.3")), &options));
        assert_eq!(store.current().expect("config").generation, 3);
    }

    #[test]
    fn no_waypoint_rejects_the_whole_change() {
        let dir = Dir::new("wide");
        dir.write("gateway.yaml", GATEWAY);
        dir.write("a.yaml", &svc("a", "10.96.0.1"));
        let store = ConfigStore::new();
        assert!(store.reload(&dir.source()));
        std::fs::remove_file(dir.0.join("gateway.yaml")).expect("rm");
        dir.write("b.yaml", &svc("b", "10.96.0.2"));
        assert!(!store.reload(&dir.source()));
        let c = store.current().expect("config");
        assert_eq!(c.generation, 1);
        assert_eq!(names(&c, "Service"), ["a"]);
        assert!(store.last_errors().iter().any(|e| e.kind == "Gateway"));
    }
}
