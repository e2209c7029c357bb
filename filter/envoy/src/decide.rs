//! The one place that calls the policy core: build a snapshot from resources, and decide one
//! request. Keeping it behind this seam lets the rest of the filter ignore core API churn.

use std::borrow::Cow;
// Keys are addresses inside the immutable snapshot, not peer input: FxHash is safe and cheap.
use rustc_hash::FxHashMap as HashMap;

use waypoint_core::decision::{Decision, Forwarding};
use waypoint_core::istio::is_default_retry_policy;
use waypoint_core::resource::RawResource;
use waypoint_core::route::{BackendRef, RetryPolicy, RuleAction, RuleId, WeightedBackend};
use waypoint_core::snapshot::{BuildOptions, ConnectionInputs, Snapshot};
use waypoint_core::{Diagnostics, RandomSource, Request};

/// Which waypoint this Envoy is (`namespace/name` of the waypoint Gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaypointName {
    pub namespace: String,
    pub name: String,
}

/// The compiled config, shared read-only by every worker thread.
#[derive(Debug)]
pub struct Engine {
    snapshot: Snapshot,
    resources: usize,
    /// `Kind/ns/name#rule` of every rule, built once (keyed by the rule id's address in the
    /// immutable snapshot) so the per-request metadata and counters do not format strings.
    route_labels: HashMap<usize, usize>,
    /// The labels by route index; index 0 is `none` (no rule matched).
    labels: Vec<String>,
    /// Router control headers of every forwarding rule, formatted once (keyed by the address
    /// of the rule's backend list, which every `Forwarding` of that rule borrows).
    router_headers: HashMap<usize, RouterPlan>,
    /// Istio cluster name of every (backend address in the snapshot, service port).
    cluster_names: HashMap<(usize, u16), String>,
    /// Connection facts the snapshot's policies read; the others are not fetched from Envoy.
    inputs: ConnectionInputs,
}

/// The router control headers of one forwarding rule, for both route-table layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPlan {
    /// `RouteTable::Rematch`: every timeout and retry header.
    pub all: Vec<(&'static str, String)>,
    /// `RouteTable::Waypoint`: the headers to send ...
    pub waypoint: Vec<(&'static str, String)>,
    /// ... and whether Envoy must match the table again (to reach the `x-waypoint-retry`
    /// route, for a retry policy other than Istio's default).
    pub waypoint_rematch: bool,
}

impl RouterPlan {
    pub fn new(
        timeout: Option<std::time::Duration>,
        retries: Option<&RetryPolicy>,
        backend_timeout: Option<std::time::Duration>,
    ) -> RouterPlan {
        let all = crate::filter::router_header_values(timeout, retries, backend_timeout);
        let (waypoint, waypoint_rematch) = match retries {
            // The catch-all route carries this very policy (and Istio's host predicates).
            Some(r) if is_default_retry_policy(r) => (
                crate::filter::router_header_values(timeout, None, backend_timeout),
                false,
            ),
            // No retries, or other conditions than the route's: the retry route has none, so
            // the headers say everything (no x-envoy-retry-on there = no retries).
            _ => {
                let mut h = vec![(crate::filter::RETRY_HEADER, "1".to_string())];
                h.extend(all.iter().cloned());
                (h, true)
            }
        };
        RouterPlan {
            all,
            waypoint,
            waypoint_rematch,
        }
    }
}

fn rule_key(id: &RuleId) -> usize {
    id as *const RuleId as usize
}

fn forward_key(backends: &[WeightedBackend]) -> usize {
    backends.as_ptr() as usize
}

fn backend_key(b: &BackendRef, port: u16) -> (usize, u16) {
    (b as *const BackendRef as usize, port)
}

impl Engine {
    /// Compile `resources` for `waypoint`. Diagnostics carry every error and warning.
    /// `None` = the only waypoint Gateway in the config.
    pub fn build(
        resources: &[RawResource],
        waypoint: Option<&WaypointName>,
    ) -> (Engine, Diagnostics) {
        let opts = BuildOptions {
            waypoint: waypoint.map(|w| (w.namespace.clone(), w.name.clone())),
            // Ext_authz providers come from the mesh ConfigMap (see ext_authz.rs).
            custom_providers: Vec::new(),
            ..BuildOptions::default()
        };
        let (snapshot, diags) = Snapshot::build(resources, &opts);
        let mut route_labels = HashMap::default();
        let mut labels = vec!["none".to_string()];
        let mut router_headers = HashMap::default();
        let mut cluster_names = HashMap::default();
        for idx in snapshot.bound_services() {
            let Some(routes) = snapshot.service_routes(idx) else {
                continue;
            };
            let ports: Vec<u16> = snapshot
                .registry
                .services
                .get(idx)
                .map(|s| s.ports.iter().map(|p| p.port).collect())
                .unwrap_or_default();
            let rules = routes
                .entries
                .iter()
                .map(|e| &*e.rule)
                .chain(std::iter::once(&*routes.default_rule));
            for rule in rules {
                let id = &rule.id;
                route_labels.entry(rule_key(id)).or_insert_with(|| {
                    labels.push(format!("{}#{}", id.resource(), id.rule));
                    labels.len() - 1
                });
                let RuleAction::Forward(f) = &rule.action else {
                    continue;
                };
                if f.backends.is_empty() {
                    continue;
                }
                router_headers
                    .entry(forward_key(&f.backends))
                    .or_insert_with(|| {
                        RouterPlan::new(f.timeout, f.retries.as_ref(), f.backend_timeout)
                    });
                let backends = f
                    .backends
                    .iter()
                    .map(|wb| &wb.backend)
                    .chain(f.mirrors.iter().map(|m| &m.backend));
                for b in backends {
                    let candidates: Vec<u16> = match b.port {
                        Some(p) => vec![p],
                        None => ports.clone(),
                    };
                    for port in candidates {
                        cluster_names
                            .entry(backend_key(b, port))
                            .or_insert_with(|| cluster_name_of(b, port));
                    }
                }
            }
        }
        let snapshot_inputs = snapshot.connection_inputs();
        (
            Engine {
                snapshot,
                resources: resources.len(),
                route_labels,
                labels,
                router_headers,
                cluster_names,
                inputs: snapshot_inputs,
            },
            diags,
        )
    }

    /// Number of resources the engine was built from.
    pub fn resource_count(&self) -> usize {
        self.resources
    }

    /// `namespace/name` of the waypoint the snapshot was built for (`?` if none was found).
    pub fn waypoint_name(&self) -> String {
        match &self.snapshot.waypoint {
            Some(w) => format!("{}/{}", w.namespace, w.name),
            None => "?".to_string(),
        }
    }

    /// Number of services bound to this waypoint.
    pub fn bound_services(&self) -> usize {
        self.snapshot.bound_services().count()
    }

    /// `Kind/namespace/name#rule` of a matched rule (`none` when no rule matched) and its route
    /// index (None for a rule outside the snapshot's route tables).
    pub fn route(&self, rule: Option<&RuleId>) -> (Cow<'_, str>, Option<usize>) {
        let idx = match rule {
            None => Some(0),
            Some(id) => self.route_labels.get(&rule_key(id)).copied(),
        };
        match (idx.and_then(|i| self.labels.get(i)), rule) {
            (Some(label), _) => (Cow::Borrowed(label.as_str()), idx),
            (None, Some(id)) => (format!("{}#{}", id.resource(), id.rule).into(), None),
            (None, None) => ("none".into(), None),
        }
    }

    /// Every route label, by route index (index 0 is `none`).
    pub fn route_labels(&self) -> &[String] {
        &self.labels
    }

    /// Istio's cluster name for the forwarding's backend and port (precomputed).
    pub fn cluster_name(&self, fwd: &Forwarding<'_>) -> Cow<'_, str> {
        match self.cluster_names.get(&backend_key(fwd.backend, fwd.port)) {
            Some(name) => Cow::Borrowed(name.as_str()),
            None => Cow::Owned(cluster_name_of(fwd.backend, fwd.port)),
        }
    }

    /// Router control headers for a forwarding (precomputed per rule).
    pub fn router_plan(&self, fwd: &Forwarding<'_>) -> Cow<'_, RouterPlan> {
        let cached = (!fwd.candidates.is_empty())
            .then(|| self.router_headers.get(&forward_key(fwd.candidates)))
            .flatten();
        match cached {
            Some(plan) => Cow::Borrowed(plan),
            None => Cow::Owned(RouterPlan::new(
                fwd.timeout,
                fwd.retries,
                fwd.backend_timeout,
            )),
        }
    }

    /// Connection facts the decisions can depend on.
    pub fn connection_inputs(&self) -> ConnectionInputs {
        self.inputs
    }

    /// Decide one request.
    pub fn decide<'s>(&'s self, req: &Request<'_>, rng: &mut dyn RandomSource) -> Decision<'s> {
        self.snapshot.decide(req, rng, false)
    }
}

/// Istio's cluster name: `outbound|<port>|<subset>|<host>`. We keep Istio's convention so one
/// Envoy config (or an xDS server generating it) can hold one cluster per service/port/subset
/// and the filter selects among them with `cluster_header`; the router then does load
/// balancing, timeouts, retries and outlier detection per cluster as in Istio.
pub fn cluster_name_of(b: &BackendRef, port: u16) -> String {
    format!(
        "outbound|{port}|{}|{}",
        b.subset.as_deref().unwrap_or(""),
        b.host
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::router_header_values;
    use waypoint_core::SplitMix64;

    const CONFIG: &str = concat!(
        waypoint_core::waypoint_gateway_yaml!("shop"),
        r#"apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/use-waypoint: waypoint}}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {clusterIP: 10.96.9.1, ports: [{port: 80, name: http}, {port: 8080, name: http-alt}]}
---
apiVersion: v1
kind: Service
metadata: {name: plain, namespace: shop}
spec: {clusterIP: 10.96.9.2, ports: [{port: 80, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - match: [{uri: {prefix: /slow}}]
    timeout: 3s
    retries: {attempts: 4, perTryTimeout: 500ms, retryOn: "5xx,reset", }
    route: [{destination: {host: cart, subset: v2}}]
  - route:
    - {destination: {host: cart, subset: v1}, weight: 90}
    - {destination: {host: cart, subset: v2, port: {number: 8080}}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: shop}
spec:
  host: cart
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"#
    );

    /// The per-rule caches give exactly what formatting at request time would, and they are
    /// hits (borrowed) for every decision the snapshot makes.
    #[test]
    fn cached_cluster_names_and_router_headers_match_the_decisions() {
        let loaded = waypoint_loader::load_text(CONFIG, "test", "shop");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let resources = loaded.resources;
        let (engine, diags) = Engine::build(&resources, None);
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        let mut rng = SplitMix64(7);
        let mut seen = std::collections::BTreeSet::new();
        for (authority, path) in [
            ("cart.shop.svc.cluster.local", "/slow/x"),
            ("cart.shop.svc.cluster.local", "/"),
            ("cart:8080", "/"),
            ("plain.shop.svc.cluster.local", "/"),
        ] {
            for _ in 0..200 {
                let req = waypoint_core::Request {
                    method: "GET",
                    scheme: "http",
                    authority,
                    path,
                    headers: &[],
                    source_principal: None,
                    source_ip: None,
                    destination: authority,
                    sni: None,
                };
                let d = engine.decide(&req, &mut rng);
                let fwd = d.forward.as_ref().expect("routed");
                let name = engine.cluster_name(fwd);
                assert!(matches!(name, Cow::Borrowed(_)), "cache miss for {name}");
                assert_eq!(name, cluster_name_of(fwd.backend, fwd.port));
                let plan = engine.router_plan(fwd);
                assert!(
                    matches!(plan, Cow::Borrowed(_)),
                    "router headers not cached"
                );
                assert_eq!(
                    plan.all,
                    router_header_values(fwd.timeout, fwd.retries, fwd.backend_timeout)
                );
                seen.insert(name.into_owned());
            }
        }
        let want = [
            "outbound|80|v1|cart.shop.svc.cluster.local",
            "outbound|80|v2|cart.shop.svc.cluster.local",
            "outbound|8080|v2|cart.shop.svc.cluster.local",
            "outbound|80||plain.shop.svc.cluster.local",
        ];
        for w in want {
            assert!(seen.contains(w), "{w} never chosen: {seen:?}");
        }
    }

    #[test]
    fn router_plan_restates_only_what_the_waypoint_table_lacks() {
        use std::time::Duration;
        let default = waypoint_core::istio::default_retry_policy();
        let custom = RetryPolicy {
            attempts: 3,
            retry_on: vec!["5xx".into()],
            ..default.clone()
        };
        let timeout = Some(Duration::from_millis(1500));
        // Istio's default retries: the catch-all route has them; only the timeout is sent.
        let p = RouterPlan::new(timeout, Some(&default), None);
        assert!(!p.waypoint_rematch);
        assert_eq!(
            p.waypoint,
            vec![("x-envoy-upstream-rq-timeout-ms", "1500".to_string())]
        );
        assert!(p.all.iter().any(|(k, _)| *k == "x-envoy-retry-on"));
        // Other retries: steer to the retry route and state them in headers.
        let p = RouterPlan::new(None, Some(&custom), None);
        assert!(p.waypoint_rematch);
        assert_eq!(
            p.waypoint[0],
            (crate::filter::RETRY_HEADER, "1".to_string())
        );
        assert_eq!(&p.waypoint[1..], p.all.as_slice());
        assert!(p.all.contains(&("x-envoy-max-retries", "3".to_string())));
        assert!(p.all.contains(&("x-envoy-retry-on", "5xx".to_string())));
        // No retries (Istio: attempts 0 means no retry policy): the retry route, no conditions.
        let p = RouterPlan::new(None, None, None);
        assert!(p.waypoint_rematch);
        assert_eq!(
            p.waypoint,
            vec![(crate::filter::RETRY_HEADER, "1".to_string())]
        );
        assert!(p.all.is_empty());
    }
}
