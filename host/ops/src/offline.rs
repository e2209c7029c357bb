//! `list` and `status` on manifest files (`--config DIR`): the same summaries, from what the
//! loader reads. A file that cannot be read fails the verb, naming the file.

use std::path::PathBuf;

use crate::object::Inventory;

/// The files could not all be read.
#[derive(Debug, thiserror::Error)]
#[error("reading {}: {}", .paths, .errors.join("; "))]
pub struct LoadError {
    pub paths: String,
    pub errors: Vec<String>,
}

/// Every object under `paths`; objects without a namespace go to `default_namespace`.
pub fn inventory(paths: &[PathBuf], default_namespace: &str) -> Result<Inventory, LoadError> {
    let loaded = waypoint_loader::load_paths(paths, default_namespace);
    if !loaded.errors.is_empty() || !loaded.rejected.is_empty() {
        let mut errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
        let unread: Vec<String> = loaded
            .rejected
            .iter()
            .map(|p| p.display().to_string())
            .filter(|p| !errors.iter().any(|e| e.contains(p.as_str())))
            .map(|p| format!("{p} could not be read"))
            .collect();
        errors.extend(unread);
        return Err(LoadError {
            paths: paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            errors,
        });
    }
    Ok(Inventory::from_resources(&loaded.resources))
}
