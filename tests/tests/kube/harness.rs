//! The watcher harness: a fake API server, a `KubeSource` on a kubeconfig pointing at it, and
//! the resource sets it delivers.

use std::time::Duration;

use tokio::sync::mpsc;
use waypoint_core::resource::RawResource;
use waypoint_kube::{KubeOptions, KubeSource};
use waypoint_tests::kube::FakeApiServer;
use waypoint_tests::pki::TempDir;

pub const LIMIT: Duration = Duration::from_secs(60);

/// Fast timings for tests: 50 ms quiet, a missing CRD listed again every 300 ms.
pub fn options() -> KubeOptions {
    KubeOptions {
        debounce: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
        missing_crd_retry: Duration::from_millis(300),
        ..Default::default()
    }
}

/// A kube client for `fake`, through a kubeconfig file (as `--kubeconfig`).
pub async fn client(fake: &FakeApiServer, dir: &TempDir) -> waypoint_kube::Client {
    let path = fake.kubeconfig(dir.path());
    waypoint_kube::client(Some(&path)).await.expect("client")
}

#[derive(Debug)]
pub struct Watched {
    pub source: KubeSource,
    pub sets: mpsc::UnboundedReceiver<Vec<RawResource>>,
    _dir: TempDir,
}

/// Logs to the test output (`RUST_LOG`, default warnings).
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

impl Watched {
    pub async fn start(fake: &FakeApiServer) -> Watched {
        logs();
        let dir = TempDir::new("kube");
        let (tx, sets) = mpsc::unbounded_channel();
        let source = KubeSource::start(client(fake, &dir).await, options(), move |set| {
            let _ = tx.send(set);
        });
        Watched {
            source,
            sets,
            _dir: dir,
        }
    }

    /// The next delivered set.
    pub async fn next(&mut self) -> Vec<RawResource> {
        tokio::time::timeout(Duration::from_secs(20), self.sets.recv())
            .await
            .expect("a delivery in time")
            .expect("source running")
    }

    /// Sets until one satisfies `f` (panics after 20 s).
    pub async fn until(
        &mut self,
        what: &str,
        f: impl Fn(&[RawResource]) -> bool,
    ) -> Vec<RawResource> {
        let wait = async {
            loop {
                let set = self.sets.recv().await.expect("source running");
                if f(&set) {
                    return set;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .unwrap_or_else(|_| panic!("no delivered set where {what}"))
    }

    /// Whether no set is delivered for `d`.
    pub async fn quiet_for(&mut self, d: Duration) -> bool {
        tokio::time::timeout(d, self.sets.recv()).await.is_err()
    }
}

/// Names (`namespace/name`) of the `kind` resources of a set, sorted.
pub fn names(set: &[RawResource], kind: &str) -> Vec<String> {
    let mut v: Vec<String> = set
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect();
    v.sort();
    v
}
