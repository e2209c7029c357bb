//! File watching by polling: a fingerprint (path, size, mtime) of every file under the
//! watched paths, compared every interval; a change triggers the reload callback.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What the watcher compares: (path, size, mtime) of every file, sorted.
pub type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// Fingerprint of the files under `paths` (directories walked recursively, sorted).
pub fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out);
    }
    out.sort();
    out
}

fn walk(p: &Path, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    walk(&e.path(), out);
                }
            }
        }
        Ok(m) => out.push((p.to_path_buf(), m.len(), m.modified().ok())),
        Err(_) => out.push((p.to_path_buf(), u64::MAX, None)),
    }
}

/// Poll `paths` every `interval` and call `on_change` when their fingerprint differs from `last`
/// (and has then stayed the same for 100 ms, so half-written files are not read).
/// `last` must be taken *before* the files were first read: a change made between that first
/// read and this task's first poll is then still seen. Runs until the task is aborted.
pub async fn poll<F: FnMut() + Send>(
    paths: Vec<PathBuf>,
    mut last: Fingerprint,
    interval: Duration,
    mut on_change: F,
) {
    loop {
        tokio::time::sleep(interval).await;
        let mut now = fingerprint(&paths);
        if now != last {
            // Let a writer finish: wait until two looks 100 ms apart agree (bounded).
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let again = fingerprint(&paths);
                if again == now {
                    break;
                }
                now = again;
            }
            last = now;
            on_change();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_sees_changes() {
        let dir = std::env::temp_dir().join(format!("wp-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("a.yaml");
        std::fs::write(&f, "a").expect("write");
        let before = fingerprint(std::slice::from_ref(&dir));
        std::fs::write(&f, "abc").expect("write");
        let after = fingerprint(std::slice::from_ref(&dir));
        assert_ne!(before, after);
        std::fs::write(dir.join("b.yaml"), "b").expect("write");
        assert_ne!(after, fingerprint(std::slice::from_ref(&dir)));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn change_before_the_first_poll_is_seen() {
        let dir = std::env::temp_dir().join(format!("wp-watch-first-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("a.yaml");
        std::fs::write(&f, "a").expect("write");
        let seen = fingerprint(std::slice::from_ref(&dir));
        // Changed after the baseline, before the watcher task first runs.
        std::fs::write(&f, "abc").expect("write");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(poll(
            vec![dir.clone()],
            seen,
            Duration::from_millis(10),
            move || {
                let _ = tx.send(());
            },
        ));
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        task.abort();
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            matches!(got, Ok(Some(()))),
            "change made before the first poll was missed"
        );
    }
}
