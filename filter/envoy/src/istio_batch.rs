//! Istio's request metrics aggregated in the module: each request adds a compact key (workload
//! ids, service index, code, flags) to a per-thread shard; a flush turns them into counter deltas.
//!
//! Why: an Envoy labelled stat call resolves its 25 tags on every call (~20k instructions, four
//! per request). Envoy histograms take one call per value, so the histograms are kept here, in
//! Istio's default buckets, and exported as the series Prometheus reads from a histogram
//! (`<name>_bucket{..., le}`, `<name>_sum`, `<name>_count`), formatted as Envoy prints its own.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use rustc_hash::{FxHashMap, FxHashSet};
use waypoint_core::registry::{Registry, WorkloadId};
use waypoint_core::telemetry_labels::{
    request_labels, IstioLabels, RequestFacts, SourceFacts, REPORTER, UNKNOWN,
};

/// How long counts may wait in the module before they reach Envoy's stats: Envoy's default
/// stats flush interval, after which its own histograms showed new samples. A flush costs ~1.7M
/// instructions per moving series (tens of labelled counter calls, main thread), so its interval
/// is what the metrics cost per request at a low request rate.
pub const FLUSH_DELAY: Duration = Duration::from_secs(5);

/// Istio's default buckets (Envoy's default histogram buckets: duration in ms, sizes in bytes),
/// as Envoy's `/stats/prometheus` prints their `le` (`{:.32g}`), then `+Inf`.
pub const LE: [&str; 20] = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
    "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf",
];

/// The integer bounds after `0.5` (values are whole ms or bytes: `v <= 0.5` is `v == 0`).
const INT_BOUNDS: [u64; 18] = [
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
    1800000, 3600000,
];

/// The bucket of `v`: the first `le` bound `v` does not exceed.
pub fn bucket_of(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        1 + INT_BOUNDS.partition_point(|&b| b < v)
    }
}

/// Everything a request's 25 labels derive from, besides its source principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    /// The source workload (by source IP, else by the peer identity).
    pub source: Option<WorkloadId>,
    /// The workload of the pod that served the request.
    pub destination: Option<WorkloadId>,
    /// Index of the resolved service in the registry.
    pub service: Option<u32>,
    pub status: u16,
    pub flags: &'static str,
    pub grpc: bool,
}

/// One completed request's histogram values.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub duration_ms: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// Non-cumulative bucket counts and the sum of one histogram series.
#[derive(Debug, Clone, Copy, Default)]
struct Hist {
    buckets: [u64; 20],
    sum: u64,
}

impl Hist {
    fn add(&mut self, v: u64) {
        self.buckets[bucket_of(v)] += 1;
        self.sum = self.sum.saturating_add(v);
    }
}

/// Pending counts of one series: requests, then duration, request and response sizes.
#[derive(Debug, Clone, Copy, Default)]
struct Series {
    requests: u64,
    hists: [Hist; 3],
}

/// What one thread has added since the last flush.
#[derive(Debug, Default)]
struct Shard {
    by_principal: FxHashMap<Box<str>, FxHashMap<SeriesKey, Series>>,
    no_principal: FxHashMap<SeriesKey, Series>,
    /// (policy, service index) → denials.
    denials: FxHashMap<(String, Option<u32>), u64>,
}

impl Shard {
    fn is_empty(&self) -> bool {
        self.by_principal.is_empty() && self.no_principal.is_empty() && self.denials.is_empty()
    }
}

/// Envoy's ids of one histogram's three counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramIds {
    /// `<name>_bucket`, labelled with Istio's labels then `le`.
    pub bucket: usize,
    pub sum: usize,
    pub count: usize,
}

/// Envoy's ids of the metrics, defined in `on_http_filter_config_new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IstioMetricIds {
    pub requests: usize,
    pub duration: HistogramIds,
    pub request_bytes: HistogramIds,
    pub response_bytes: HistogramIds,
    /// `waypoint_policy_denials_total{reporter, policy, destination_service}`.
    pub denials: usize,
}

/// Where a flush sends its counter deltas (Envoy's config-context counters on the main thread,
/// or a stream's when no flush can be scheduled).
pub trait CounterSink {
    fn add(&mut self, id: usize, labels: &[&str], n: u64);
}

/// Shards: a worker's adds take an uncontended lock; the flush takes each lock briefly.
const SHARDS: usize = 8;

/// The next thread's shard.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pending Istio metrics of one filter config.
pub struct IstioBatch {
    shards: [Mutex<Shard>; SHARDS],
    /// Series already exported (flush only): their zero deltas are skipped, so a new series
    /// gets every bucket once and then only the ones that moved.
    seen: Mutex<FxHashSet<(Option<Box<str>>, SeriesKey)>>,
    /// A flush is scheduled (or running) for samples added before this was cleared.
    armed: AtomicBool,
    /// Schedules a flush (set once by the ABI adapter; absent in unit tests).
    arm: OnceLock<Box<dyn Fn() -> bool + Send + Sync>>,
}

impl std::fmt::Debug for IstioBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IstioBatch").finish_non_exhaustive()
    }
}

impl Default for IstioBatch {
    fn default() -> Self {
        IstioBatch {
            shards: Default::default(),
            seen: Mutex::default(),
            armed: AtomicBool::new(false),
            arm: OnceLock::new(),
        }
    }
}

impl IstioBatch {
    /// Install the function that schedules a flush (returns false if it could not).
    pub fn set_arm(&self, arm: Box<dyn Fn() -> bool + Send + Sync>) {
        let _ = self.arm.set(arm);
    }

    /// Count one completed request (and its denial: the policy, with the request's service).
    /// Returns false when no flush is scheduled: the caller flushes now.
    pub fn add(
        &self,
        principal: Option<&str>,
        key: SeriesKey,
        sample: Sample,
        denial: Option<String>,
    ) -> bool {
        let shard = SHARD.with(|s| *s);
        {
            let mut sh = lock(&self.shards[shard]);
            let series = match principal {
                Some(p) => match sh.by_principal.get_mut(p) {
                    Some(m) => m.entry(key).or_default(),
                    None => sh
                        .by_principal
                        .entry(p.into())
                        .or_default()
                        .entry(key)
                        .or_default(),
                },
                None => sh.no_principal.entry(key).or_default(),
            };
            series.requests += 1;
            series.hists[0].add(sample.duration_ms);
            series.hists[1].add(sample.request_bytes);
            series.hists[2].add(sample.response_bytes);
            if let Some(policy) = denial {
                *sh.denials.entry((policy, key.service)).or_default() += 1;
            }
        }
        if !self.armed.load(Ordering::Relaxed) && !self.armed.swap(true, Ordering::AcqRel) {
            let scheduled = self.arm.get().is_some_and(|arm| arm());
            if !scheduled {
                // Nothing will flush: let the next request try again.
                self.armed.store(false, Ordering::Release);
                return false;
            }
        }
        true
    }

    /// Move every pending count into `sink`. Clears the armed flag first, so a request added
    /// during the flush either is taken here or arms the next flush.
    pub fn flush(&self, registry: &Registry, ids: &IstioMetricIds, sink: &mut impl CounterSink) {
        self.armed.store(false, Ordering::Release);
        let mut seen = lock(&self.seen);
        for shard in &self.shards {
            let taken = {
                let mut sh = lock(shard);
                if sh.is_empty() {
                    continue;
                }
                std::mem::take(&mut *sh)
            };
            for (principal, series) in taken.by_principal {
                for (key, s) in series {
                    let new = seen.insert((Some(principal.clone()), key));
                    let labels = labels_of(registry, Some(&principal), &key);
                    emit(ids, &labels, &s, new, sink);
                }
            }
            for (key, s) in taken.no_principal {
                let new = seen.insert((None, key));
                emit(ids, &labels_of(registry, None, &key), &s, new, sink);
            }
            for ((policy, service), n) in taken.denials {
                let host = service_of(registry, service).map_or(UNKNOWN, |(h, _, _)| h);
                sink.add(ids.denials, &[REPORTER, &policy, host], n);
            }
        }
    }
}

/// One series' deltas: the request counter, then per histogram its cumulative buckets, sum and
/// count (buckets and sum that did not move are skipped once the series exists).
fn emit(
    ids: &IstioMetricIds,
    labels: &IstioLabels,
    s: &Series,
    new: bool,
    sink: &mut impl CounterSink,
) {
    let mut values: [&str; 26] = [""; 26];
    for (v, l) in values.iter_mut().zip(labels.values.iter()) {
        *v = l.as_str();
    }
    sink.add(ids.requests, &values[..25], s.requests);
    for (h, hid) in s
        .hists
        .iter()
        .zip([ids.duration, ids.request_bytes, ids.response_bytes])
    {
        let mut cumulative = 0;
        for (n, le) in h.buckets.iter().zip(LE) {
            cumulative += n;
            if cumulative > 0 || new {
                values[25] = le;
                sink.add(hid.bucket, &values, cumulative);
            }
        }
        if h.sum > 0 || new {
            sink.add(hid.sum, &values[..25], h.sum);
        }
        sink.add(hid.count, &values[..25], s.requests);
    }
}

/// (hostname, name, namespace) of the registry's service `index`.
fn service_of(registry: &Registry, index: Option<u32>) -> Option<(&str, &str, &str)> {
    let s = registry.services.get(usize::try_from(index?).ok()?)?;
    Some((&s.hostname, &s.name, &s.namespace))
}

/// (trust domain, namespace, service account) of an Istio SPIFFE principal
/// (`spiffe://<td>/ns/<ns>/sa/<sa>`; neither a trust domain nor a namespace holds a `/`).
/// Split on the `/` byte: a `"/ns/"` substring search cost ~1k instructions per request.
pub fn identity(principal: &str) -> Option<(&str, &str, &str)> {
    let rest = principal.strip_prefix("spiffe://")?;
    let (td, rest) = rest.split_once('/')?;
    let (ns, rest) = rest.strip_prefix("ns/")?.split_once('/')?;
    let sa = rest.strip_prefix("sa/")?;
    Some((td, ns, sa))
}

/// Istio's 25 label values of a series (`telemetry_labels::request_labels`, as the host).
pub fn labels_of(registry: &Registry, principal: Option<&str>, key: &SeriesKey) -> IstioLabels {
    let workloads = &registry.workloads;
    let peer = principal.and_then(identity);
    request_labels(&RequestFacts {
        source: SourceFacts {
            principal,
            namespace: peer.map(|(_, ns, _)| ns),
            workload: key.source.and_then(|id| workloads.get(id)),
            baggage: "",
        },
        service: service_of(registry, key.service),
        destination: key.destination.and_then(|id| workloads.get(id)),
        destination_principal: None,
        trust_domain: peer.map_or("cluster.local", |(td, _, _)| td),
        grpc: key.grpc,
        status: key.status,
        flags: key.flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_istios_bounds() {
        assert_eq!(LE[bucket_of(0)], "0.5");
        assert_eq!(LE[bucket_of(1)], "1");
        assert_eq!(LE[bucket_of(2)], "5");
        assert_eq!(LE[bucket_of(5)], "5");
        assert_eq!(LE[bucket_of(6)], "10");
        assert_eq!(LE[bucket_of(345)], "500");
        assert_eq!(LE[bucket_of(3_600_000)], "3600000");
        assert_eq!(LE[bucket_of(3_600_001)], "+Inf");
        assert_eq!(LE[bucket_of(u64::MAX)], "+Inf");
        // LE and INT_BOUNDS describe the same bounds.
        for (b, le) in INT_BOUNDS.iter().zip(&LE[1..]) {
            assert_eq!(b.to_string(), *le);
        }
    }

    /// The counters a flush emits: (id, labels, n).
    #[derive(Default)]
    struct Sink(Vec<(usize, Vec<String>, u64)>);

    impl CounterSink for Sink {
        fn add(&mut self, id: usize, labels: &[&str], n: u64) {
            self.0
                .push((id, labels.iter().map(|l| l.to_string()).collect(), n));
        }
    }

    const IDS: IstioMetricIds = IstioMetricIds {
        requests: 1,
        duration: HistogramIds {
            bucket: 2,
            sum: 3,
            count: 4,
        },
        request_bytes: HistogramIds {
            bucket: 5,
            sum: 6,
            count: 7,
        },
        response_bytes: HistogramIds {
            bucket: 8,
            sum: 9,
            count: 10,
        },
        denials: 11,
    };

    const KEY: SeriesKey = SeriesKey {
        source: None,
        destination: None,
        service: None,
        status: 200,
        flags: "-",
        grpc: false,
    };

    fn sample(duration_ms: u64) -> Sample {
        Sample {
            duration_ms,
            request_bytes: 100,
            response_bytes: 1000,
        }
    }

    /// (le, n) of the duration buckets a flush emitted.
    fn durations(sink: &Sink) -> Vec<(String, u64)> {
        sink.0
            .iter()
            .filter(|(id, _, _)| *id == IDS.duration.bucket)
            .map(|(_, l, n)| (l[25].clone(), *n))
            .collect()
    }

    #[test]
    fn requests_are_batched_until_the_scheduled_flush() {
        let batch = IstioBatch::default();
        let arms = std::sync::Arc::new(AtomicUsize::new(0));
        let a = arms.clone();
        batch.set_arm(Box::new(move || {
            a.fetch_add(1, Ordering::SeqCst);
            true
        }));
        let principal = Some("spiffe://cluster.local/ns/default/sa/curl");
        assert!(batch.add(principal, KEY, sample(3), None));
        assert!(batch.add(principal, KEY, sample(7), None));
        let denied = SeriesKey { status: 403, ..KEY };
        let policy = Some("default/deny".to_string());
        assert!(batch.add(principal, denied, sample(0), policy));
        assert_eq!(arms.load(Ordering::SeqCst), 1, "one flush for the batch");
        let registry = Registry::default();
        let mut sink = Sink::default();
        batch.flush(&registry, &IDS, &mut sink);
        let requests: Vec<_> = sink.0.iter().filter(|(id, _, _)| *id == 1).collect();
        assert_eq!(requests.len(), 2, "two series: {requests:?}");
        let ok = requests
            .iter()
            .find(|(_, l, _)| l[21] == "200")
            .expect("the 200 series");
        assert_eq!(ok.2, 2);
        assert_eq!(ok.1[5], "spiffe://cluster.local/ns/default/sa/curl");
        assert_eq!(ok.1[4], "default", "source namespace from the principal");
        let sums: Vec<u64> = sink
            .0
            .iter()
            .filter(|(id, l, _)| *id == IDS.duration.sum && l[21] == "200")
            .map(|(_, _, n)| *n)
            .collect();
        assert_eq!(sums, vec![10]);
        assert!(sink.0.contains(&(
            IDS.denials,
            vec!["waypoint".into(), "default/deny".into(), "unknown".into()],
            1
        )));
        // Nothing left; the next request arms the next flush.
        let mut again = Sink::default();
        batch.flush(&registry, &IDS, &mut again);
        assert!(again.0.is_empty());
        assert!(batch.add(principal, KEY, sample(30), None));
        assert_eq!(arms.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_known_series_sends_only_the_buckets_that_moved() {
        let batch = IstioBatch::default();
        let registry = Registry::default();
        assert!(!batch.add(None, KEY, sample(3), None), "no flush scheduled");
        let mut first = Sink::default();
        batch.flush(&registry, &IDS, &mut first);
        let got = durations(&first);
        assert_eq!(got.len(), 20, "a new series gets every bucket");
        assert_eq!(got[0], ("0.5".to_string(), 0));
        assert_eq!(got[2], ("5".to_string(), 1));
        assert_eq!(got[19], ("+Inf".to_string(), 1));
        batch.add(None, KEY, sample(30), None);
        batch.add(None, KEY, sample(40), None);
        let mut second = Sink::default();
        batch.flush(&registry, &IDS, &mut second);
        let got = durations(&second);
        // Cumulative deltas: 30 and 40 are both <= 50, nothing moved below it.
        assert_eq!(got.first(), Some(&("50".to_string(), 2)));
        assert_eq!(got.len(), 15, "{got:?}");
        assert!(got.iter().all(|(_, n)| *n == 2));
    }

    #[test]
    fn principals_parse() {
        assert_eq!(
            identity("spiffe://cluster.local/ns/default/sa/curl"),
            Some(("cluster.local", "default", "curl"))
        );
        assert_eq!(identity("spiffe://td/ns/x"), None);
        assert_eq!(identity("spiffe://td/ns/x/sa/"), Some(("td", "x", "")));
        assert_eq!(identity("spiffe://td/x/ns/y/sa/z"), None);
        assert_eq!(
            identity("spiffe://td/ns/a/sa/b/c"),
            Some(("td", "a", "b/c"))
        );
    }
}
