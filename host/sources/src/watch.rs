//! File watching by polling: a fingerprint (path, size, mtime) of every file under the
//! watched paths, compared every interval; a change triggers the reload callback, off the
//! async workers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
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
///
/// The file system walks and `on_change` (a reload: file reads, parsing, compilation) run on
/// tokio's blocking pool, never on an async worker: with one worker thread (`--threads 1`) a
/// long reload would otherwise stall every connection until it finished.
pub async fn poll<F: Fn() + Send + Sync + 'static>(
    paths: Vec<PathBuf>,
    mut last: Fingerprint,
    interval: Duration,
    on_change: F,
) {
    let paths = Arc::new(paths);
    let on_change = Arc::new(on_change);
    loop {
        tokio::time::sleep(interval).await;
        let Some(mut now) = look(&paths).await else {
            continue;
        };
        if now != last {
            // Let a writer finish: wait until two looks 100 ms apart agree (bounded).
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(again) = look(&paths).await else {
                    continue;
                };
                if again == now {
                    break;
                }
                now = again;
            }
            last = now;
            let f = on_change.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || f()).await {
                tracing::warn!(error = %e, "reload failed to run");
            }
        }
    }
}

/// The fingerprint of `paths`, taken on the blocking pool (`None` if that task failed).
async fn look(paths: &Arc<Vec<PathBuf>>) -> Option<Fingerprint> {
    let paths = paths.clone();
    tokio::task::spawn_blocking(move || fingerprint(&paths))
        .await
        .ok()
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

    #[tokio::test(flavor = "current_thread")]
    async fn reload_runs_off_the_only_async_worker() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = std::env::temp_dir().join(format!("wp-watch-block-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("a.yaml"), "a").expect("write");
        let seen = fingerprint(std::slice::from_ref(&dir));
        std::fs::write(dir.join("a.yaml"), "abc").expect("write");
        // A task on the single runtime thread, standing for traffic.
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                t.fetch_add(1, Ordering::Relaxed);
            }
        });
        let runtime_thread = std::thread::current().id();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let t = ticks.clone();
        let task = tokio::spawn(poll(
            vec![dir.clone()],
            seen,
            Duration::from_millis(10),
            move || {
                // A slow reload (a large config): blocks its thread for 300 ms.
                let before = t.load(Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(300));
                let after = t.load(Ordering::Relaxed);
                let _ = tx.send((std::thread::current().id(), after - before));
            },
        ));
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        task.abort();
        ticker.abort();
        std::fs::remove_dir_all(&dir).ok();
        let (thread, ticked) = got.expect("reload ran").expect("reload result");
        assert_ne!(thread, runtime_thread, "reload ran on the async worker");
        assert!(
            ticked > 0,
            "the runtime thread was stalled during the reload"
        );
    }
}
