//! Config for the running host: manifests loaded from files, compiled into a [`Policy`],
//! swapped atomically; a change with errors is logged and the last good config stays.

pub mod watch;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use tracing::{info, warn};
use waypoint_core::resource::RawResource;
use waypoint_core::ConfigError;

use crate::proxy::decide::{Policy, PolicyOptions};

/// One accepted config generation.
#[derive(Debug)]
pub struct ConfigState {
    pub generation: u64,
    pub loaded_at: SystemTime,
    pub files: Vec<PathBuf>,
    pub resources: Vec<RawResource>,
    pub warnings: Vec<ConfigError>,
    pub policy: Policy,
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

    /// Errors of the last rejected change.
    pub fn last_errors(&self) -> Vec<ConfigError> {
        self.last_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Load and compile `source`; swap it in if it has no errors. Returns whether it was
    /// accepted. Every error is logged with its resource and field.
    pub fn reload(&self, source: &ConfigSource) -> bool {
        let loaded = waypoint_loader::load_paths(&source.paths, &source.default_namespace);
        let mut errors = loaded.errors;
        let (policy, diags) = Policy::compile(&loaded.resources, &source.options);
        errors.extend(diags.errors);
        for w in &diags.warnings {
            warn!(kind = %w.kind, namespace = %w.namespace, name = %w.name, field = %w.field, "config warning: {}", w.message);
        }
        if !errors.is_empty() {
            for e in &errors {
                warn!(kind = %e.kind, namespace = %e.namespace, name = %e.name, field = %e.field, "config rejected: {}", e.message);
            }
            let keeping = self.current().map(|c| c.generation);
            warn!(
                errors = errors.len(),
                keeping_generation = ?keeping,
                "config change rejected; last good config keeps serving"
            );
            *self.last_errors.lock().unwrap_or_else(|p| p.into_inner()) = errors;
            return false;
        }
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        info!(
            generation,
            resources = loaded.resources.len(),
            files = loaded.files.len(),
            "config accepted"
        );
        self.current.store(Some(Arc::new(ConfigState {
            generation,
            loaded_at: SystemTime::now(),
            files: loaded.files,
            resources: loaded.resources,
            warnings: diags.warnings,
            policy,
        })));
        self.last_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        true
    }
}
