//! Fault isolation as Istio: an invalid resource is rejected alone and the rest of the config
//! applies; an invalid update of a resource that was valid keeps its last good version.
//!
//! What counts as what (the rules `ConfigStore::reload` applies):
//! - per resource: any error naming a resource of the config (kind/namespace/name), whatever
//!   its field. The resource's last good version serves instead, as an API server rejects an
//!   invalid update and the old object stays; a resource that was never valid is compiled as
//!   the core does (left out, and an AuthorizationPolicy fails closed for its targets).
//! - per file: a document with no identity (syntax error, no kind or name, over a size or
//!   depth limit) or an unreadable or missing file. The file keeps its last good contents (on
//!   the first load it is left out).
//! - config-wide: no waypoint Gateway to serve (none, several, or not the one asked for).
//!   The whole change is rejected and the last good config keeps serving.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use tracing::warn;
use waypoint_core::resource::RawResource;
use waypoint_core::{ConfigError, Diagnostics, ResourceId};
use waypoint_loader::Loaded;

use super::stored::StoredResource;
use crate::policy::compiled::Policy;
use crate::policy::options::PolicyOptions;

/// The last accepted config, as far as isolation needs it.
#[derive(Debug, Default)]
pub struct Previous<'a> {
    /// Every resource the last config was built from.
    pub resources: &'a [StoredResource],
    /// Those of them that compiled without error (their versions are in `resources`).
    pub good: Option<&'a HashSet<ResourceId>>,
}

/// A config assembled from a load and the last good config.
#[derive(Debug)]
pub struct Isolated {
    pub resources: Vec<RawResource>,
    pub policy: Policy,
    pub diagnostics: Diagnostics,
    /// Every problem found, each naming its resource (or file) and field.
    pub errors: Vec<ConfigError>,
    /// Resources that compiled without error (what the next load falls back to): ids only,
    /// their versions are in `resources` (one copy of the config is kept, not two).
    pub good: HashSet<ResourceId>,
    /// Why the whole change must be rejected, if it must.
    pub config_wide: Option<String>,
}

/// The file a resource was read from (`origin` is `file#document`).
fn origin_file(origin: &str) -> &Path {
    Path::new(origin.rsplit_once('#').map_or(origin, |(f, _)| f))
}

/// Assemble the config to serve from `loaded`, falling back to `prev` resource by resource
/// and file by file (see the module doc).
pub fn isolate(loaded: Loaded, prev: &Previous<'_>, options: &PolicyOptions) -> Isolated {
    let mut errors = loaded.errors;
    let mut resources = loaded.resources;

    // Files whose contents are unknown keep their last good contents.
    if !loaded.rejected.is_empty() {
        let under = |origin: &str, files: &[PathBuf]| {
            let f = origin_file(origin);
            files.iter().any(|p| f.starts_with(p))
        };
        resources.retain(|r| !under(&r.origin, &loaded.rejected));
        let present: HashSet<ResourceId> = resources.iter().map(RawResource::id).collect();
        let kept: Vec<RawResource> = prev
            .resources
            .iter()
            .filter(|r| under(&r.origin, &loaded.rejected) && !present.contains(&r.id()))
            .map(StoredResource::restore)
            .collect();
        for f in &loaded.rejected {
            let n = kept
                .iter()
                .filter(|r| origin_file(&r.origin).starts_with(f))
                .count();
            warn!(file = %f.display(), resources = n, "file rejected; its last good contents keep serving");
        }
        resources.extend(kept);
    }

    let (mut policy, mut diagnostics) = Policy::compile(&resources, options);

    // Resources with errors fall back to their last good version.
    let bad: HashSet<ResourceId> = errors
        .iter()
        .chain(&diagnostics.errors)
        .map(|e| ResourceId::new(&e.kind, &e.namespace, &e.name))
        .collect();
    let mut fallbacks = Vec::new();
    if let Some(good) = prev.good.filter(|_| !bad.is_empty()) {
        // The last version of each id wins, as when the good set was a map built in order.
        let mut last: HashMap<ResourceId, &StoredResource> = HashMap::new();
        for r in prev.resources {
            last.insert(r.id(), r);
        }
        for id in bad.iter().filter(|id| good.contains(*id)) {
            if let Some(old) = last.get(id) {
                fallbacks.push(old.restore());
            }
        }
    }
    let first_errors = diagnostics.errors.clone();
    if !fallbacks.is_empty() {
        let replaced: HashSet<ResourceId> = fallbacks.iter().map(RawResource::id).collect();
        resources.retain(|r| !replaced.contains(&r.id()));
        for old in &fallbacks {
            warn!(resource = %old.id(), "resource rejected; its last good version keeps serving");
        }
        resources.extend(fallbacks);
        (policy, diagnostics) = Policy::compile(&resources, options);
    }
    for id in bad
        .iter()
        .filter(|id| prev.good.is_none_or(|g| !g.contains(*id)))
    {
        if resources.iter().any(|r| r.id() == *id) {
            warn!(resource = %id, "resource rejected (never valid): compiled as the core does (left out; an AuthorizationPolicy fails closed)");
        }
    }

    // Report what the load found, then anything only the fallback build found.
    errors.extend(first_errors.iter().cloned());
    for e in &diagnostics.errors {
        if !errors.contains(e) {
            errors.push(e.clone());
        }
    }
    let still_bad: HashSet<ResourceId> = diagnostics
        .errors
        .iter()
        .map(|e| ResourceId::new(&e.kind, &e.namespace, &e.name))
        .collect();
    let good = resources
        .iter()
        .map(RawResource::id)
        .filter(|id| !still_bad.contains(id))
        .collect();
    // What `/config_dump` lists as the config's diagnostics: every error, not only the ones
    // the fallback build still has.
    policy.snapshot.diagnostics.errors = errors.clone();
    let config_wide = policy
        .snapshot
        .waypoint
        .is_none()
        .then(|| "no waypoint Gateway to serve; the whole change is rejected".to_string());
    Isolated {
        resources,
        policy,
        diagnostics,
        errors,
        good,
        config_wide,
    }
}
