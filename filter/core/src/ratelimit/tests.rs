//! Local rate limit tests: Istio's task EnvoyFilter read for the waypoint, errors naming the
//! field, patches not applied reported, buckets drained and refilled on a fake clock.

use std::time::Duration;

use super::*;
use crate::error::Diagnostics;
use crate::registry::Waypoint;
use crate::resource::parse_manifests;

fn waypoint() -> Waypoint {
    Waypoint {
        namespace: "shop".into(),
        name: "waypoint".into(),
        class: "istio-waypoint".into(),
    }
}

fn read(yaml: &str) -> (RateLimits, Diagnostics) {
    let (docs, errors) = parse_manifests(yaml, "t.yaml", "shop", 0);
    assert!(errors.is_empty(), "{errors:?}");
    let mut diags = Diagnostics::default();
    let rl = compile(&docs, Some(&waypoint()), "istio-system", &mut diags);
    (rl, diags)
}

/// Istio's rate-limit task (istio/istio.io content/en/docs/tasks/policy-enforcement/rate-limit,
/// Apache-2.0), its second local example as istio.io/latest shows it (4 requests a minute),
/// with the waypoint's selector instead of `app: productpage`: the filter without a bucket,
/// the bucket per route, both in a TypedStruct, `listener` beside `match` as the task has it.
const TASK: &str = r#"
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: filter-local-ratelimit-svc
  namespace: shop
spec:
  workloadSelector:
    labels:
      gateway.networking.k8s.io/gateway-name: waypoint
  configPatches:
    - applyTo: HTTP_FILTER
      listener:
        filterChain:
          filter:
            name: "envoy.http_connection_manager"
      patch:
        operation: INSERT_BEFORE
        value:
          name: envoy.filters.http.local_ratelimit
          typed_config:
            "@type": type.googleapis.com/udpa.type.v1.TypedStruct
            type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            value:
              stat_prefix: http_local_rate_limiter
    - applyTo: HTTP_ROUTE
      match:
        context: SIDECAR_OUTBOUND
        routeConfiguration:
          vhost:
            name: "inbound|http|9080"
            route:
              action: ANY
      patch:
        operation: MERGE
        value:
          typed_per_filter_config:
            envoy.filters.http.local_ratelimit:
              "@type": type.googleapis.com/udpa.type.v1.TypedStruct
              type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              value:
                stat_prefix: http_local_rate_limiter
                token_bucket:
                  max_tokens: 4
                  tokens_per_fill: 4
                  fill_interval: 60s
                filter_enabled:
                  runtime_key: local_rate_limit_enabled
                  default_value:
                    numerator: 100
                    denominator: HUNDRED
                filter_enforced:
                  runtime_key: local_rate_limit_enforced
                  default_value:
                    numerator: 100
                    denominator: HUNDRED
                response_headers_to_add:
                  - append: false
                    header:
                      key: x-local-rate-limit
                      value: 'true'
"#;

#[test]
fn the_task_shape_is_read_for_the_waypoint() {
    let (rl, diags) = read(TASK);
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
    // The task writes `listener` beside `match`: pruned by the API server, said here.
    let fields: Vec<&str> = diags.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(fields, ["spec.configPatches[0].listener"]);
    assert_eq!(rl.filters.len(), 1);
    assert_eq!(rl.filters[0].config.token_bucket, None);
    assert_eq!(rl.routes.len(), 1);
    assert_eq!(rl.routes[0].vhost, VhostMatch::Port(9080));
    let c = rl.routes[0].config.as_ref().expect("route config");
    assert_eq!(
        c.token_bucket,
        Some(TokenBucket {
            max_tokens: 4,
            tokens_per_fill: 4,
            fill_interval: Duration::from_secs(60)
        })
    );
    assert_eq!(
        (c.enabled_ppm, c.enforced_ppm, c.status),
        (1_000_000, 1_000_000, 429)
    );
    assert_eq!(c.response_headers[0].name, "x-local-rate-limit");
    assert!(c.response_headers[0].overwrite);
    assert_eq!(c.envoy_json["@type"], TYPE_URL);
    assert_eq!(c.envoy_json["token_bucket"]["max_tokens"], 4);
    // A service on 9080 meets the route config; one on 80 only the filter's (no bucket).
    let on = |port| {
        rl.applied(&Target {
            host: "productpage.shop.svc.cluster.local",
            port,
            rule: None,
        })
    };
    assert_eq!(on(9080).len(), 1);
    assert!(matches!(on(9080)[0].scope, Scope::Route { patch: 0, .. }));
    assert!(on(80).is_empty());
}

#[test]
fn target_refs_and_selectors_attach_only_to_this_waypoint() {
    let filter = |head: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: EnvoyFilter\nmetadata: {{name: f, namespace: {head}\n  configPatches:\n  - applyTo: HTTP_FILTER\n    patch:\n      operation: INSERT_BEFORE\n      value:\n        name: envoy.filters.http.local_ratelimit\n        typed_config:\n          '@type': {TYPE_URL}\n          stat_prefix: p\n          token_bucket: {{max_tokens: 1, fill_interval: 1s}}\n"
        )
    };
    for (head, applied) in [
        ("shop}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: waypoint}]", true),
        ("shop}\nspec:\n  targetRefs: [{kind: Gateway, name: other}]", false),
        ("other}\nspec:\n  targetRefs: [{kind: Gateway, name: waypoint}]", false),
        ("shop}\nspec:\n  workloadSelector: {labels: {istio.io/gateway-name: waypoint}}", true),
        ("istio-system}\nspec:\n  workloadSelector: {labels: {gateway.networking.k8s.io/gateway-name: waypoint}}", true),
        ("shop}\nspec:\n  workloadSelector: {labels: {app: productpage}}", false),
        ("shop}\nspec:", false),
    ] {
        let (rl, diags) = read(&filter(head));
        assert!(diags.errors.is_empty(), "{head}: {:?}", diags.errors);
        assert_eq!(rl.filters.len(), usize::from(applied), "{head}");
        assert_eq!(diags.warnings.len(), usize::from(!applied), "{head}");
        if !applied {
            assert!(diags.warnings[0].message.contains("not applied by the waypoint"));
        }
    }
}

#[test]
fn bad_configs_are_errors_naming_the_field() {
    let with = |typed: &str| {
        format!(
            "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {{name: f, namespace: shop}}\nspec:\n  targetRefs: [{{kind: Gateway, name: waypoint}}]\n  configPatches:\n  - applyTo: HTTP_FILTER\n    patch:\n      operation: INSERT_BEFORE\n      value:\n        name: envoy.filters.http.local_ratelimit\n        typed_config: {typed}\n"
        )
    };
    let t = format!("'@type': {TYPE_URL}");
    for (typed, field) in [
        (format!("{{{t}, stat_prefix: p, token_bucket: {{max_tokens: 0, fill_interval: 1s}}}}"), "spec.configPatches[0].patch.value.typed_config.token_bucket.max_tokens"),
        (format!("{{{t}, stat_prefix: p, token_bucket: {{max_tokens: 1, fill_interval: 10ms}}}}"), "spec.configPatches[0].patch.value.typed_config.token_bucket.fill_interval"),
        (format!("{{{t}, stat_prefix: p, token_bucket: {{max_tokens: 1, fill_interval: soon}}}}"), "spec.configPatches[0].patch.value.typed_config.token_bucket.fill_interval"),
        (format!("{{{t}, token_bucket: {{max_tokens: 1, fill_interval: 1s}}}}"), "spec.configPatches[0].patch.value.typed_config.stat_prefix"),
        (format!("{{{t}, stat_prefix: p, tokens: 3}}"), "spec.configPatches[0].patch.value.typed_config"),
        (format!("{{{t}, stat_prefix: p, filter_enabled: {{default_value: {{numerator: 1, denominator: THOUSAND}}}}}}"), "spec.configPatches[0].patch.value.typed_config.filter_enabled"),
        (format!("{{{t}, stat_prefix: p, enable_x_ratelimit_headers: DRAFT_VERSION_02}}"), "spec.configPatches[0].patch.value.typed_config.enable_x_ratelimit_headers"),
        (format!("{{{t}, stat_prefix: p, stage: 11}}"), "spec.configPatches[0].patch.value.typed_config.stage"),
        (format!("{{{t}, stat_prefix: p, descriptors: [{{entries: [{{key: k}}], token_bucket: {{max_tokens: 1, fill_interval: 1s}}}}]}}"), "spec.configPatches[0].patch.value.typed_config.descriptors[0].entries[0].value"),
        (format!("{{{t}, stat_prefix: p, descriptors: [{{entries: [{{key: k, value: v}}]}}]}}"), "spec.configPatches[0].patch.value.typed_config.descriptors[0].token_bucket"),
        (format!("{{{t}, stat_prefix: p, rate_limits: [{{actions: [{{query_parameters: {{}}}}]}}]}}"), "spec.configPatches[0].patch.value.typed_config.rate_limits[0].actions[0]"),
        ("{'@type': type.googleapis.com/udpa.type.v1.TypedStruct, type_url: type.googleapis.com/x.Y, value: {}}".to_string(), "spec.configPatches[0].patch.value.typed_config.type_url"),
        ("{'@type': type.googleapis.com/x.Y}".to_string(), "spec.configPatches[0].patch.value.typed_config.@type"),
    ] {
        let (rl, diags) = read(&with(&typed));
        assert!(rl.filters.is_empty(), "{typed}");
        assert_eq!(diags.errors.len(), 1, "{typed}: {:?}", diags.errors);
        let e = &diags.errors[0];
        assert_eq!((e.kind.as_str(), e.name.as_str()), ("EnvoyFilter", "f"));
        assert!(e.field.starts_with(field), "{typed}: {} is not {field}", e.field);
    }
}

#[test]
fn other_patches_are_reported_as_not_applied() {
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: mixed, namespace: shop}}
spec:
  targetRefs: [{{kind: Gateway, name: waypoint}}]
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.buffer
        typed_config: {{'@type': type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer}}
  - applyTo: CLUSTER
    patch: {{operation: MERGE, value: {{name: rate_limit_cluster}}}}
  - applyTo: NETWORK_FILTER
    patch: {{operation: MERGE, value: {{}}}}
  - applyTo: VIRTUAL_HOST
    match: {{routeConfiguration: {{vhost: {{name: "*:80"}}}}}}
    patch: {{operation: MERGE, value: {{rate_limits: []}}}}
  - applyTo: HTTP_ROUTE
    patch:
      operation: MERGE
      value:
        timeout: 5s
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit: {{'@type': {TYPE_URL}, stat_prefix: r, token_bucket: {{max_tokens: 1, fill_interval: 1s}}}}
"#
    );
    let (rl, diags) = read(&yaml);
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
    let fields: Vec<&str> = diags.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.configPatches[0]",
            "spec.configPatches[1]",
            "spec.configPatches[2]",
            "spec.configPatches[3]",
            "spec.configPatches[4]",
            // The route config has no filter inserting local_ratelimit: it limits nothing.
            "spec.configPatches[4]",
        ]
    );
    assert!(diags.warnings[0]
        .message
        .contains("this inserts \"envoy.filters.http.buffer\""));
    assert!(diags.warnings[1]
        .message
        .contains("applyTo CLUSTER, operation MERGE"));
    assert!(diags.warnings[4].message.contains("patch.value.timeout"));
    assert!(rl.filters.is_empty());
    assert_eq!(rl.routes.len(), 1);
}

fn bucket(max: u32, per_fill: u32, ms: u64) -> TokenBucket {
    TokenBucket {
        max_tokens: max,
        tokens_per_fill: per_fill,
        fill_interval: Duration::from_millis(ms),
    }
}

/// Buckets kept like a host keeps them, on a fake clock.
struct Buckets(std::collections::HashMap<BucketRef, BucketState>);

impl Buckets {
    fn run(&mut self, c: &LocalRateLimit, matched: &[usize], now: Duration) -> LimitOutcome {
        decide(c, matched, (0, 0), |r, b| {
            let s = self.0.entry(r).or_insert_with(|| b.full(now));
            b.consume(s, now)
        })
    }
}

fn config(default: Option<TokenBucket>, descriptors: Vec<Descriptor>) -> LocalRateLimit {
    let v = serde_json::json!({"stat_prefix": "p"});
    let mut c = config::compile(&v, false).expect("config");
    c.enabled_ppm = 1_000_000;
    c.enforced_ppm = 1_000_000;
    c.token_bucket = default;
    c.descriptors = descriptors;
    c.x_ratelimit_headers = true;
    c
}

#[test]
fn limits_hit_and_refill_on_the_clock() {
    let c = config(Some(bucket(2, 2, 1000)), vec![]);
    let mut b = Buckets(Default::default());
    let t0 = Duration::from_secs(100);
    let o1 = b.run(&c, &[], t0);
    let o2 = b.run(&c, &[], t0);
    let o3 = b.run(&c, &[], t0);
    assert_eq!((o1.limited, o2.limited, o3.limited), (false, false, true));
    assert!(o3.enforced);
    assert_eq!(o1.x_ratelimit, Some((2, 1, 1)));
    assert_eq!(o3.x_ratelimit, Some((2, 0, 1)));
    // Half the interval brings one token back; the full interval both.
    assert!(!b.run(&c, &[], t0 + Duration::from_millis(500)).limited);
    assert!(b.run(&c, &[], t0 + Duration::from_millis(500)).limited);
    let later = t0 + Duration::from_millis(1500);
    assert!(!b.run(&c, &[], later).limited);
    assert!(!b.run(&c, &[], later).limited);
    assert!(b.run(&c, &[], later).limited);
}

#[test]
fn filter_enabled_and_enforced_fractions_decide() {
    let mut c = config(Some(bucket(1, 1, 1000)), vec![]);
    let mut state = std::collections::HashMap::new();
    let mut take = |r: BucketRef, b: &TokenBucket| {
        let s = state.entry(r).or_insert_with(|| b.full(Duration::ZERO));
        b.consume(s, Duration::ZERO)
    };
    c.enabled_ppm = 500_000;
    // Rolled out: nothing counted, nothing taken.
    assert!(!decide(&c, &[], (600_000, 0), &mut take).enabled);
    assert!(!decide(&c, &[], (0, 0), &mut take).limited);
    // Limited but not enforced (default 0%): the request goes on.
    c.enforced_ppm = 0;
    let o = decide(&c, &[], (0, 0), &mut take);
    assert!(o.limited && !o.enforced);
}

#[test]
fn descriptors_take_their_own_bucket_and_the_default_one() {
    let d = |v: &str, max| Descriptor {
        entries: vec![("path".into(), v.into())],
        bucket: bucket(max, max, 60_000),
    };
    let c = config(Some(bucket(10, 10, 60_000)), vec![d("/a", 1), d("/b", 3)]);
    let rules = actions::parse_rate_limits(&serde_json::json!([
        {"actions": [{"request_headers": {"header_name": ":path", "descriptor_key": "path"}}]}
    ]))
    .expect("rules");
    let req = |path: &str| {
        let h = [(":path", path)];
        let r = RequestView {
            headers: &h,
            remote_address: None,
            destination_cluster: None,
        };
        matched(&c, &descriptors(&rules, 0, &r))
    };
    assert_eq!(req("/a"), [0]);
    assert_eq!(req("/b"), [1]);
    assert!(req("/c").is_empty());
    let mut b = Buckets(Default::default());
    let now = Duration::ZERO;
    assert!(!b.run(&c, &req("/a"), now).limited);
    let limited = b.run(&c, &req("/a"), now);
    assert!(limited.limited);
    assert_eq!(limited.x_ratelimit, Some((1, 0, 60)));
    for _ in 0..3 {
        assert!(!b.run(&c, &req("/b"), now).limited);
    }
    assert!(b.run(&c, &req("/b"), now).limited);
    // The default bucket was taken by every allowed request (1 + 3) and by /c now.
    for _ in 0..6 {
        assert!(!b.run(&c, &req("/c"), now).limited);
    }
    assert!(b.run(&c, &req("/c"), now).limited);
    // Without always_consume_default, a matched descriptor spares the default bucket.
    let (a, other) = (req("/a"), req("/c"));
    let mut c = c.clone();
    c.always_consume_default = false;
    let mut b = Buckets(Default::default());
    assert!(!b.run(&c, &a, now).limited);
    for _ in 0..10 {
        assert!(!b.run(&c, &other, now).limited);
    }
    assert!(b.run(&c, &other, now).limited);
}

#[test]
fn route_configs_and_descriptors_are_chosen_per_route() {
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: per-route, namespace: shop}}
spec:
  targetRefs: [{{kind: Gateway, name: waypoint}}]
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config: {{'@type': {TYPE_URL}, stat_prefix: all, token_bucket: {{max_tokens: 100, fill_interval: 1s}}}}
  - applyTo: HTTP_ROUTE
    match:
      routeConfiguration:
        vhost:
          name: reviews.shop.svc.cluster.local:9080
          route: {{name: v2-only}}
    patch:
      operation: MERGE
      value:
        route:
          rate_limits:
          - actions: [{{request_headers: {{header_name: x-user, descriptor_key: user}}}}]
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            '@type': {TYPE_URL}
            stat_prefix: reviews
            token_bucket: {{max_tokens: 5, fill_interval: 1s}}
            descriptors:
            - entries: [{{key: user, value: jason}}]
              token_bucket: {{max_tokens: 1, fill_interval: 1s}}
"#
    );
    let (rl, diags) = read(&yaml);
    assert!(
        diags.errors.is_empty() && diags.warnings.is_empty(),
        "{diags:?}"
    );
    let rule = |name: &str| crate::route::RuleId {
        kind: "VirtualService",
        namespace: "shop".into(),
        name: "reviews".into(),
        rule: name.into(),
    };
    let (v2, other) = (rule("v2-only"), rule("rest"));
    let at = |host, rule| {
        rl.applied(&Target {
            host,
            port: 9080,
            rule: Some(rule),
        })
    };
    let hit = at("reviews.shop.svc.cluster.local", &v2);
    assert_eq!(hit[0].config.stat_prefix, "reviews");
    assert_eq!(hit[0].rules.len(), 1);
    assert!(matches!(&hit[0].scope, Scope::Route { rule: Some(r), .. } if r.ends_with("v2-only")));
    let h = [("x-user", "jason")];
    let view = RequestView {
        headers: &h,
        remote_address: None,
        destination_cluster: None,
    };
    assert_eq!(
        matched(hit[0].config, &descriptors(hit[0].rules, 0, &view)),
        [0]
    );
    for miss in [
        at("reviews.shop.svc.cluster.local", &other),
        at("ratings.shop.svc.cluster.local", &v2),
    ] {
        assert_eq!(miss[0].config.stat_prefix, "all");
        assert_eq!(miss[0].scope, Scope::Filter);
        assert!(miss[0].rules.is_empty());
    }
}

#[test]
fn the_readme_example_is_read_without_a_warning() {
    let readme = include_str!("../../../../README.md");
    let section = readme
        .split("## Rate limiting")
        .nth(1)
        .expect("README has a rate limiting section");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a yaml block");
    let (docs, errors) = parse_manifests(yaml, "README.md", "default", 0);
    assert!(errors.is_empty(), "{errors:?}");
    let mut diags = Diagnostics::default();
    let w = Waypoint {
        namespace: "default".into(),
        ..waypoint()
    };
    let rl = compile(&docs, Some(&w), "istio-system", &mut diags);
    assert!(
        diags.errors.is_empty() && diags.warnings.is_empty(),
        "{diags:?}"
    );
    assert_eq!((rl.filters.len(), rl.routes.len()), (1, 1));
    let applied = rl.applied(&Target {
        host: "productpage.default.svc.cluster.local",
        port: 9080,
        rule: None,
    });
    assert_eq!(applied[0].config.descriptors.len(), 1);
}
