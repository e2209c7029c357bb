//! Snapshot construction: compile every resource, bind services to the waypoint, pick each
//! service's route source, and index policies by target.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use super::{BuildOptions, RouteSource, ServiceRoutes, Snapshot};
use crate::authz::{compile_policy, PolicyTargets};
use crate::error::{ConfigError, Diagnostics};
use crate::gateway::{
    compile_grpc_route_with_grants, compile_http_route_with_grants, ordered_entries_for_parent,
    CompiledRoute, ParentKey, ReferenceGrants,
};
use crate::istio::{
    compile_destination_rule, compile_virtual_service, merge_destination_rules, merge_for_host_at,
    CompiledDestinationRule, CompiledVirtualService,
};
use crate::mesh::{mesh_from_resources, MeshConfig};
use crate::registry::binding::service_waypoint;
use crate::registry::{find_waypoints, Registry, Waypoint};
use crate::resource::RawResource;
use crate::route::{
    BackendRef, Forward, RequestMatch, RouteEntry, Rule, RuleAction, RuleId, WeightedBackend,
};
use crate::service::{ServiceInfo, ServiceKind};

/// Kinds the waypoint reads; anything else is skipped with a note.
fn known_kind(r: &RawResource) -> bool {
    match r.group() {
        "" => matches!(r.kind.as_str(), "Service" | "Namespace" | "Pod"),
        "discovery.k8s.io" => r.kind == "EndpointSlice",
        "telemetry.istio.io" => r.kind == "Telemetry",
        "networking.istio.io" => matches!(
            r.kind.as_str(),
            "VirtualService" | "DestinationRule" | "ServiceEntry" | "EnvoyFilter"
        ),
        "security.istio.io" => matches!(
            r.kind.as_str(),
            "AuthorizationPolicy" | "RequestAuthentication"
        ),
        "gateway.networking.k8s.io" => matches!(
            r.kind.as_str(),
            "HTTPRoute" | "GRPCRoute" | "Gateway" | "GatewayClass" | "ReferenceGrant"
        ),
        _ => false,
    }
}

fn version_ok(r: &RawResource) -> bool {
    let v = r.version();
    match r.group() {
        "networking.istio.io" => matches!(v, "v1" | "v1beta1" | "v1alpha3"),
        "security.istio.io" => matches!(v, "v1" | "v1beta1"),
        "gateway.networking.k8s.io" => match r.kind.as_str() {
            "GRPCRoute" => matches!(v, "v1" | "v1alpha2"),
            "ReferenceGrant" => matches!(v, "v1beta1" | "v1alpha2" | "v1"),
            _ => matches!(v, "v1" | "v1beta1"),
        },
        "discovery.k8s.io" => v == "v1",
        "telemetry.istio.io" => matches!(v, "v1" | "v1alpha1"),
        _ => v == "v1",
    }
}

impl Snapshot {
    /// Compile `resources` for one waypoint. Never fails: problems are in the returned
    /// diagnostics (and in `snapshot.diagnostics`); bad resources are left out, except that a
    /// bad AuthorizationPolicy fails closed for its targets.
    pub fn build(resources: &[RawResource], opts: &BuildOptions) -> (Snapshot, Diagnostics) {
        let mut diags = Diagnostics::default();
        let mut keep: Vec<bool> = Vec::with_capacity(resources.len());
        for r in resources {
            if crate::mesh::is_mesh_configmap(r, &opts.root_namespace) {
                keep.push(true);
            } else if !known_kind(r) {
                keep.push(false);
                diags.warn(r.error(
                    "",
                    format!(
                        "kind {} ({}) is not used by the waypoint; skipped",
                        r.kind, r.api_version
                    ),
                ));
            } else if !version_ok(r) {
                keep.push(false);
                diags.error(r.error(
                    "apiVersion",
                    format!("unsupported apiVersion {}", r.api_version),
                ));
            } else {
                keep.push(true);
            }
        }
        // Copy only when something is left out: a copy of every resource is as large as the
        // parsed config (240 MB at 10k services), and most configs keep every resource.
        let kept: std::borrow::Cow<'_, [RawResource]> = if keep.iter().all(|k| *k) {
            std::borrow::Cow::Borrowed(resources)
        } else {
            let it = resources.iter().zip(&keep);
            std::borrow::Cow::Owned(it.filter(|(_, k)| **k).map(|(r, _)| r.clone()).collect())
        };
        let resources = &kept[..];
        let registry = Registry::build(resources, &mut diags);
        let waypoints = find_waypoints(resources, &mut diags);
        let waypoint = select_waypoint(&waypoints, opts, &mut diags);

        // Compile routes and rules.
        let mut gw_routes: Vec<CompiledRoute> = Vec::new();
        let mut vss: Vec<CompiledVirtualService> = Vec::new();
        let mut drs: Vec<CompiledDestinationRule> = Vec::new();
        let mut policies = Vec::new();
        let mut authns = Vec::new();
        let mesh = mesh_config(resources, &registry, opts, &mut diags);
        let telemetry = crate::telemetry::compile(
            resources,
            waypoint.as_ref(),
            &mesh,
            &opts.root_namespace,
            &mut diags,
        );
        let mut providers: Vec<&str> = opts.custom_providers.iter().map(String::as_str).collect();
        providers.extend(mesh.ext_authz.iter().map(|p| p.name.as_str()));
        let (grants, grant_diags) = ReferenceGrants::from_resources(resources);
        diags.extend(grant_diags);
        // VirtualService delegation is resolved on the specs first, as Istio's config layer does.
        let (delegated, delegate_diags) = crate::istio::merge_delegates(resources);
        diags.extend(delegate_diags);
        for (i, r) in resources.iter().enumerate() {
            match (r.group(), r.kind.as_str()) {
                ("gateway.networking.k8s.io", "HTTPRoute") => {
                    let (c, d) = compile_http_route_with_grants(r, &registry, &grants);
                    diags.extend(d);
                    gw_routes.extend(c);
                }
                ("gateway.networking.k8s.io", "GRPCRoute") => {
                    let (c, d) = compile_grpc_route_with_grants(r, &registry, &grants);
                    diags.extend(d);
                    gw_routes.extend(c);
                }
                ("networking.istio.io", "VirtualService") => {
                    let r = delegated.get(&i).unwrap_or(r);
                    let (c, d) = compile_virtual_service(r, &registry);
                    diags.extend(d);
                    vss.extend(c);
                }
                ("networking.istio.io", "DestinationRule") => {
                    let (c, d) = compile_destination_rule(r, &registry);
                    diags.extend(d);
                    drs.extend(c);
                }
                ("security.istio.io", "AuthorizationPolicy") => {
                    let (c, d) = compile_policy(r, &providers);
                    diags.extend(d);
                    policies.push(c);
                }
                ("security.istio.io", "RequestAuthentication") => {
                    let (c, d) = crate::authn::compile_request_authn(r);
                    diags.extend(d);
                    authns.extend(c);
                }
                _ => {}
            }
        }
        // Oldest first (creationTimestamp, then read order): Istio's conflict resolution.
        vss.sort_by(|a, b| (&a.creation_timestamp, a.seq).cmp(&(&b.creation_timestamp, b.seq)));
        drs.sort_by(|a, b| (&a.creation_timestamp, a.seq).cmp(&(&b.creation_timestamp, b.seq)));

        let by_parent = routes_by_parent(&gw_routes);
        // istiod never binds a route whose parentRef is a waypoint Gateway: its Gateway
        // collection skips waypoint classes (gateway_collection.go, 1.28–1.31) and writes no
        // status, so such a route has no effect. Same here, but said (Istio is silent).
        if let Some(w) = &waypoint {
            for &i in by_parent
                .get(&ParentKey::gateway(&w.namespace, &w.name))
                .into_iter()
                .flatten()
            {
                let r = &gw_routes[i];
                diags.warn(ConfigError::new(
                    r.id.kind.clone(),
                    r.id.namespace.clone(),
                    r.id.name.clone(),
                    "spec.parentRefs",
                    format!(
                        "parentRef to the waypoint Gateway {}/{} has no effect (istiod binds no route to a waypoint); attach the route to the Service (parentRefs kind: Service, group: \"\")",
                        w.namespace, w.name
                    ),
                ));
            }
        }
        let mut routes: Vec<Option<ServiceRoutes>> = Vec::with_capacity(registry.services.len());
        for (idx, svc) in registry.services.iter().enumerate() {
            let bound = waypoint.as_ref().is_some_and(|w| {
                service_waypoint(svc, &registry.namespaces)
                    .is_some_and(|(ns, name)| ns == w.namespace && name == w.name)
            });
            if !bound {
                routes.push(None);
                continue;
            }
            routes.push(Some(service_routes(
                idx,
                svc,
                waypoint.as_ref(),
                &AttachedRoutes {
                    all: &gw_routes,
                    by_parent: &by_parent,
                },
                &vss,
                &mut diags,
            )));
        }

        // DestinationRules for one host merge as pilot's mergeDestinationRule does.
        let mut by_host: std::collections::BTreeMap<&str, Vec<&CompiledDestinationRule>> =
            Default::default();
        for dr in &drs {
            by_host.entry(dr.host.as_str()).or_default().push(dr);
        }
        let mut destination_policies: HashMap<String, usize> = HashMap::default();
        let mut destination_list = Vec::new();
        for (host, list) in by_host {
            if let Some(p) = merge_destination_rules(&list) {
                destination_policies.insert(host.to_string(), destination_list.len());
                destination_list.push(p);
            }
        }
        let backend_cache = backend_cache(&registry, &routes, &destination_policies);
        // Subset membership of every service with a DestinationRule, computed once.
        let mut subset_endpoints: HashMap<(usize, usize), Box<[u32]>> = HashMap::default();
        for svc in &registry.services {
            let Some(&di) = destination_policies.get(&svc.hostname) else {
                continue;
            };
            for ss in destination_list[di].subsets.values() {
                let idx: Box<[u32]> = svc
                    .endpoints
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| ss.labels.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
                    .map(|(i, _)| i as u32)
                    .collect();
                subset_endpoints.insert(
                    (
                        svc as *const ServiceInfo as usize,
                        ss as *const crate::route::Subset as usize,
                    ),
                    idx,
                );
            }
        }

        // Index policies by what they target.
        let mut waypoint_policies = Vec::new();
        let mut service_policies: HashMap<usize, Vec<usize>> = HashMap::default();
        for (pi, p) in policies.iter().enumerate() {
            match &p.targets {
                PolicyTargets::Refs(refs) => {
                    for t in refs {
                        let group = t.group.as_str();
                        match (group, t.kind.as_str()) {
                            ("gateway.networking.k8s.io", "Gateway") => {
                                if waypoint
                                    .as_ref()
                                    .is_some_and(|w| w.name == t.name && w.namespace == t.namespace)
                                {
                                    waypoint_policies.push(pi);
                                }
                            }
                            ("gateway.networking.k8s.io", "GatewayClass") => {
                                // Mesh-wide only from the root namespace (istio.io: targetRefs).
                                if p.id.namespace == opts.root_namespace
                                    && waypoint.as_ref().is_some_and(|w| w.class == t.name)
                                {
                                    waypoint_policies.push(pi);
                                }
                            }
                            ("" | "core", "Service") | ("networking.istio.io", "ServiceEntry") => {
                                let kind = if t.kind == "Service" {
                                    ServiceKind::Service
                                } else {
                                    ServiceKind::ServiceEntry
                                };
                                if let Some(si) = registry.index_by_name(&t.namespace, &t.name) {
                                    if registry.services[si].kind == kind {
                                        service_policies.entry(si).or_default().push(pi);
                                    }
                                }
                            }
                            _ => diags.warn(ConfigError::new(
                                "AuthorizationPolicy",
                                p.id.namespace.clone(),
                                p.id.name.clone(),
                                "spec.targetRefs",
                                format!(
                                    "target {}/{} is not enforced by a waypoint",
                                    t.kind, t.name
                                ),
                            )),
                        }
                    }
                }
                // A policy we could not read: fail closed for every bound service of its
                // namespace (and the waypoint itself when it lives there).
                PolicyTargets::Unknown => {
                    for (si, r) in routes.iter().enumerate() {
                        if r.is_some() && registry.services[si].namespace == p.id.namespace {
                            service_policies.entry(si).or_default().push(pi);
                        }
                    }
                    if waypoint
                        .as_ref()
                        .is_some_and(|w| w.namespace == p.id.namespace)
                    {
                        waypoint_policies.push(pi);
                    }
                }
                // Istio's waypoints ignore selector policies (ztunnel or sidecars enforce them):
                // so do we, but say so where the policy's namespace has services on this
                // waypoint (Istio is silent). Namespace-wide ones are ztunnel's L4 policy.
                PolicyTargets::Selector => {
                    let serves_namespace = waypoint
                        .as_ref()
                        .is_some_and(|w| w.namespace == p.id.namespace)
                        || routes.iter().enumerate().any(|(si, r)| {
                            r.is_some() && registry.services[si].namespace == p.id.namespace
                        });
                    if serves_namespace {
                        diags.warn(ConfigError::new(
                            "AuthorizationPolicy",
                            p.id.namespace.clone(),
                            p.id.name.clone(),
                            "spec.selector",
                            "a policy with a selector applies to sidecars and ztunnel, not to \
                             the waypoint: use targetRefs to the Service or the waypoint Gateway",
                        ));
                    }
                }
                PolicyTargets::Unscoped => {}
            }
        }
        for v in service_policies.values_mut() {
            v.sort_unstable();
            v.dedup();
        }
        waypoint_policies.sort_unstable();
        waypoint_policies.dedup();

        let policy_order: Vec<Box<[usize]>> = (0..registry.services.len())
            .map(|si| {
                let mut idx: Vec<usize> = waypoint_policies.clone();
                if let Some(v) = service_policies.get(&si) {
                    idx.extend(v.iter().copied());
                }
                idx.sort_unstable();
                idx.dedup();
                // Report and evaluate in Istio's order: CUSTOM, DENY, ALLOW, then AUDIT
                // (istio.io authorization-policy reference).
                idx.sort_by_key(|&i| {
                    let p: &crate::authz::CompiledPolicy = &policies[i];
                    let rank = match p.action {
                        crate::authz::Action::Custom => 0,
                        crate::authz::Action::Deny => 1,
                        crate::authz::Action::Allow => 2,
                        crate::authz::Action::Audit => 3,
                    };
                    (rank, p.id.namespace.clone(), p.id.name.clone())
                });
                idx.into_boxed_slice()
            })
            .collect();
        let mut rate_limits = crate::ratelimit::compile(
            resources,
            waypoint.as_ref(),
            &opts.root_namespace,
            &mut diags,
        );
        rate_limits.resolve_services(&registry, &mut diags);
        let jwt = crate::authn::select_rules(
            authns,
            waypoint.as_ref(),
            &registry,
            &opts.root_namespace,
            &mut diags,
        );
        let snapshot = Snapshot {
            rate_limits,
            jwt,
            policy_order,
            waypoint,
            registry,
            routes,
            destination_policies,
            destination_list,
            backend_cache,
            subset_endpoints,
            policies,
            mesh,
            telemetry,
            root_namespace: opts.root_namespace.clone(),
            diagnostics: diags.clone(),
        };
        (snapshot, diags)
    }
}

/// The mesh ConfigMap's ext_authz providers, each checked to name a known service (Istio:
/// "could not find valid hostname for service"); a provider that does not is left out.
fn mesh_config(
    resources: &[RawResource],
    registry: &Registry,
    opts: &BuildOptions,
    diags: &mut Diagnostics,
) -> MeshConfig {
    let mut mesh = mesh_from_resources(resources, &opts.root_namespace, diags);
    let source = mesh.source.clone();
    mesh.ext_authz.retain(|p| {
        let ns = p
            .service_namespace
            .as_deref()
            .unwrap_or(&opts.root_namespace);
        let found = registry.index_by_host(&p.service_host, ns).is_some();
        if !found {
            if let Some(id) = &source {
                let kind = if p.is_grpc() {
                    "envoyExtAuthzGrpc"
                } else {
                    "envoyExtAuthzHttp"
                };
                diags.error(id.error(
                    format!("data.mesh.extensionProviders[{}].{kind}.service", p.index),
                    format!(
                        "could not find a Service or ServiceEntry for {:?}; provider left out",
                        p.service
                    ),
                ));
            }
        }
        found
    });
    mesh
}

fn select_waypoint(
    waypoints: &[Waypoint],
    opts: &BuildOptions,
    diags: &mut Diagnostics,
) -> Option<Waypoint> {
    match &opts.waypoint {
        Some((ns, name)) => {
            let w = waypoints
                .iter()
                .find(|w| &w.namespace == ns && &w.name == name)
                .cloned();
            if w.is_none() {
                diags.error(ConfigError::new(
                    "Gateway",
                    ns.clone(),
                    name.clone(),
                    "spec.gatewayClassName",
                    "no waypoint Gateway with this name (gatewayClassName istio-waypoint) in the config",
                ));
            }
            w
        }
        None => match waypoints {
            [one] => Some(one.clone()),
            [] => {
                diags.error(ConfigError::new(
                    "Gateway",
                    "",
                    "",
                    "spec.gatewayClassName",
                    "the config has no waypoint Gateway (gatewayClassName: istio-waypoint)",
                ));
                None
            }
            many => {
                let names: Vec<String> = many
                    .iter()
                    .map(|w| format!("{}/{}", w.namespace, w.name))
                    .collect();
                diags.error(ConfigError::new(
                    "Gateway",
                    "",
                    "",
                    "",
                    format!(
                        "several waypoints ({}); choose one with --waypoint NS/NAME",
                        names.join(", ")
                    ),
                ));
                None
            }
        },
    }
}

/// The parent key a GAMMA route uses to attach to this service.
fn service_parent_key(svc: &ServiceInfo) -> ParentKey {
    match svc.kind {
        ServiceKind::Service => ParentKey::service(&svc.namespace, &svc.name),
        ServiceKind::ServiceEntry => ParentKey {
            group: "networking.istio.io".into(),
            kind: "ServiceEntry".into(),
            namespace: svc.namespace.clone(),
            name: svc.name.clone(),
        },
    }
}

/// The compiled Gateway API routes with an index by parent.
struct AttachedRoutes<'a> {
    all: &'a [CompiledRoute],
    by_parent: &'a HashMap<ParentKey, Vec<usize>>,
}

impl<'a> AttachedRoutes<'a> {
    /// The routes with `key` among their parents, in compile order.
    fn to(&self, key: &ParentKey) -> impl Iterator<Item = &'a CompiledRoute> + '_ {
        let all = self.all;
        self.by_parent
            .get(key)
            .into_iter()
            .flatten()
            .map(move |&i| &all[i])
    }
}

/// Indexes of the routes attached to each parent, in `gw_routes` order; a route naming one
/// parent twice (two ports or sections) is listed once. Built once per snapshot, so giving
/// every service its routes is not services x routes.
fn routes_by_parent(gw_routes: &[CompiledRoute]) -> HashMap<ParentKey, Vec<usize>> {
    let mut m: HashMap<ParentKey, Vec<usize>> = HashMap::default();
    for (i, r) in gw_routes.iter().enumerate() {
        for p in &r.parents {
            let list = m.entry(p.key()).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    m
}

/// A service's route table: its consumer routes (GAMMA, GEP-1426: an HTTPRoute in another
/// namespace than its parent Service applies only to clients in the route's namespace, and
/// wins over producer routes for them) ahead of what the producer configured. Istio's
/// waypoints drop consumer routes; the waypoint knows the client's namespace from its peer
/// identity, so we honour them, each entry matching only that namespace's requests.
fn service_routes(
    idx: usize,
    svc: &ServiceInfo,
    waypoint: Option<&Waypoint>,
    gw_routes: &AttachedRoutes<'_>,
    vss: &[CompiledVirtualService],
    diags: &mut Diagnostics,
) -> ServiceRoutes {
    let key = service_parent_key(svc);
    let mut consumer: Vec<&CompiledRoute> = gw_routes
        .to(&key)
        .filter(|r| r.id.namespace != svc.namespace)
        .collect();
    let mut own = producer_routes(idx, svc, waypoint, gw_routes, vss, diags);
    if consumer.is_empty() {
        return own;
    }
    consumer.sort_by(|a, b| a.id.namespace.cmp(&b.id.namespace));
    let mut entries = Vec::new();
    for group in consumer.chunk_by(|a, b| a.id.namespace == b.id.namespace) {
        let ns: Arc<str> = Arc::from(group[0].id.namespace.as_str());
        for mut e in ordered_entries_for_parent(&key, group) {
            e.matcher.source_namespace = Some(ns.clone());
            entries.push(e);
        }
    }
    if own.source == RouteSource::Default {
        // Other clients keep the service's default route: a catch-all after the consumers'.
        entries.push(RouteEntry {
            matcher: RequestMatch::default(),
            rule: own.default_rule.clone(),
        });
        own.source = RouteSource::GatewayApi;
    }
    entries.append(&mut own.entries);
    own.entries = entries;
    own
}

/// The producer's table: its Gateway API routes, else its VirtualServices, else the default.
fn producer_routes(
    _idx: usize,
    svc: &ServiceInfo,
    waypoint: Option<&Waypoint>,
    gw_routes: &AttachedRoutes<'_>,
    vss: &[CompiledVirtualService],
    diags: &mut Diagnostics,
) -> ServiceRoutes {
    let default_rule = Arc::new(Rule {
        id: RuleId {
            kind: "default",
            namespace: svc.namespace.clone(),
            name: svc.name.clone(),
            rule: "default".to_string(),
        },
        action: RuleAction::Forward(Forward {
            backends: vec![WeightedBackend {
                backend: BackendRef {
                    name: svc.name.clone(),
                    namespace: svc.namespace.clone(),
                    host: svc.hostname.clone(),
                    subset: None,
                    port: None,
                },
                weight: 1,
                request_headers: Default::default(),
                response_headers: Default::default(),
                invalid: None,
            }],
            // Istio's default mesh retry policy (pilot route/retry DefaultPolicy; current Istio
            // lists no retriable status codes, older releases also retried 503s).
            retries: Some(crate::istio::default_retry_policy()),
            ..Default::default()
        }),
    });
    // 1. Gateway API routes attached to the Service itself (GAMMA) take precedence.
    let key = service_parent_key(svc);
    let producer: Vec<&CompiledRoute> = gw_routes
        .to(&key)
        .filter(|r| r.id.namespace == svc.namespace)
        .collect();
    let entries = ordered_entries_for_parent(&key, &producer);
    let waypoint_ns = waypoint
        .map(|w| w.namespace.as_str())
        .unwrap_or(svc.namespace.as_str());
    let matching_vs: Vec<&CompiledVirtualService> = vss
        .iter()
        .filter(|v| {
            v.selected_for(&svc.hostname, &svc.namespace, waypoint_ns)
                || svc
                    .aliases
                    .iter()
                    .any(|a| v.selected_for(a, &svc.namespace, waypoint_ns))
        })
        .collect();
    if !entries.is_empty() {
        if let Some(vs) = matching_vs.first() {
            diags.warn(ConfigError::new(
                "VirtualService",
                vs.id.namespace.clone(),
                vs.id.name.clone(),
                "spec.hosts",
                format!(
                    "ignored for {}: Gateway API routes are attached to it and take precedence",
                    svc.hostname
                ),
            ));
        }
        return ServiceRoutes {
            source: RouteSource::GatewayApi,
            entries,
            default_rule,
        };
    }
    if !matching_vs.is_empty() {
        let entries = merge_for_host_at(&matching_vs, waypoint_ns);
        // A VirtualService with no HTTP routes (e.g. only tcp) leaves the default route.
        if !entries.is_empty() {
            return ServiceRoutes {
                source: RouteSource::VirtualService,
                entries,
                default_rule,
            };
        }
    }
    ServiceRoutes {
        source: RouteSource::Default,
        entries: Vec::new(),
        default_rule,
    }
}

/// Resolve every backend of every route table once (service index, DestinationRule index),
/// keyed by the address of the `BackendRef` inside the immutable, shared rule.
fn backend_cache(
    registry: &Registry,
    routes: &[Option<ServiceRoutes>],
    destination_policies: &HashMap<String, usize>,
) -> HashMap<usize, (Option<usize>, Option<usize>)> {
    let mut cache: HashMap<usize, (Option<usize>, Option<usize>)> = HashMap::default();
    let rules = routes.iter().flatten().flat_map(|r| {
        r.entries
            .iter()
            .map(|e| &*e.rule)
            .chain(std::iter::once(&*r.default_rule))
    });
    for rule in rules {
        let RuleAction::Forward(f) = &rule.action else {
            continue;
        };
        for b in &f.backends {
            let backend = &b.backend;
            let svc = registry.index_by_host(&backend.host, &backend.namespace);
            let dp = svc
                .and_then(|i| destination_policies.get(&registry.services[i].hostname))
                .or_else(|| destination_policies.get(&backend.host))
                .copied();
            cache.insert(backend as *const BackendRef as usize, (svc, dp));
        }
    }
    cache
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::parse_manifests;

    const WAYPOINT: &str = concat!(
        crate::waypoint_gateway_yaml!("shop"),
        "apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/use-waypoint: waypoint}}
"
    );

    fn build(extra: &str) -> Snapshot {
        let yaml = format!("{WAYPOINT}---\n{extra}");
        let (docs, errors) = parse_manifests(&yaml, "test.yaml", "shop", 0);
        assert!(errors.is_empty(), "{errors:?}");
        let (snap, diags) = Snapshot::build(&docs, &BuildOptions::default());
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        snap
    }

    fn service(snap: &Snapshot, name: &str) -> usize {
        snap.registry
            .services
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("service {name}"))
    }

    #[test]
    fn each_service_gets_its_attached_routes_in_order() {
        let snap = build(
            "apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {clusterIP: 10.96.0.1, ports: [{name: http, port: 80}, {name: alt, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: pay, namespace: shop}
spec: {clusterIP: 10.96.0.2, ports: [{name: http, port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: both-ports, namespace: shop, creationTimestamp: '2026-01-01T00:00:00Z'}
spec:
  parentRefs: [{group: '', kind: Service, name: cart, port: 80}, {group: '', kind: Service, name: cart, port: 8080}]
  rules: [{matches: [{path: {type: PathPrefix, value: /a}}], backendRefs: [{name: cart, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: pay-only, namespace: shop, creationTimestamp: '2026-01-01T00:00:00Z'}
spec:
  parentRefs: [{group: '', kind: Service, name: pay}]
  rules: [{backendRefs: [{name: pay, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: later, namespace: shop, creationTimestamp: '2026-02-01T00:00:00Z'}
spec:
  parentRefs: [{group: '', kind: Service, name: cart}]
  rules: [{matches: [{path: {type: PathPrefix, value: /b}}], backendRefs: [{name: cart, port: 80}]}]
",
        );
        let names = |svc: &str| -> Vec<String> {
            let routes = snap.routes[service(&snap, svc)].as_ref().expect("bound");
            routes
                .entries
                .iter()
                .map(|e| e.rule.id.name.clone())
                .collect()
        };
        // One entry per attachment port (each matches its own port), then the younger route.
        assert_eq!(names("cart"), ["both-ports", "both-ports", "later"]);
        assert_eq!(names("pay"), ["pay-only"]);
    }

    #[test]
    fn selector_policies_are_ignored_with_a_warning_where_this_waypoint_serves() {
        let policy = |ns: &str, name: &str| {
            format!(
                "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
                 metadata: {{name: {name}, namespace: {ns}}}\n\
                 spec: {{action: DENY, selector: {{matchLabels: {{app: cart}}}}, rules: [{{}}]}}\n"
            )
        };
        let yaml = format!(
            "apiVersion: v1
kind: Service
metadata: {{name: cart, namespace: shop}}
spec: {{clusterIP: 10.96.0.1, ports: [{{name: http, port: 80}}]}}
{}{}",
            policy("shop", "deny-by-selector"),
            policy("elsewhere", "not-ours")
        );
        let (docs, errors) =
            parse_manifests(&format!("{WAYPOINT}---\n{yaml}"), "t.yaml", "shop", 0);
        assert!(errors.is_empty(), "{errors:?}");
        let (snap, diags) = Snapshot::build(&docs, &BuildOptions::default());
        let warned: Vec<String> = diags
            .warnings
            .iter()
            .filter(|w| w.field == "spec.selector")
            .map(|w| w.to_string())
            .collect();
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].contains("shop/deny-by-selector"), "{warned:?}");
        assert!(warned[0].contains("not to the waypoint"), "{warned:?}");
        // Ignored, as Istio's waypoint: the DENY-all selector policy applies to nothing here.
        let cart = service(&snap, "cart");
        assert!(snap.policy_order[cart].is_empty());
    }

    #[test]
    fn a_selector_takes_pods_with_every_label_in_its_namespace() {
        let pod = |name: &str, ns: &str, labels: &str, ip: &str| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}\n\
                 spec: {{serviceAccountName: sa, containers: [{{name: c, image: x}}]}}\nstatus: {{podIP: {ip}}}\n"
            )
        };
        let mut yaml = String::from(
            "apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {clusterIP: 10.96.0.1, ports: [{name: http, port: 80}], selector: {app: cart, tier: web}}
",
        );
        yaml += &pod("p1", "shop", "app: cart, tier: web", "10.1.0.1");
        yaml += &pod("p2", "shop", "app: cart", "10.1.0.2");
        yaml += &pod("p3", "other", "app: cart, tier: web", "10.1.0.3");
        yaml += &pod("p4", "shop", "tier: web, app: cart, v: '2'", "10.1.0.4");
        yaml += &pod("p5", "shop", "app: pay, tier: web", "10.1.0.5");
        let snap = build(&yaml);
        let ips: Vec<String> = snap.registry.services[service(&snap, "cart")]
            .endpoints
            .iter()
            .map(|e| e.ip.to_string())
            .collect();
        assert_eq!(ips, ["10.1.0.1", "10.1.0.4"]);
    }
}
