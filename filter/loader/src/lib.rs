//! waypoint-loader: reads manifest files and directories (as kept for `kubectl apply`)
//! and hands their text to the policy core's parser. The only config I/O shared by adapters.

use std::path::{Path, PathBuf};

use waypoint_core::resource::{parse_manifests, RawResource};
use waypoint_core::ConfigError;

/// Everything read from a set of paths: resources, and errors (unreadable files, bad docs).
#[derive(Debug, Default)]
pub struct Loaded {
    pub resources: Vec<RawResource>,
    pub errors: Vec<ConfigError>,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
}

/// Is this a manifest file by its extension?
fn is_manifest(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Collect manifest files under `path` (a file, or a directory walked recursively in name order).
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() || is_manifest(&e) {
                collect(&e, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Read every manifest under `paths`. Resources without a namespace go to `default_namespace`.
pub fn load_paths<P: AsRef<Path>>(paths: &[P], default_namespace: &str) -> Loaded {
    let mut loaded = Loaded::default();
    let mut files = Vec::new();
    for p in paths {
        let p = p.as_ref();
        if !p.exists() {
            loaded.errors.push(ConfigError::new(
                "File",
                "",
                p.display().to_string(),
                "",
                "no such file or directory",
            ));
            continue;
        }
        if let Err(e) = collect(p, &mut files) {
            loaded.errors.push(ConfigError::new(
                "File",
                "",
                p.display().to_string(),
                "",
                format!("cannot read directory: {e}"),
            ));
        }
    }
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => {
                let (rs, errs) = parse_manifests(
                    &text,
                    &f.display().to_string(),
                    default_namespace,
                    loaded.resources.len(),
                );
                loaded.resources.extend(rs);
                loaded.errors.extend(errs);
                loaded.files.push(f);
            }
            Err(e) => loaded.errors.push(ConfigError::new(
                "File",
                "",
                f.display().to_string(),
                "",
                format!("cannot read: {e}"),
            )),
        }
    }
    loaded
}

/// Parse inline manifest text (e.g. YAML embedded in an Envoy filter config).
pub fn load_text(text: &str, origin: &str, default_namespace: &str) -> Loaded {
    let (resources, errors) = parse_manifests(text, origin, default_namespace, 0);
    Loaded {
        resources,
        errors,
        files: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_is_an_error() {
        let l = load_paths(&["/nonexistent/waypoint-test"], "default");
        assert_eq!(l.errors.len(), 1);
        assert!(l.resources.is_empty());
    }

    #[test]
    fn reads_directory_in_order() {
        let dir = std::env::temp_dir().join(format!("wp-loader-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        std::fs::write(
            dir.join("b.yaml"),
            "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n",
        )
        .expect("write");
        std::fs::write(
            dir.join("sub/a.json"),
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"a","namespace":"x"}}"#,
        )
        .expect("write");
        std::fs::write(dir.join("notes.txt"), "ignored").expect("write");
        let l = load_paths(&[&dir], "ns1");
        std::fs::remove_dir_all(&dir).ok();
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        let names: Vec<_> = l
            .resources
            .iter()
            .map(|r| (r.namespace.as_str(), r.name.as_str()))
            .collect();
        assert_eq!(names, vec![("ns1", "b"), ("x", "a")]);
    }
}
