//! The resource set as a manifest file (a JSON `List`), for consumers that read config files
//! (`waypoint xds --kube`: the Envoy generator inlines the config text into the module).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{json, Value};
use tracing::warn;
use waypoint_core::resource::RawResource;

use crate::source::{KubeOptions, KubeSource};

/// Watch the API server and keep `path` equal to its resource set (see [`write_set`]).
/// Returns once every kind is listed and the first set is written; `None` if the source
/// stopped before.
pub async fn mirror_to_file(
    client: kube::Client,
    options: KubeOptions,
    path: PathBuf,
) -> Option<KubeSource> {
    let (first, listed) = tokio::sync::oneshot::channel();
    let first = Mutex::new(Some(first));
    let source = KubeSource::start(client, options, move |set| match write_set(&path, &set) {
        Ok(()) => {
            let tx = first.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(tx) = tx {
                let _ = tx.send(());
            }
        }
        Err(e) => {
            warn!(error = %e, file = %path.display(), "cannot write the resource set; the last one keeps serving")
        }
    });
    listed.await.ok().map(|()| source)
}

/// Write `set` to `path` as one JSON `List`, atomically (a temporary file renamed over it), so
/// a poller never reads half a file.
pub fn write_set(path: &Path, set: &[RawResource]) -> std::io::Result<()> {
    let items: Vec<&Value> = set.iter().map(|r| &r.value).collect();
    let text = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_core::resource::parse_manifests;

    #[test]
    fn a_written_set_reads_back_as_the_same_resources() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: c}\n";
        let (set, errs) = parse_manifests(text, "t", "default", 0);
        assert!(errs.is_empty());
        let dir = std::env::temp_dir().join(format!("wp-kube-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("resources.json");
        write_set(&path, &set).expect("write");
        let back = std::fs::read_to_string(&path).expect("read");
        std::fs::remove_dir_all(&dir).ok();
        let (again, errs) = parse_manifests(&back, "f", "default", 0);
        assert!(errs.is_empty(), "{errs:?}");
        let ids = |s: &[RawResource]| {
            s.iter()
                .map(|r| (r.id(), r.value.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&again), ids(&set));
    }
}
