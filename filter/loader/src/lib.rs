//! waypoint-loader: reads manifest files and directories (as kept for `kubectl apply`)
//! and hands their text to the policy core's parser. The only config I/O shared by adapters.

use std::io::Read;
use std::path::{Path, PathBuf};

use waypoint_core::resource::{
    is_manifest_error, parse_manifests, parse_manifests_with_limits, ManifestLimits, RawResource,
};
use waypoint_core::{BuildOptions, ConfigError, Diagnostics, Snapshot};

/// Size limits of one load: each file's text and documents (see [`ManifestLimits`]) and the
/// bytes of all files together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    pub manifest: ManifestLimits,
    pub max_total_bytes: u64,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            manifest: ManifestLimits::DEFAULT,
            max_total_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Everything read from a set of paths: resources, and errors (unreadable files, bad docs).
#[derive(Debug, Default)]
pub struct Loaded {
    pub resources: Vec<RawResource>,
    pub errors: Vec<ConfigError>,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Files (or given paths) whose contents are not all known: missing, unreadable, over a
    /// limit, or with a document that could not be read as a resource (syntax error, no kind
    /// or name). Their resources, if any were read, are in `resources` but may be partial.
    pub rejected: Vec<PathBuf>,
}

impl Loaded {
    /// Compile what was read into a snapshot. The diagnostics list the load errors first,
    /// then the core's: any error means the config must not be served as a whole.
    pub fn build(&self, options: &BuildOptions) -> (Snapshot, Diagnostics) {
        let (snapshot, mut diags) = Snapshot::build(&self.resources, options);
        diags.errors.splice(0..0, self.errors.iter().cloned());
        (snapshot, diags)
    }
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
    load_paths_with_limits(paths, default_namespace, &LoadLimits::default())
}

/// Read a file of at most `max` bytes (its size is checked before it is read).
fn read_bounded(f: &Path, max: u64) -> Result<String, String> {
    let file = std::fs::File::open(f).map_err(|e| format!("cannot read: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    let over = |n: u64| {
        format!("file is {n} bytes, over the limit of {max} bytes; rejected before parsing")
    };
    if len > max {
        return Err(over(len));
    }
    let mut text = String::new();
    // The file may grow between the size check and the read.
    file.take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > max {
        return Err(over(text.len() as u64));
    }
    Ok(text)
}

/// [`load_paths`] with explicit limits.
pub fn load_paths_with_limits<P: AsRef<Path>>(
    paths: &[P],
    default_namespace: &str,
    limits: &LoadLimits,
) -> Loaded {
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
            loaded.rejected.push(p.to_path_buf());
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
            loaded.rejected.push(p.to_path_buf());
        }
    }
    let mut total: u64 = 0;
    for f in files {
        let budget = limits.manifest.max_text_bytes.min(
            usize::try_from(limits.max_total_bytes.saturating_sub(total)).unwrap_or(usize::MAX),
        ) as u64;
        match read_bounded(&f, budget) {
            Ok(text) => {
                total += text.len() as u64;
                let (rs, errs) = parse_manifests_with_limits(
                    &text,
                    &f.display().to_string(),
                    default_namespace,
                    loaded.resources.len(),
                    &limits.manifest,
                );
                if errs.iter().any(is_manifest_error) {
                    loaded.rejected.push(f.clone());
                }
                loaded.resources.extend(rs);
                loaded.errors.extend(errs);
                loaded.files.push(f);
            }
            Err(message) => {
                let message = if budget < limits.manifest.max_text_bytes as u64
                    && message.contains("over the limit")
                {
                    format!(
                        "{message} (all files together may hold at most {} bytes)",
                        limits.max_total_bytes
                    )
                } else {
                    message
                };
                loaded.errors.push(ConfigError::new(
                    "File",
                    "",
                    f.display().to_string(),
                    "",
                    message,
                ));
                loaded.rejected.push(f);
            }
        }
    }
    loaded
}

/// Parse inline manifest text (e.g. YAML embedded in an Envoy filter config).
pub fn load_text(text: &str, origin: &str, default_namespace: &str) -> Loaded {
    let (resources, errors) = parse_manifests(text, origin, default_namespace, 0);
    Loaded {
        rejected: if errors.iter().any(is_manifest_error) {
            vec![PathBuf::from(origin)]
        } else {
            Vec::new()
        },
        resources,
        errors,
        files: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_lists_load_errors_before_the_cores() {
        let text = "apiVersion: v1\nkind: Service\n---\n: not yaml : [\n";
        let l = load_text(text, "t", "default");
        assert!(!l.errors.is_empty(), "the bad document is a load error");
        let (_, diags) = l.build(&BuildOptions::default());
        assert!(
            diags.errors.len() > l.errors.len(),
            "the nameless Service is a core error"
        );
        assert_eq!(&diags.errors[..l.errors.len()], &l.errors[..]);
    }

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
        assert!(l.rejected.is_empty());
    }

    #[test]
    fn files_over_a_limit_are_rejected_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("wp-loader-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let good = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n";
        std::fs::write(dir.join("a.yaml"), good).expect("write");
        std::fs::write(dir.join("b.yaml"), format!("x: {}", "[".repeat(100))).expect("write");
        std::fs::write(dir.join("c.yaml"), format!("x: {}\n", "1".repeat(96))).expect("write");
        std::fs::write(dir.join("d.yaml"), good.replace("name: a", "name: d")).expect("write");
        let limits = LoadLimits {
            manifest: ManifestLimits {
                max_text_bytes: 1000,
                ..ManifestLimits::DEFAULT
            },
            max_total_bytes: 210,
        };
        let l = load_paths_with_limits(&[&dir], "default", &limits);
        std::fs::remove_dir_all(&dir).ok();
        let names: Vec<&str> = l.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "d"]);
        let rejected: Vec<String> = l
            .rejected
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        assert_eq!(rejected, ["b.yaml", "c.yaml"]);
        let msgs: Vec<String> = l.errors.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        // b.yaml nests too deep; c.yaml is over what the total budget leaves; d.yaml fits.
        assert!(
            msgs[0].contains("b.yaml#0") && msgs[0].contains("limit of 64"),
            "{msgs:?}"
        );
        assert!(
            msgs[1].contains("c.yaml") && msgs[1].contains("all files together"),
            "{msgs:?}"
        );
    }

    #[test]
    fn a_syntax_error_rejects_its_file() {
        let l = load_text("kind: [unclosed\n", "inline", "default");
        assert_eq!(l.rejected, [PathBuf::from("inline")]);
        let l = load_text("kind: Service\nmetadata: {name: a}\n", "inline", "default");
        assert!(
            l.rejected.is_empty(),
            "identified resource errors are not file errors"
        );
        assert_eq!(l.errors.len(), 1);
    }
}
