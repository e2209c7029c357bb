//! Per-node snapshot cache: one snapshot per waypoint (from the node), rebuilt when the
//! config changes (a failed rebuild keeps the last good one), and a log of pushes and NACKs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::watch;
use tracing::{info, warn};

use super::jwks::JwksInliner;
use super::snapshot::{Snapshot, Source};
use super::XdsError;

/// Node metadata key naming the waypoint (`NS/NAME`), set by `waypoint bootstrap --xds`.
pub const WAYPOINT_KEY: &str = "WAYPOINT";
const LOG_LIMIT: usize = 1024;

/// One response sent to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub node: String,
    pub type_url: String,
    pub delta: bool,
    pub version: String,
    pub nonce: String,
    /// Names of the resources carried.
    pub names: Vec<String>,
    /// Delta only: names removed.
    pub removed: Vec<String>,
    /// Encoded bytes of the resources carried.
    pub bytes: usize,
}

/// A rejection from Envoy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    pub node: String,
    pub type_url: String,
    pub nonce: String,
    /// Envoy's `error_detail.message`.
    pub message: String,
}

/// Builds snapshots (the production builder is [`Source::build`]; tests may inject one).
pub type Builder = dyn Fn(Option<&str>) -> Result<Snapshot, XdsError> + Send + Sync;

/// Snapshots by waypoint, plus the push/NACK log.
pub struct Cache {
    builder: Box<Builder>,
    default_waypoint: Option<String>,
    nodes: Mutex<BTreeMap<String, watch::Sender<Arc<Snapshot>>>>,
    pushes: Mutex<VecDeque<Push>>,
    nacks: Mutex<VecDeque<Nack>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("default_waypoint", &self.default_waypoint)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn push_bounded<T>(q: &Mutex<VecDeque<T>>, v: T) {
    let mut q = lock(q);
    if q.len() == LOG_LIMIT {
        q.pop_front();
    }
    q.push_back(v);
}

impl Cache {
    pub fn new(builder: Box<Builder>, default_waypoint: Option<String>) -> Arc<Cache> {
        Arc::new(Cache {
            builder,
            default_waypoint,
            nodes: Mutex::new(BTreeMap::new()),
            pushes: Mutex::new(VecDeque::new()),
            nacks: Mutex::new(VecDeque::new()),
        })
    }

    /// A cache over `source` (the production setup).
    pub fn from_source(source: Source) -> Arc<Cache> {
        let default = source.inputs.waypoint.clone();
        Cache::new(Box::new(move |w| source.build(w)), default)
    }

    /// A cache over `source` whose RequestAuthentication key sets come from `jwks` (fetched
    /// by the server and inlined, as istiod does; see [`super::jwks::spawn_refresher`]).
    pub fn from_source_with_jwks(source: Source, jwks: Arc<JwksInliner>) -> Arc<Cache> {
        let default = source.inputs.waypoint.clone();
        Cache::new(
            Box::new(move |w| source.build_with(w, Some(&jwks))),
            default,
        )
    }

    /// The waypoint a node is for: metadata `WAYPOINT`, else a `NS/NAME` node cluster, else
    /// `--waypoint`; "" means "the only waypoint in the config".
    pub fn waypoint_of(&self, node: Option<&Node>) -> String {
        use envoy_types::pb::google::protobuf::value::Kind;
        let meta = node
            .and_then(|n| n.metadata.as_ref())
            .and_then(|m| m.fields.get(WAYPOINT_KEY))
            .and_then(|v| match &v.kind {
                Some(Kind::StringValue(s)) if !s.is_empty() => Some(s.clone()),
                _ => None,
            });
        meta.or_else(|| {
            node.map(|n| n.cluster.clone())
                .filter(|c| waypoint_core::NamespacedName::parse(c).is_ok())
        })
        .or_else(|| self.default_waypoint.clone())
        .unwrap_or_default()
    }

    /// Watch the snapshot of `waypoint`, building it on first use.
    pub fn subscribe(&self, waypoint: &str) -> Result<watch::Receiver<Arc<Snapshot>>, XdsError> {
        let mut nodes = lock(&self.nodes);
        if let Some(tx) = nodes.get(waypoint) {
            return Ok(tx.subscribe());
        }
        let snap = (self.builder)(non_empty(waypoint))?;
        info!(
            waypoint,
            resources = snap.types.values().map(|m| m.len()).sum::<usize>(),
            "xds: snapshot built"
        );
        let (tx, rx) = watch::channel(Arc::new(snap));
        nodes.insert(waypoint.to_string(), tx);
        Ok(rx)
    }

    /// Rebuild every known waypoint's snapshot. A failure (config, certificate or encoding
    /// error) is logged and the last good snapshot stays. Returns how many changed.
    pub fn rebuild(&self) -> usize {
        let nodes = lock(&self.nodes);
        let mut changed = 0;
        for (w, tx) in nodes.iter() {
            match (self.builder)(non_empty(w)) {
                Ok(snap) => {
                    if **tx.borrow() != snap {
                        changed += 1;
                        info!(waypoint = %w, "xds: snapshot changed; pushing");
                        tx.send_replace(Arc::new(snap));
                    }
                }
                Err(e) => {
                    warn!(waypoint = %w, "xds: config change rejected, last good snapshot stays: {e}")
                }
            }
        }
        changed
    }

    /// Replace a waypoint's snapshot directly (tests: inject what our validation would not make).
    pub fn set(&self, waypoint: &str, snap: Snapshot) {
        let mut nodes = lock(&self.nodes);
        match nodes.get(waypoint) {
            Some(tx) => {
                tx.send_replace(Arc::new(snap));
            }
            None => {
                nodes.insert(waypoint.to_string(), watch::channel(Arc::new(snap)).0);
            }
        }
    }

    /// The current snapshot of a waypoint.
    pub fn current(&self, waypoint: &str) -> Option<Arc<Snapshot>> {
        lock(&self.nodes)
            .get(waypoint)
            .map(|tx| Arc::clone(&tx.borrow()))
    }

    pub fn record_push(&self, p: Push) {
        push_bounded(&self.pushes, p);
    }

    pub fn record_nack(&self, n: Nack) {
        push_bounded(&self.nacks, n);
    }

    /// Responses sent (most recent last, bounded).
    pub fn pushes(&self) -> Vec<Push> {
        lock(&self.pushes).iter().cloned().collect()
    }

    /// NACKs received (most recent last, bounded).
    pub fn nacks(&self) -> Vec<Nack> {
        lock(&self.nacks).iter().cloned().collect()
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}
