//! Rate limiting from Istio's EnvoyFilter shape: `envoy.filters.http.local_ratelimit` or
//! `envoy.filters.http.ratelimit` inserted by an HTTP_FILTER patch, the rate limit service's
//! cluster from a CLUSTER patch, per-route configs and `rate_limits` from HTTP_ROUTE/VIRTUAL_HOST
//! patches.
//!
//! [`compile`] reads the EnvoyFilters attached to the waypoint into a [`RateLimits`];
//! [`RateLimits::applied`] says which local config and which descriptor rules a request meets;
//! [`decide`] runs Envoy's bucket order over buckets the caller keeps ([`bucket`]);
//! [`RateLimits::global_calls`] says which rate limit service calls a request makes.

pub mod actions;
pub mod bucket;
mod compile;
pub mod config;
pub mod global;
#[cfg(test)]
mod global_tests;
#[cfg(test)]
mod tests;

pub use actions::{descriptors, Action, RateLimitRule, RequestView};
pub use bucket::{BucketState, TokenBucket, Verdict};
pub use compile::compile;
pub use config::{Descriptor, HeaderAdd, LocalRateLimit, FILTER_NAME, TYPE_URL};
pub use global::{
    ClusterAdd, GlobalFilter, GlobalRateLimit, RlsTarget, GLOBAL_FILTER_NAME, GLOBAL_TYPE_URL,
};

use crate::error::ResourceId;
use crate::route::RuleId;

/// Which patch of which EnvoyFilter something came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchRef {
    pub resource: ResourceId,
    pub index: usize,
}

impl std::fmt::Display for PatchRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EnvoyFilter {}/{} configPatches[{}]",
            self.resource.namespace, self.resource.name, self.index
        )
    }
}

/// A local_ratelimit filter in the waypoint's chain (one per HTTP_FILTER patch).
#[derive(Debug, Clone)]
pub struct FilterLimit {
    pub source: PatchRef,
    pub config: LocalRateLimit,
}

/// Which of Istio's virtual hosts a route-level patch names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VhostMatch {
    /// No vhost name: every service.
    Any,
    /// `<hostname>:<port>` (the waypoint's / outbound vhost name).
    Service { host: String, port: u16 },
    /// `inbound|http|<port>` (a sidecar's inbound vhost), or only `portNumber`: every service
    /// on that port.
    Port(u16),
}

/// A route-level patch: a per-route config and/or `rate_limits` for matching routes.
#[derive(Debug, Clone)]
pub struct RouteLimit {
    pub source: PatchRef,
    pub vhost: VhostMatch,
    /// `vhost.route.name`: a VirtualService `http[].name` or HTTPRoute rule name/index.
    pub route_name: Option<String>,
    /// HTTP_ROUTE (a bucket per route) or VIRTUAL_HOST (one per virtual host).
    pub per_route: bool,
    pub config: Option<LocalRateLimit>,
    pub rate_limits: Vec<RateLimitRule>,
    /// `rate_limits` as written (what Envoy's route gets).
    pub rate_limits_json: serde_json::Value,
}

/// Every rate limit attached to the waypoint.
#[derive(Debug, Clone, Default)]
pub struct RateLimits {
    pub filters: Vec<FilterLimit>,
    pub routes: Vec<RouteLimit>,
    /// Global rate limit filters (a rate limit service each).
    pub global: Vec<GlobalFilter>,
    /// Clusters CLUSTER ADD patches define.
    pub clusters: Vec<ClusterAdd>,
}

/// One rate limit service call a request makes: the filter and the descriptors to send.
#[derive(Debug, Clone)]
pub struct GlobalCall<'a> {
    pub filter: &'a GlobalFilter,
    pub descriptors: Vec<Vec<(String, String)>>,
}

/// What a request is, for choosing its limits.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub rule: Option<&'a RuleId>,
}

/// Whose bucket a config's buckets are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The filter's own config (one set of buckets for the whole waypoint).
    Filter,
    /// A route-level config: `routes[patch]`, per service, and per rule for HTTP_ROUTE.
    Route {
        patch: usize,
        host: String,
        port: u16,
        rule: Option<String>,
    },
}

/// One filter's config in force for a request.
#[derive(Debug, Clone)]
pub struct Applied<'a> {
    pub filter: usize,
    pub config: &'a LocalRateLimit,
    pub scope: Scope,
    pub rules: &'a [RateLimitRule],
}

impl VhostMatch {
    fn matches(&self, host: &str, port: u16) -> bool {
        match self {
            VhostMatch::Any => true,
            VhostMatch::Service { host: h, port: p } => h == host && *p == port,
            VhostMatch::Port(p) => *p == port,
        }
    }
}

impl RouteLimit {
    fn matches(&self, t: &Target<'_>) -> bool {
        self.vhost.matches(t.host, t.port)
            && match (&self.route_name, t.rule) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(n), Some(r)) => {
                    *n == r.rule || *n == format!("{}.{}.{}", r.namespace, r.name, r.rule)
                }
            }
    }
}

impl RateLimits {
    /// No local rate limit filter.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The `rate_limits` a request to `t` meets: its route's, else its virtual host's (Envoy's
    /// default `vh_rate_limits: OVERRIDE`).
    pub fn route_rules(&self, t: &Target<'_>) -> &[RateLimitRule] {
        let rules_of = |per_route: bool| {
            self.routes
                .iter()
                .rev()
                .find(|r| r.per_route == per_route && !r.rate_limits.is_empty() && r.matches(t))
                .map(|r| r.rate_limits.as_slice())
        };
        rules_of(true).or_else(|| rules_of(false)).unwrap_or(&[])
    }

    /// The rate limit service calls for a request to `t` seen as `view`: one per global
    /// filter whose stage's `rate_limits` produce a descriptor (Envoy calls the service only
    /// then).
    pub fn global_calls(&self, t: &Target<'_>, view: &RequestView<'_>) -> Vec<GlobalCall<'_>> {
        if self.global.is_empty() {
            return Vec::new();
        }
        let rules = self.route_rules(t);
        self.global
            .iter()
            .filter_map(|f| {
                let descriptors = descriptors(rules, f.config.stage, view);
                (!descriptors.is_empty()).then_some(GlobalCall {
                    filter: f,
                    descriptors,
                })
            })
            .collect()
    }

    /// Resolve each global filter's cluster ([`global::resolve`]); a cluster found nowhere is
    /// warned about (every call to it fails, and `failure_mode_deny` decides).
    pub fn resolve_services(
        &mut self,
        registry: &crate::registry::Registry,
        diags: &mut crate::error::Diagnostics,
    ) {
        for g in &mut self.global {
            g.target = global::resolve(&g.config.cluster, &self.clusters, registry);
            if g.target.is_none() {
                diags.warn(g.source.resource.error(
                    format!("spec.configPatches[{}]", g.source.index),
                    format!(
                        "rate limit service cluster {:?} is neither defined by a CLUSTER patch nor outbound|<port>||<host> of a known service port: every call fails ({})",
                        g.config.cluster,
                        if g.config.failure_mode_deny { "failure_mode_deny: requests are denied" } else { "requests are allowed" }
                    ),
                ));
            }
        }
    }

    /// For each filter, the config a request to `t` meets (a route's own config over the
    /// filter's) and the descriptor rules (the config's `rate_limits`, else the route's, else
    /// the virtual host's); filters with nothing to limit are left out.
    pub fn applied<'a>(&'a self, t: &Target<'_>) -> Vec<Applied<'a>> {
        let matching: Vec<(usize, &RouteLimit)> = self
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.matches(t))
            .collect();
        let route_cfg = matching
            .iter()
            .rev()
            .find_map(|(i, r)| r.config.as_ref().map(|c| (*i, r, c)));
        let route_rules = self.route_rules(t);
        let mut out = Vec::new();
        for (fi, f) in self.filters.iter().enumerate() {
            let (config, scope) = match route_cfg {
                Some((i, r, c)) => (
                    c,
                    Scope::Route {
                        patch: i,
                        host: t.host.to_string(),
                        port: t.port,
                        rule: if r.per_route {
                            t.rule.map(|r| format!("{}/{}", r.resource(), r.rule))
                        } else {
                            None
                        },
                    },
                ),
                None => (&f.config, Scope::Filter),
            };
            if config.token_bucket.is_none() && config.descriptors.is_empty() {
                continue;
            }
            let rules = if config.rate_limits.is_empty() {
                route_rules
            } else {
                config.rate_limits.as_slice()
            };
            out.push(Applied {
                filter: fi,
                config,
                scope,
                rules,
            });
        }
        out
    }
}

/// What Envoy's route for service `host:port` gets from route-level patches that name no
/// route: the per-route config (Envoy JSON) and `rate_limits` (JSON), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyRoute {
    pub config: Option<serde_json::Value>,
    pub rate_limits: Option<serde_json::Value>,
}

impl RateLimits {
    /// The route-level limits Envoy's route for `host:port` carries (patches naming a route
    /// are left out: Envoy's route table has no route per rule; see [`Self::per_rule`]).
    pub fn envoy_route(&self, host: &str, port: u16) -> Option<EnvoyRoute> {
        let t = Target {
            host,
            port,
            rule: None,
        };
        let matching: Vec<&RouteLimit> = self.routes.iter().filter(|r| r.matches(&t)).collect();
        let config = matching
            .iter()
            .rev()
            .find_map(|r| r.config.as_ref().map(|c| c.envoy_json.clone()));
        let rules = |per_route: bool| {
            matching
                .iter()
                .rev()
                .find(|r| r.per_route == per_route && !r.rate_limits.is_empty())
                .map(|r| r.rate_limits_json.clone())
        };
        let rate_limits = rules(true).or_else(|| rules(false));
        (config.is_some() || rate_limits.is_some()).then_some(EnvoyRoute {
            config,
            rate_limits,
        })
    }

    /// Route-level patches that name a route (`vhost.route.name`).
    pub fn per_rule(&self) -> impl Iterator<Item = &RouteLimit> {
        self.routes.iter().filter(|r| r.route_name.is_some())
    }

    /// The route name a request to service `host` matched by `rule` is limited under, when a
    /// patch names that rule (any port: Envoy's per-rule routes also match the destination).
    /// Envoy mode's module steers the request to that rule's route with it.
    pub fn rule_route(&self, host: &str, rule: &RuleId) -> Option<&str> {
        self.routes
            .iter()
            .filter(|r| r.route_name.is_some())
            .rev()
            .find(|r| {
                let port = match r.vhost {
                    VhostMatch::Service { port, .. } | VhostMatch::Port(port) => port,
                    VhostMatch::Any => 0,
                };
                r.matches(&Target {
                    host,
                    port,
                    rule: Some(rule),
                })
            })
            .and_then(|r| r.route_name.as_deref())
    }

    /// The route-level limits of the patches naming route `name` for service `host:port`:
    /// what Envoy's per-rule route carries (as [`Self::envoy_route`] for a service).
    pub fn envoy_rule_route(&self, host: &str, port: u16, name: &str) -> Option<EnvoyRoute> {
        let matching: Vec<&RouteLimit> = self
            .routes
            .iter()
            .filter(|r| {
                r.vhost.matches(host, port) && r.route_name.as_deref().is_none_or(|n| n == name)
            })
            .collect();
        if !matching.iter().any(|r| r.route_name.is_some()) {
            return None;
        }
        let config = matching
            .iter()
            .rev()
            .find_map(|r| r.config.as_ref().map(|c| c.envoy_json.clone()));
        let rules = |per_route: bool| {
            matching
                .iter()
                .rev()
                .find(|r| r.per_route == per_route && !r.rate_limits.is_empty())
                .map(|r| r.rate_limits_json.clone())
        };
        let rate_limits = rules(true).or_else(|| rules(false));
        Some(EnvoyRoute {
            config,
            rate_limits,
        })
    }
}

/// A bucket of one config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BucketRef {
    Default,
    Descriptor(usize),
}

/// What one filter did with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitOutcome {
    /// `filter_enabled` rolled in (the `enabled` counter).
    pub enabled: bool,
    /// Out of tokens (the `rate_limited` counter).
    pub limited: bool,
    /// Limited and `filter_enforced` rolled in: answer with the config's status.
    pub enforced: bool,
    /// Values of the x-ratelimit headers (`limit`, `remaining`, `reset`) when the config
    /// asks for them and a bucket was consulted.
    pub x_ratelimit: Option<(u32, u32, u64)>,
}

/// The configured descriptors `request` fully matches (entries equal, in order).
pub fn matched(config: &LocalRateLimit, request: &[Vec<(String, String)>]) -> Vec<usize> {
    config
        .descriptors
        .iter()
        .enumerate()
        .filter(|(_, d)| request.contains(&d.entries))
        .map(|(i, _)| i)
        .collect()
}

/// Envoy's local rate limit for one request under `config`: `rolls` are two uniform values
/// in `[0, 1_000_000)` for `filter_enabled` and `filter_enforced`; matched descriptors'
/// buckets are taken slowest-refilling first, stopping at the first empty one, then the
/// default bucket (always, or only when no descriptor matched). `take` takes a token from
/// one bucket (the caller keeps the state and the clock).
pub fn decide(
    config: &LocalRateLimit,
    matched: &[usize],
    rolls: (u32, u32),
    mut take: impl FnMut(BucketRef, &TokenBucket) -> Verdict,
) -> LimitOutcome {
    let mut out = LimitOutcome {
        enabled: rolls.0 < config.enabled_ppm,
        limited: false,
        enforced: false,
        x_ratelimit: None,
    };
    if !out.enabled {
        return out;
    }
    let mut order: Vec<usize> = matched.to_vec();
    let rate = |i: &usize| {
        let b = &config.descriptors[*i].bucket;
        // Tokens per second, compared as fractions without floats.
        (
            u128::from(b.tokens_per_fill),
            b.fill_interval.as_nanos().max(1),
        )
    };
    order.sort_by(|a, b| {
        let ((na, da), (nb, db)) = (rate(a), rate(b));
        (na * db).cmp(&(nb * da))
    });
    let mut report: Option<(u32, Verdict)> = None;
    for i in order {
        let b = &config.descriptors[i].bucket;
        let v = take(BucketRef::Descriptor(i), b);
        if report.is_none() || !v.allowed {
            report = Some((b.max_tokens, v));
        }
        if !v.allowed {
            out.limited = true;
            break;
        }
    }
    if !out.limited && (matched.is_empty() || config.always_consume_default) {
        if let Some(b) = &config.token_bucket {
            let v = take(BucketRef::Default, b);
            if report.is_none() || !v.allowed {
                report = Some((b.max_tokens, v));
            }
            out.limited = !v.allowed;
        }
    }
    out.enforced = out.limited && rolls.1 < config.enforced_ppm;
    if config.x_ratelimit_headers {
        out.x_ratelimit = report.map(|(limit, v)| (limit, v.remaining, v.reset_seconds));
    }
    out
}
