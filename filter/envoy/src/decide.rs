//! The one place that calls the policy core: build a snapshot from resources, and decide one
//! request. Keeping it behind this seam lets the rest of the filter ignore core API churn.

use std::borrow::Cow;
use std::collections::HashMap;

use waypoint_core::decision::{Decision, Forwarding, RulePosition};
use waypoint_core::resource::RawResource;
use waypoint_core::route::{Rule, RuleAction};
use waypoint_core::snapshot::{BuildOptions, ConnectionInputs, Snapshot};
use waypoint_core::{Diagnostics, RandomSource, Request};

use crate::router::{cluster_name_of, RouterPlan};

/// Which waypoint this Envoy is (`namespace/name` of the waypoint Gateway), validated as the
/// host validates `--waypoint`.
pub use waypoint_core::NamespacedName as WaypointName;

/// The compiled config, shared read-only by every worker thread.
#[derive(Debug)]
pub struct Engine {
    snapshot: Snapshot,
    resources: usize,
    /// What is precomputed per rule, by service index (the snapshot's registry order) and
    /// entry: the decision's `rule_position` finds it with two index operations, so the
    /// per-request metadata, counters and router headers format no strings.
    tables: Vec<Option<ServiceTable>>,
    /// Route labels (`Kind/ns/name#rule`) by route index; index 0 is `none` (no rule matched).
    labels: Vec<String>,
    /// Connection facts the snapshot's policies read; the others are not fetched from Envoy.
    inputs: ConnectionInputs,
}

/// The precomputed rules of one bound service's route table.
#[derive(Debug)]
struct ServiceTable {
    /// By entry index in the service's route table.
    entries: Vec<RuleInfo>,
    /// The service's default rule (no route config, or none for the request's port).
    default: RuleInfo,
}

/// What the module precomputes for one rule at one place in the route tables.
#[derive(Debug)]
struct RuleInfo {
    /// Route index of the rule's label in `Engine::labels`.
    label: usize,
    /// Router control headers, for a rule that forwards.
    plan: Option<RouterPlan>,
    /// Istio cluster names by backend index of a forwarding rule: (service port, name) for
    /// each port the backend can be reached on (its own, else each port of the service).
    clusters: Vec<Vec<(u16, String)>>,
}

impl RuleInfo {
    fn new(rule: &Rule, label: usize, ports: &[u16]) -> RuleInfo {
        let RuleAction::Forward(f) = &rule.action else {
            return RuleInfo {
                label,
                plan: None,
                clusters: Vec::new(),
            };
        };
        let plan = (!f.backends.is_empty())
            .then(|| RouterPlan::new(f.timeout, f.retries.as_ref(), f.backend_timeout));
        let clusters = f
            .backends
            .iter()
            .map(|wb| {
                let b = &wb.backend;
                let candidates = match b.port {
                    Some(p) => vec![p],
                    None => ports.to_vec(),
                };
                candidates
                    .into_iter()
                    .map(|port| (port, cluster_name_of(b, port)))
                    .collect()
            })
            .collect();
        RuleInfo {
            label,
            plan,
            clusters,
        }
    }
}

/// Label of route index 0: no rule matched (or a service's default rule).
const NONE: &str = "none";

/// Route labels, each string once (rules compiled per match share their rule's label).
struct Labels {
    list: Vec<String>,
    index: HashMap<String, usize>,
}

impl Labels {
    fn new() -> Labels {
        Labels {
            list: vec![NONE.to_string()],
            index: HashMap::from([(NONE.to_string(), 0)]),
        }
    }

    fn of(&mut self, rule: &Rule) -> usize {
        let id = &rule.id;
        let label = format!("{}#{}", id.resource(), id.rule);
        if let Some(&i) = self.index.get(&label) {
            return i;
        }
        self.list.push(label.clone());
        self.index.insert(label, self.list.len() - 1);
        self.list.len() - 1
    }
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
        let mut labels = Labels::new();
        let mut tables: Vec<Option<ServiceTable>> = Vec::new();
        tables.resize_with(snapshot.registry.services.len(), || None);
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
            let entries = routes
                .entries
                .iter()
                .map(|e| RuleInfo::new(&e.rule, labels.of(&e.rule), &ports))
                .collect();
            // A default rule is reported as no rule matched (`none`).
            let default = RuleInfo::new(&routes.default_rule, 0, &ports);
            if let Some(slot) = tables.get_mut(idx) {
                *slot = Some(ServiceTable { entries, default });
            }
        }
        let snapshot_inputs = snapshot.connection_inputs();
        (
            Engine {
                snapshot,
                resources: resources.len(),
                tables,
                labels: labels.list,
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

    /// The service registry the snapshot decides over (telemetry names its workloads).
    pub fn registry(&self) -> &waypoint_core::registry::Registry {
        &self.snapshot.registry
    }

    /// Number of services bound to this waypoint.
    pub fn bound_services(&self) -> usize {
        self.snapshot.bound_services().count()
    }

    /// What was precomputed for the rule at `pos`.
    /// The route name an EnvoyFilter rate limit patch names for the decision's rule
    /// (`vhost.route.name`): the module steers the request to that rule's generated route
    /// (`x-waypoint-route`). `None` without such patches (the common case: one check).
    pub fn limit_route(&self, d: &Decision<'_>) -> Option<&str> {
        let limits = &self.snapshot.rate_limits;
        if limits.routes.iter().all(|r| r.route_name.is_none()) {
            return None;
        }
        limits.rule_route(&d.service?.hostname, d.matched_rule?)
    }

    fn rule_info(&self, pos: Option<RulePosition>) -> Option<&RuleInfo> {
        let pos = pos?;
        let table = self.tables.get(pos.service)?.as_ref()?;
        match pos.entry {
            Some(i) => table.entries.get(i),
            None => Some(&table.default),
        }
    }

    /// `Kind/namespace/name#rule` of the decision's matched rule (`none` when no rule matched)
    /// and its route index (None for a rule outside the snapshot's route tables).
    pub fn route(&self, d: &Decision<'_>) -> (Cow<'_, str>, Option<usize>) {
        let Some(id) = d.matched_rule else {
            return (Cow::Borrowed(NONE), Some(0));
        };
        let known = self
            .rule_info(d.rule_position)
            .and_then(|r| Some((self.labels.get(r.label)?, r.label)));
        match known {
            Some((label, idx)) => (Cow::Borrowed(label.as_str()), Some(idx)),
            None => (format!("{}#{}", id.resource(), id.rule).into(), None),
        }
    }

    /// Every route label, by route index (index 0 is `none`).
    pub fn route_labels(&self) -> &[String] {
        &self.labels
    }

    /// Istio's cluster name for the forwarding's backend and port (precomputed).
    pub fn cluster_name(&self, pos: Option<RulePosition>, fwd: &Forwarding<'_>) -> Cow<'_, str> {
        let cached = self
            .rule_info(pos)
            .and_then(|r| r.clusters.get(fwd.backend_index))
            .and_then(|ports| ports.iter().find(|(p, _)| *p == fwd.port));
        match cached {
            Some((_, name)) => Cow::Borrowed(name.as_str()),
            None => Cow::Owned(cluster_name_of(fwd.backend, fwd.port)),
        }
    }

    /// Router control headers for a forwarding (precomputed per rule).
    pub fn router_plan(
        &self,
        pos: Option<RulePosition>,
        fwd: &Forwarding<'_>,
    ) -> Cow<'_, RouterPlan> {
        match self.rule_info(pos).and_then(|r| r.plan.as_ref()) {
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

    /// Decide one request with its verified JWT attributes.
    pub fn decide_authenticated<'s>(
        &'s self,
        req: &Request<'_>,
        auth: Option<&waypoint_core::authn::RequestAuth>,
        rng: &mut dyn RandomSource,
    ) -> Decision<'s> {
        self.snapshot.decide_authenticated(req, auth, rng, false)
    }

    /// Authenticate one request (see [`crate::jwt`]).
    pub fn authenticate<'a>(
        &'a self,
        req: &Request<'a>,
    ) -> Result<waypoint_core::authn::Authenticated, waypoint_core::authn::Unauthenticated> {
        crate::jwt::authenticate_request(&self.snapshot, req, crate::jwt::now())
    }

    /// Number of JWT rules (providers `x-waypoint-jwt-<k>` for k below it).
    pub fn jwt_rule_count(&self) -> usize {
        self.snapshot.jwt_rules().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::router_header_values;
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
                let name = engine.cluster_name(d.rule_position, fwd);
                assert!(matches!(name, Cow::Borrowed(_)), "cache miss for {name}");
                assert_eq!(name, cluster_name_of(fwd.backend, fwd.port));
                let plan = engine.router_plan(d.rule_position, fwd);
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

    /// Route labels come from the decision's rule position: the matched rule's label (once in
    /// the label list, whichever match of the rule hit), `none` for a service's default rule.
    #[test]
    fn route_labels_follow_the_rule_position() {
        let loaded = waypoint_loader::load_text(CONFIG, "test", "shop");
        let (engine, _) = Engine::build(&loaded.resources, None);
        let mut rng = SplitMix64(1);
        let mut route = |authority: &str, path: &str| {
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
            assert!(
                d.rule_position.is_some(),
                "{authority}{path}: no rule position"
            );
            let (label, idx) = engine.route(&d);
            let idx = idx.expect("known route");
            assert_eq!(engine.route_labels()[idx], label);
            label.into_owned()
        };
        assert_eq!(
            route("cart.shop.svc.cluster.local", "/slow/x"),
            "VirtualService/shop/cart#0"
        );
        assert_eq!(
            route("cart.shop.svc.cluster.local", "/"),
            "VirtualService/shop/cart#1"
        );
        assert_eq!(route("plain.shop.svc.cluster.local", "/"), "none");
        let labels = engine.route_labels();
        assert_eq!(labels[0], "none");
        let unique: std::collections::BTreeSet<_> = labels.iter().collect();
        assert_eq!(unique.len(), labels.len(), "{labels:?}");
    }
}
