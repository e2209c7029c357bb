//! Per-request Istio metrics without per-request label work: the counter and histogram handles
//! of each label set are cached under the few request facts the labels derive from, so a
//! request costs one hash of those facts, not ~25 label strings built and hashed twice.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;

use hashbrown::{Equivalent, HashMap};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use rustc_hash::FxBuildHasher;

use crate::telemetry::metrics::{Metrics, RequestLabels};
use crate::telemetry::response_flag::ResponseFlag;

/// Label sets kept; past this the cache starts over (the metric families cap their series
/// themselves, see `admin::bounded`).
const MAX_ENTRIES: usize = 10_000;

/// Facts with a longer peer-supplied string (baggage, principal) are not cached: the key
/// would hold the whole string, and their labels are capped anyway.
const MAX_CACHED_FACT: usize = 1024;

/// The request facts the labels are computed from (borrowed from the request).
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub baggage: &'a str,
    pub peer_namespace: Option<&'a str>,
    pub principal: Option<&'a str>,
    /// The service hostname, or the CONNECT destination when no service resolved.
    pub service: &'a str,
    pub has_service: bool,
    /// The resolved service's (name, namespace).
    pub service_id: Option<(&'a str, &'a str)>,
    /// Destination identity (trust domain, namespace, service account) of an HBONE upstream.
    pub destination_identity: Option<(&'a str, &'a str, &'a str)>,
    pub status: u16,
    pub flags: ResponseFlag,
    pub grpc: bool,
    /// The source IP (names the source workload when the registry has its pod).
    pub source_ip: Option<IpAddr>,
    /// The IP of the endpoint that served the request (names the destination workload).
    pub endpoint_ip: Option<IpAddr>,
    /// The config generation whose registry names the workloads.
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnedFacts {
    baggage: String,
    peer_namespace: Option<String>,
    principal: Option<String>,
    service: String,
    has_service: bool,
    service_id: Option<(String, String)>,
    destination_identity: Option<(String, String, String)>,
    status: u16,
    flags: ResponseFlag,
    grpc: bool,
    source_ip: Option<IpAddr>,
    endpoint_ip: Option<IpAddr>,
    generation: u64,
}

fn hash_facts<H: Hasher>(f: &RequestFacts<'_>, h: &mut H) {
    f.baggage.hash(h);
    f.peer_namespace.hash(h);
    f.principal.hash(h);
    f.service.hash(h);
    f.has_service.hash(h);
    f.service_id.hash(h);
    f.destination_identity.hash(h);
    f.status.hash(h);
    f.flags.hash(h);
    f.grpc.hash(h);
    f.source_ip.hash(h);
    f.endpoint_ip.hash(h);
    f.generation.hash(h);
}

impl OwnedFacts {
    fn borrow(&self) -> RequestFacts<'_> {
        RequestFacts {
            baggage: &self.baggage,
            peer_namespace: self.peer_namespace.as_deref(),
            principal: self.principal.as_deref(),
            service: &self.service,
            has_service: self.has_service,
            service_id: self
                .service_id
                .as_ref()
                .map(|(a, b)| (a.as_str(), b.as_str())),
            destination_identity: self
                .destination_identity
                .as_ref()
                .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())),
            status: self.status,
            flags: self.flags,
            grpc: self.grpc,
            source_ip: self.source_ip,
            endpoint_ip: self.endpoint_ip,
            generation: self.generation,
        }
    }
}

impl Hash for OwnedFacts {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_facts(&self.borrow(), h);
    }
}

impl Hash for RequestFacts<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_facts(self, h);
    }
}

impl PartialEq for RequestFacts<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.baggage == o.baggage
            && self.peer_namespace == o.peer_namespace
            && self.principal == o.principal
            && self.service == o.service
            && self.has_service == o.has_service
            && self.service_id == o.service_id
            && self.destination_identity == o.destination_identity
            && self.status == o.status
            && self.flags == o.flags
            && self.grpc == o.grpc
            && self.source_ip == o.source_ip
            && self.endpoint_ip == o.endpoint_ip
            && self.generation == o.generation
    }
}

impl Equivalent<OwnedFacts> for RequestFacts<'_> {
    fn equivalent(&self, key: &OwnedFacts) -> bool {
        *self == key.borrow()
    }
}

impl From<RequestFacts<'_>> for OwnedFacts {
    fn from(f: RequestFacts<'_>) -> Self {
        OwnedFacts {
            baggage: f.baggage.to_string(),
            peer_namespace: f.peer_namespace.map(str::to_string),
            principal: f.principal.map(str::to_string),
            service: f.service.to_string(),
            has_service: f.has_service,
            service_id: f.service_id.map(|(a, b)| (a.to_string(), b.to_string())),
            destination_identity: f
                .destination_identity
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())),
            status: f.status,
            flags: f.flags,
            grpc: f.grpc,
            source_ip: f.source_ip,
            endpoint_ip: f.endpoint_ip,
            generation: f.generation,
        }
    }
}

/// The handles of one label set: count, duration, request and response sizes.
#[derive(Clone)]
struct Handles {
    count: Counter,
    request_bytes: Histogram,
    response: ResponseHandles,
}

/// What is observed once the response has streamed: its duration and size.
#[derive(Clone, Debug)]
pub struct ResponseHandles {
    pub duration: Histogram,
    pub response_bytes: Histogram,
}

impl Handles {
    fn of(metrics: &Metrics, labels: &RequestLabels) -> Self {
        Handles {
            count: metrics.requests.get_or_create(labels),
            request_bytes: metrics.request_bytes.get_or_create(labels),
            response: ResponseHandles {
                duration: metrics.duration.get_or_create(labels),
                response_bytes: metrics.response_bytes.get_or_create(labels),
            },
        }
    }

    fn observe(&self, request_bytes: u64) -> ResponseHandles {
        self.count.inc();
        self.request_bytes.observe(request_bytes as f64);
        self.response.clone()
    }
}

/// Cached metric handles by request facts.
#[derive(Default)]
pub struct RequestMetrics {
    handles: Mutex<HashMap<OwnedFacts, Handles, FxBuildHasher>>,
}

impl std::fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMetrics").finish_non_exhaustive()
    }
}

impl RequestMetrics {
    /// Count one request of `request_bytes`; `labels` builds the full label set on a cache
    /// miss. Returns the duration and response-size histograms of the request's label set,
    /// observed once the response body has streamed (Istio's duration runs to the end of the
    /// response; see `body_size`).
    pub fn record(
        &self,
        metrics: &Metrics,
        facts: RequestFacts<'_>,
        request_bytes: u64,
        labels: impl FnOnce() -> RequestLabels,
    ) -> ResponseHandles {
        let mut facts = facts;
        if !facts.has_service {
            // The CONNECT authority of an unresolved destination is labelled `unknown` (see
            // `RequestLabels`'s sanitizer): it must not key the cache either.
            facts.service = "";
        }
        if facts.baggage.len() > MAX_CACHED_FACT
            || facts.principal.is_some_and(|p| p.len() > MAX_CACHED_FACT)
            || facts.service.len() > MAX_CACHED_FACT
        {
            return Handles::of(metrics, &labels()).observe(request_bytes);
        }
        let mut map = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get(&facts) {
            return h.observe(request_bytes);
        }
        let h = Handles::of(metrics, &labels());
        let response = h.observe(request_bytes);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(facts.into(), h);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: u16, principal: Option<&str>) -> RequestFacts<'_> {
        RequestFacts {
            baggage: "k8s.deployment.name=sleep",
            peer_namespace: Some("default"),
            principal,
            service: "reviews.default.svc.cluster.local",
            has_service: true,
            service_id: Some(("reviews", "default")),
            destination_identity: Some(("cluster.local", "default", "reviews")),
            status,
            flags: ResponseFlag::None,
            grpc: false,
            source_ip: None,
            endpoint_ip: None,
            generation: 1,
        }
    }

    fn labels(status: u16, principal: &str) -> RequestLabels {
        RequestLabels {
            reporter: "waypoint".into(),
            source_principal: principal.into(),
            response_code: status.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn cached_handles_count_into_the_same_series() {
        let m = Metrics::new();
        let cache = RequestMetrics::default();
        let a = "spiffe://cluster.local/ns/default/sa/a";
        let b = "spiffe://cluster.local/ns/default/sa/b";
        let mut built = 0;
        for (status, p) in [(200, a), (200, a), (503, a), (200, b), (200, a)] {
            let r = cache.record(&m, facts(status, Some(p)), 10, || {
                built += 1;
                labels(status, p)
            });
            r.duration.observe(1.0);
        }
        assert_eq!(built, 3, "labels built once per distinct fact set");
        let text = m.encode();
        let count = |status: &str, p: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("istio_requests_total{")
                        && l.contains(&format!("response_code=\"{status}\""))
                        && l.contains(&format!("source_principal=\"{p}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        assert_eq!(count("200", a).as_deref(), Some("3"), "{text}");
        assert_eq!(count("503", a).as_deref(), Some("1"), "{text}");
        assert_eq!(count("200", b).as_deref(), Some("1"), "{text}");
        assert!(
            text.contains("istio_request_duration_milliseconds_count{"),
            "{text}"
        );
    }

    #[test]
    fn borrowed_and_owned_facts_hash_alike() {
        use std::hash::BuildHasher;
        let f = facts(200, Some("p"));
        let owned: OwnedFacts = f.into();
        let h = FxBuildHasher;
        assert_eq!(h.hash_one(f), h.hash_one(&owned));
        assert!(f.equivalent(&owned));
        assert!(!facts(201, Some("p")).equivalent(&owned));
        assert!(!facts(200, None).equivalent(&owned));
    }

    #[test]
    fn unresolved_destinations_share_one_entry_and_series() {
        let m = Metrics::new();
        let cache = RequestMetrics::default();
        let long = "a".repeat(30_000);
        let authorities: Vec<String> = (0..20).map(|i| format!("{long}{i}:80")).collect();
        let mut built = 0;
        for a in &authorities {
            let f = RequestFacts {
                service: a,
                has_service: false,
                service_id: None,
                destination_identity: None,
                ..facts(503, Some("p"))
            };
            cache.record(&m, f, 10, || {
                built += 1;
                RequestLabels {
                    destination_service: a.clone(),
                    destination_service_name: "unknown".into(),
                    response_code: "503".into(),
                    ..Default::default()
                }
            });
        }
        assert_eq!(built, 1, "one cache entry for every unresolved destination");
        let text = m.encode();
        assert!(!text.contains(&long[..300]));
        let line = text
            .lines()
            .find(|l| l.starts_with("istio_requests_total{"))
            .expect("series");
        assert!(line.contains("destination_service=\"unknown\""), "{line}");
        assert!(line.ends_with(" 20"), "{line}");
    }
}
