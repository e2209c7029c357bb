//! VirtualService compiler tests: parse errors with field paths, every feature's compiled form,
//! and how several VirtualServices merge for one host.

#![allow(clippy::type_complexity)]

use std::sync::Arc;
use std::time::Duration;

use crate::matchers::StringMatch;
use crate::route::{PathRewrite, RedirectPort, RetryPolicy, RuleAction};

use super::test_support::*;
use super::virtual_service::{merge_for_host, merge_for_host_at, CompiledVirtualService};
use super::{compile_virtual_service, default_retry_policy, is_default_retry_policy};

const ROUTE: &str = "  route:\n  - destination:\n      host: reviews\n";

#[test]
fn errors_name_field_paths() {
    let cases: Vec<(&str, &str)> = vec![
        // Unknown field (strict types).
        ("hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n    weigth: 1\n", "spec.http[0].route[0]"),
        // Wrong type.
        ("hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n    weight: abc\n", "spec.http[0].route[0].weight"),
        ("hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n    weight: -5\n  - destination: {host: ratings}\n    weight: 10\n", "spec.http[0].route[0].weight"),
        ("hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n  - destination: {host: ratings}\n", "spec.http[0].route"),
        ("hosts: [reviews]\nhttp:\n- match:\n  - uri: {exact: /a, prefix: /b}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].match[0].uri"),
        ("hosts: [reviews]\nhttp:\n- delegate: {name: x, namespace: y}\n", "spec.http[0].delegate"),
        ("hosts: [reviews]\nhttp:\n- match:\n  - headers:\n      x: {regex: '('}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].match[0].headers.x.regex"),
        ("hosts: [reviews]\nhttp:\n- match:\n  - headers:\n      x: {prefix: ''}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].match[0].headers.x.prefix"),
        ("hosts: [reviews]\nhttp:\n- match:\n  - headers:\n      '@request.auth.claims.': {exact: a}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].match[0].headers.@request.auth.claims."),
        ("hosts: [reviews]\nhttp:\n- timeout: 10\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].timeout"),
        ("hosts: [reviews]\nhttp:\n- timeout: 10x\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].timeout"),
        ("hosts: [reviews]\nhttp:\n- retries: {attempts: -1}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].retries.attempts"),
        ("hosts: [reviews]\nhttp:\n- retries: {attempts: 3, retryOn: 'bogus'}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].retries.retryOn"),
        ("hosts: [reviews]\nhttp:\n- retries: {attempts: 0, perTryTimeout: 1s}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].retries"),
        ("hosts: [reviews]\nhttp:\n- fault: {abort: {httpStatus: 500, percentage: {value: 150}}}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].fault.abort.percentage.value"),
        ("hosts: [reviews]\nhttp:\n- fault: {abort: {httpStatus: 500, percent: 50}}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].fault.abort"),
        ("hosts: [reviews]\nhttp:\n- fault: {abort: {httpStatus: 700}}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].fault.abort.httpStatus"),
        ("hosts: [reviews]\nhttp:\n- fault: {abort: {grpcStatus: NOPE}}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].fault.abort.grpcStatus"),
        ("hosts: [reviews]\nhttp:\n- fault: {delay: {exponentialDelay: 1s}}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].fault.delay.exponentialDelay"),
        ("hosts: [reviews]\nhttp:\n- fault: {}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].fault"),
        ("hosts: [reviews]\nhttp:\n- redirect: {uri: /x}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0]"),
        ("hosts: [reviews]\nhttp:\n- redirect: {uri: /x, redirectCode: 399}\n", "spec.http[0].redirect.redirectCode"),
        ("hosts: [reviews]\nhttp:\n- redirect: {uri: /x, redirectCode: 200}\n", "spec.http[0].redirect.redirectCode"),
        ("hosts: [reviews]\nhttp:\n- redirect: {}\n", "spec.http[0].redirect"),
        ("hosts: [reviews]\nhttp:\n- match:\n  - uri: {exact: /a}\n  redirect: {prefixRewrite: /b}\n", "spec.http[0].redirect.prefixRewrite"),
        ("hosts: [reviews]\nhttp:\n- directResponse: {status: 100}\n", "spec.http[0].directResponse.status"),
        ("hosts: [reviews]\nhttp:\n- directResponse: {status: 200, body: {bytes: '***'}}\n", "spec.http[0].directResponse.body.bytes"),
        ("hosts: [reviews]\nhttp:\n- mirror: {host: ratings}\n  mirrors:\n  - destination: {host: details}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0]"),
        ("hosts: [reviews]\nhttp:\n- corsPolicy: {allowMethods: [FOO]}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].corsPolicy.allowMethods[0]"),
        ("hosts: [reviews]\nhttp:\n- corsPolicy: {maxAge: 1500ms}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].corsPolicy.maxAge"),
        ("hosts: ['*']\nhttp:\n- route:\n  - destination: {host: reviews}\n", "spec.hosts[0]"),
        ("hosts: [reviews]\n", "spec"),
        ("hosts: [a..b]\nhttp:\n- route:\n  - destination: {host: reviews}\n", "spec.hosts[0]"),
        ("hosts: [reviews, reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n", "spec.hosts[1]"),
        ("hosts: [reviews]\nexportTo: ['.', default]\nhttp:\n- route:\n  - destination: {host: reviews}\n", "spec.exportTo"),
        ("hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: bad_host}\n", "spec.http[0].route[0].destination.host"),
        ("hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n  mirror: {host: ''}\n", "spec.http[0].mirror.host"),
        ("hosts: [reviews]\nhttp:\n- match:\n  - port: 70000\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].match[0].port"),
        ("hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, port: {number: 0}}\n", "spec.http[0].route[0].destination.port.number"),
        ("hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: v_1}\n", "spec.http[0].route[0].destination.subset"),
        ("hosts: [reviews]\nhttp:\n- route:\n  - weight: 100\n", "spec.http[0].route[0].destination"),
        ("hosts: [reviews]\nhttp:\n- headers: {request: {set: {':path': /x}}}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].headers.request.set.:path"),
        ("hosts: [reviews]\nhttp:\n- headers: {request: {set: {host: a}}}\n  rewrite: {authority: b}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].rewrite.authority"),
        ("hosts: [reviews]\nhttp:\n- rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].rewrite"),
        ("hosts: [reviews]\nhttp:\n- rewrite: {uriRegexRewrite: {match: '(', rewrite: b}}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].rewrite.uriRegexRewrite.match"),
        ("hosts: [reviews]\nhttp:\n- mirrorPercentage: {value: 101}\n  mirror: {host: ratings}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].mirrorPercentage.value"),
    ];
    for (spec, field) in cases {
        let (vs, d) = compile_vs(spec);
        assert!(vs.is_none(), "expected rejection for:\n{spec}");
        let fields = error_fields(&d);
        assert!(
            fields
                .iter()
                .any(|f| f == field || f.starts_with(&format!("{field}."))),
            "expected an error at {field}, got {:?}\nspec:\n{spec}",
            d.errors
        );
    }
}

#[test]
fn match_blocks_are_ored_and_share_the_rule() {
    let vs = ok_vs(&format!(
        "hosts: [reviews]\nhttp:\n- name: two\n  match:\n  - uri: {{prefix: /a}}\n  - headers:\n      end-user: {{exact: jason}}\n{ROUTE}"
    ));
    assert_eq!(vs.entries.len(), 2);
    assert!(Arc::ptr_eq(&vs.entries[0].rule, &vs.entries[1].rule));
    assert_eq!(vs.entries[0].rule.id.rule, "two");
    assert_eq!(
        vs.entries[0].rule.id.resource(),
        "VirtualService/default/vs"
    );
    let cases: Vec<(Req, bool)> = vec![
        (Req::get("/a/x"), true),
        (
            Req {
                headers: &[("End-User", "jason")],
                ..Req::get("/b")
            },
            true,
        ),
        (Req::get("/b"), false),
    ];
    for (r, want) in cases {
        assert_eq!(first_match(&vs.entries, &r).is_some(), want, "{r:?}");
    }
}

#[test]
fn rule_without_match_catches_all_and_hides_later_rules() {
    let (vs, d) = compile_vs(&format!(
        "hosts: [reviews]\nhttp:\n- route:\n  - destination: {{host: reviews}}\n- match:\n  - uri: {{prefix: /x}}\n{ROUTE}"
    ));
    let vs = vs.expect("compiles");
    assert_eq!(vs.entries.len(), 1);
    assert_eq!(vs.entries[0].rule.id.rule, "0");
    assert!(matches(&vs.entries[0].matcher, &Req::get("/anything")));
    assert!(
        d.warnings.iter().any(|w| w.field == "spec.http[1]"),
        "{:?}",
        d.warnings
    );
}

#[test]
fn match_fields_table() {
    // (match block YAML, request, expected)
    let h_jason: &[(&str, &str)] = &[("end-user", "jason")];
    let h_other: &[(&str, &str)] = &[("end-user", "bob")];
    let h_debug: &[(&str, &str)] = &[("x-debug", "1")];
    let cases: Vec<(&str, Req, bool)> = vec![
        ("uri: {exact: /a}", Req::get("/a"), true),
        ("uri: {exact: /a}", Req::get("/a/"), false),
        ("uri: {exact: /a}", Req::get("/a?x=1"), true),
        ("uri: {prefix: /api}", Req::get("/api/v1"), true),
        ("uri: {prefix: /api}", Req::get("/apix"), true),
        ("uri: {regex: '/v[0-9]+'}", Req::get("/v12"), true),
        ("uri: {regex: '/v[0-9]+'}", Req::get("/v12/x"), false),
        (
            "{uri: {prefix: /API}, ignoreUriCase: true}",
            Req::get("/api/x"),
            true,
        ),
        ("uri: {prefix: /API}", Req::get("/api/x"), false),
        ("method: {exact: POST}", Req::get("/"), false),
        ("method: {regex: 'GET|HEAD'}", Req::get("/"), true),
        (
            "headers: {end-user: {exact: jason}}",
            Req {
                headers: h_jason,
                ..Req::get("/")
            },
            true,
        ),
        (
            "headers: {end-user: {exact: jason}}",
            Req {
                headers: h_other,
                ..Req::get("/")
            },
            false,
        ),
        (
            "headers: {end-user: {prefix: ja}}",
            Req {
                headers: h_jason,
                ..Req::get("/")
            },
            true,
        ),
        (
            "headers: {end-user: {regex: 'j.*'}}",
            Req {
                headers: h_jason,
                ..Req::get("/")
            },
            true,
        ),
        (
            "headers: {end-user: {}}",
            Req {
                headers: h_other,
                ..Req::get("/")
            },
            true,
        ),
        ("headers: {end-user: {}}", Req::get("/"), false),
        (
            "headers: {end-user: {regex: '*'}}",
            Req {
                headers: h_other,
                ..Req::get("/")
            },
            true,
        ),
        (
            "withoutHeaders: {x-debug: {}}",
            Req {
                headers: h_debug,
                ..Req::get("/")
            },
            false,
        ),
        ("withoutHeaders: {x-debug: {}}", Req::get("/"), true),
        (
            "withoutHeaders: {end-user: {exact: jason}}",
            Req {
                headers: h_jason,
                ..Req::get("/")
            },
            false,
        ),
        (
            "withoutHeaders: {end-user: {exact: jason}}",
            Req {
                headers: h_other,
                ..Req::get("/")
            },
            true,
        ),
        (
            "withoutHeaders: {end-user: {exact: jason}}",
            Req::get("/"),
            true,
        ),
        ("queryParams: {v: {exact: '1'}}", Req::get("/p?v=1"), true),
        ("queryParams: {v: {exact: '1'}}", Req::get("/p?v=2"), false),
        (
            "queryParams: {v: {prefix: 'a'}}",
            Req::get("/p?v=abc"),
            true,
        ),
        (
            "queryParams: {v: {regex: '[0-9]+'}}",
            Req::get("/p?v=12"),
            true,
        ),
        ("queryParams: {v: {}}", Req::get("/p?v"), true),
        ("queryParams: {v: {}}", Req::get("/p?w=1"), false),
        ("port: 9080", Req::get("/"), true),
        ("port: 9081", Req::get("/"), false),
        (
            "{uri: {prefix: /a}, headers: {end-user: {exact: jason}}}",
            Req {
                headers: h_jason,
                ..Req::get("/a")
            },
            true,
        ),
        (
            "{uri: {prefix: /a}, headers: {end-user: {exact: jason}}}",
            Req::get("/a"),
            false,
        ),
    ];
    for (block, req, want) in cases {
        let vs = ok_vs(&format!(
            "hosts: [reviews]\nhttp:\n- match:\n  - {block}\n{ROUTE}"
        ));
        assert_eq!(vs.entries.len(), 1, "{block}");
        assert_eq!(
            matches(&vs.entries[0].matcher, &req),
            want,
            "{block} vs {req:?}"
        );
    }
}

#[test]
fn header_names_are_lowercased_and_sorted() {
    let vs = ok_vs(&format!(
        "hosts: [reviews]\nhttp:\n- match:\n  - headers:\n      Z-Last: {{exact: z}}\n      A-First: {{exact: a}}\n{ROUTE}"
    ));
    let names: Vec<&str> = vs.entries[0]
        .matcher
        .headers
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(names, vec!["a-first", "z-last"]);
}

#[test]
fn waypoint_only_match_rules() {
    // sourceLabels: the block is dropped with a warning naming the field.
    let (vs, d) = compile_vs(&format!(
        "hosts: [reviews]\nhttp:\n- match:\n  - sourceLabels: {{app: productpage}}\n  - uri: {{prefix: /b}}\n{ROUTE}"
    ));
    let vs = vs.expect("compiles");
    assert_eq!(vs.entries.len(), 1);
    assert!(matches(&vs.entries[0].matcher, &Req::get("/b")));
    assert!(!matches(&vs.entries[0].matcher, &Req::get("/a")));
    assert!(
        d.warnings
            .iter()
            .any(|w| w.field == "spec.http[0].match[0].sourceLabels"),
        "{:?}",
        d.warnings
    );
    // A rule whose only block has sourceLabels contributes nothing (not a catch-all).
    let vs = ok_vs(&format!(
        "hosts: [reviews]\nhttp:\n- match:\n  - sourceLabels: {{app: productpage}}\n{ROUTE}- route:\n  - destination: {{host: ratings}}\n"
    ));
    assert_eq!(vs.entries.len(), 1);
    assert_eq!(forward(&vs.entries[0]).backends[0].backend.name, "ratings");
    // gateways in a match: only blocks naming mesh apply.
    let vs = ok_vs(&format!(
        "hosts: [reviews]\ngateways: [mesh, default/gw]\nhttp:\n- match:\n  - gateways: [default/gw]\n    uri: {{prefix: /gw}}\n  - gateways: [mesh]\n    uri: {{prefix: /mesh}}\n  - uri: {{prefix: /both}}\n{ROUTE}"
    ));
    let paths: Vec<String> = vs
        .entries
        .iter()
        .map(|e| {
            e.matcher
                .path
                .as_ref()
                .map(StringMatch::describe)
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(paths, vec!["prefix \"/mesh\"", "prefix \"/both\""]);
}

#[test]
fn gateway_only_virtual_service_is_not_for_the_waypoint() {
    let (vs, d) = compile_vs("hosts: ['*']\ngateways: [bookinfo-gateway]\nhttp:\n- route:\n  - destination: {host: reviews}\n");
    let vs = vs.expect("a gateway VirtualService may use host *");
    assert!(!vs.applies_to_mesh());
    assert!(d.warnings.iter().any(|w| w.field == "spec.gateways"));
    assert!(merge_for_host(&[&vs]).is_empty());
}

#[test]
fn destinations_resolve_hosts_and_ports() {
    // (destination YAML, name, namespace, host, port, expect warning)
    let cases: Vec<(&str, &str, &str, &str, Option<u16>, bool)> = vec![
        (
            "{host: reviews}",
            "reviews",
            "default",
            "reviews.default.svc.cluster.local",
            Some(9080),
            false,
        ),
        (
            "{host: reviews.default.svc.cluster.local, subset: v1}",
            "reviews",
            "default",
            "reviews.default.svc.cluster.local",
            Some(9080),
            false,
        ),
        (
            "{host: reviews.default}",
            "reviews",
            "default",
            "reviews.default.svc.cluster.local",
            Some(9080),
            true,
        ),
        (
            "{host: multi}",
            "multi",
            "default",
            "multi.default.svc.cluster.local",
            None,
            false,
        ),
        (
            "{host: multi, port: {number: 8080}}",
            "multi",
            "default",
            "multi.default.svc.cluster.local",
            Some(8080),
            false,
        ),
        (
            "{host: ghost.other.svc.cluster.local}",
            "ghost",
            "other",
            "ghost.other.svc.cluster.local",
            None,
            true,
        ),
        (
            "{host: ghost}",
            "ghost",
            "default",
            "ghost.default.svc.cluster.local",
            None,
            true,
        ),
        (
            "{host: unknown.example.org}",
            "unknown.example.org",
            "default",
            "unknown.example.org",
            None,
            true,
        ),
        (
            "{host: api2.example.com}",
            "api",
            "default",
            "api2.example.com",
            Some(443),
            false,
        ),
    ];
    for (dest, name, ns, host, port, warn) in cases {
        let (vs, d) = compile_vs(&format!(
            "hosts: [reviews]\nhttp:\n- route:\n  - destination: {dest}\n"
        ));
        let vs = vs.unwrap_or_else(|| panic!("{dest}: {:?}", d.errors));
        let b = &forward(&vs.entries[0]).backends[0];
        assert_eq!(
            (
                b.backend.name.as_str(),
                b.backend.namespace.as_str(),
                b.backend.host.as_str(),
                b.backend.port
            ),
            (name, ns, host, port),
            "{dest}"
        );
        assert_eq!(b.weight, 100, "{dest}");
        assert!(b.invalid.is_none());
        let warned = d
            .warnings
            .iter()
            .any(|w| w.field == "spec.http[0].route[0].destination.host");
        assert_eq!(warned, warn, "{dest}: {:?}", d.warnings);
    }
    let vs =
        ok_vs("hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: v2}\n");
    assert_eq!(
        forward(&vs.entries[0]).backends[0]
            .backend
            .subset
            .as_deref(),
        Some("v2")
    );
}

#[test]
fn weights() {
    let cases: Vec<(&str, Vec<(&str, u32)>)> = vec![
        ("- destination: {host: reviews, subset: v1}\n    weight: 90\n  - destination: {host: reviews, subset: v2}\n    weight: 10\n", vec![("v1", 90), ("v2", 10)]),
        // Weights need not add up to 100: the split is weight / sum.
        ("- destination: {host: reviews, subset: v1}\n    weight: 1\n  - destination: {host: reviews, subset: v2}\n    weight: 3\n", vec![("v1", 1), ("v2", 3)]),
        // Zero (or omitted) weights get no traffic when there are several destinations.
        ("- destination: {host: reviews, subset: v1}\n    weight: 100\n  - destination: {host: reviews, subset: v2}\n", vec![("v1", 100)]),
        // A single destination takes all traffic whatever its weight.
        ("- destination: {host: reviews, subset: v1}\n    weight: 30\n", vec![("v1", 100)]),
    ];
    for (route, want) in cases {
        let vs = ok_vs(&format!("hosts: [reviews]\nhttp:\n- route:\n  {route}"));
        let got: Vec<(&str, u32)> = forward(&vs.entries[0])
            .backends
            .iter()
            .map(|b| (b.backend.subset.as_deref().unwrap_or(""), b.weight))
            .collect();
        assert_eq!(got, want, "{route}");
    }
}

#[test]
fn header_operations() {
    let vs = ok_vs(
        "hosts: [reviews]\nhttp:\n- headers:\n    request:\n      set: {X-A: '1', ':authority': new.host}\n      add: {x-b: '2'}\n      remove: [X-C]\n    response:\n      set: {x-r: r}\n      remove: [server]\n  route:\n  - destination: {host: reviews, subset: v1}\n    weight: 50\n    headers:\n      request: {set: {x-dest: v1}}\n      response: {add: {x-from: v1}}\n  - destination: {host: reviews, subset: v2}\n    weight: 50\n",
    );
    let f = forward(&vs.entries[0]);
    assert_eq!(
        f.request_headers.set,
        vec![("x-a".to_string(), "1".to_string())]
    );
    assert_eq!(
        f.request_headers.add,
        vec![("x-b".to_string(), "2".to_string())]
    );
    assert_eq!(f.request_headers.remove, vec!["x-c".to_string()]);
    assert_eq!(
        f.response_headers.set,
        vec![("x-r".to_string(), "r".to_string())]
    );
    assert_eq!(f.response_headers.remove, vec!["server".to_string()]);
    assert_eq!(
        f.rewrite.as_ref().and_then(|r| r.authority.as_deref()),
        Some("new.host")
    );
    assert_eq!(
        f.backends[0].request_headers.set,
        vec![("x-dest".to_string(), "v1".to_string())]
    );
    assert_eq!(
        f.backends[0].response_headers.add,
        vec![("x-from".to_string(), "v1".to_string())]
    );
    assert!(f.backends[1].request_headers.is_empty());
    // A single destination's authority header becomes the host rewrite.
    let vs = ok_vs("hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews}\n    headers: {request: {set: {host: d.example}}}\n");
    assert_eq!(
        forward(&vs.entries[0])
            .rewrite
            .as_ref()
            .and_then(|r| r.authority.as_deref()),
        Some("d.example")
    );
}

fn path_rewrite_of(e: &crate::route::RouteEntry) -> Option<String> {
    let p = match &e.rule.action {
        RuleAction::Forward(f) => f.rewrite.as_ref().and_then(|r| r.path.clone()),
        RuleAction::Redirect(r) => r.path.clone(),
        RuleAction::DirectResponse(_) => None,
    };
    p.map(|p| match p {
        PathRewrite::Full(s) => format!("full {s}"),
        PathRewrite::Prefix {
            prefix,
            replacement,
        } => format!("prefix {prefix} -> {replacement}"),
        PathRewrite::Regex {
            regex,
            substitution,
        } => format!("regex {} -> {substitution}", regex.as_str()),
    })
}

#[test]
fn rewrites_depend_on_the_match() {
    let vs = ok_vs(&format!(
        "hosts: [reviews]\nhttp:\n- match:\n  - uri: {{prefix: /old}}\n  - uri: {{exact: /exact}}\n  - uri: {{regex: '/r.*'}}\n  - headers: {{x: {{exact: y}}}}\n  rewrite: {{uri: /new}}\n{ROUTE}"
    ));
    let got: Vec<Option<String>> = vs.entries.iter().map(path_rewrite_of).collect();
    assert_eq!(
        got,
        vec![
            Some("prefix /old -> /new".to_string()),
            Some("full /new".to_string()),
            Some("full /new".to_string()),
            // No uri match is Envoy prefix `/`, and prefix_rewrite swaps that `/`.
            Some("prefix / -> /new".to_string()),
        ]
    );
    assert!(!Arc::ptr_eq(&vs.entries[0].rule, &vs.entries[1].rule));

    let vs = ok_vs(&format!(
        "hosts: [reviews]\nhttp:\n- rewrite: {{uriRegexRewrite: {{match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1'}}, authority: a.example}}\n{ROUTE}"
    ));
    assert_eq!(
        path_rewrite_of(&vs.entries[0]).as_deref(),
        Some("regex ^/service/([^/]+)(/.*)$ -> ${2}/instance/${1}")
    );
    let f = forward(&vs.entries[0]);
    assert_eq!(
        f.rewrite.as_ref().and_then(|r| r.authority.as_deref()),
        Some("a.example")
    );
    if let Some(PathRewrite::Regex {
        regex,
        substitution,
    }) = f.rewrite.as_ref().and_then(|r| r.path.as_ref())
    {
        assert_eq!(
            regex.replace_all("/service/foo/v1/api", substitution.as_str()),
            "/v1/api/instance/foo"
        );
    } else {
        panic!("regex rewrite expected");
    }
}

#[test]
fn redirects() {
    // (redirect YAML, match uri, scheme, host, port, path, status)
    let cases: Vec<(
        &str,
        &str,
        Option<&str>,
        Option<&str>,
        RedirectPort,
        Option<&str>,
        u16,
    )> = vec![
        (
            "{uri: /new}",
            "{prefix: /old}",
            None,
            None,
            RedirectPort::Keep,
            Some("full /new"),
            301,
        ),
        (
            "{prefixRewrite: /new}",
            "{prefix: /old}",
            None,
            None,
            RedirectPort::Keep,
            Some("prefix /old -> /new"),
            301,
        ),
        (
            "{authority: b.example, redirectCode: 302}",
            "{exact: /x}",
            None,
            Some("b.example"),
            RedirectPort::Keep,
            None,
            302,
        ),
        (
            "{scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}",
            "{exact: /x}",
            Some("https"),
            None,
            RedirectPort::ProtocolDefault,
            None,
            301,
        ),
        (
            "{scheme: https, port: 8443, redirectCode: 308}",
            "{exact: /x}",
            Some("https"),
            None,
            RedirectPort::Set(8443),
            None,
            308,
        ),
        (
            "{port: 80}",
            "{exact: /x}",
            None,
            None,
            RedirectPort::ProtocolDefault,
            None,
            301,
        ),
        (
            "{uri: /a, derivePort: FROM_REQUEST_PORT, redirectCode: 307}",
            "{exact: /x}",
            None,
            None,
            RedirectPort::Keep,
            Some("full /a"),
            307,
        ),
    ];
    for (redirect, uri, scheme, host, port, path, status) in cases {
        let vs = ok_vs(&format!(
            "hosts: [reviews]\nhttp:\n- match:\n  - uri: {uri}\n  redirect: {redirect}\n  headers: {{response: {{set: {{x-r: '1'}}}}}}\n"
        ));
        let RuleAction::Redirect(r) = &vs.entries[0].rule.action else {
            panic!("redirect expected for {redirect}");
        };
        assert_eq!(r.scheme.as_deref(), scheme, "{redirect}");
        assert_eq!(r.host.as_deref(), host, "{redirect}");
        assert_eq!(r.port, port, "{redirect}");
        assert_eq!(
            path_rewrite_of(&vs.entries[0]).as_deref(),
            path,
            "{redirect}"
        );
        assert_eq!(r.status, status, "{redirect}");
        assert_eq!(
            r.response_headers.set,
            vec![("x-r".to_string(), "1".to_string())]
        );
    }
}

#[test]
fn direct_responses() {
    for (body, want) in [
        (
            "{status: 503, body: {string: unavailable}}",
            Some("unavailable"),
        ),
        ("{status: 200, body: {bytes: aGVsbG8=}}", Some("hello")),
        ("{status: 404}", None),
    ] {
        let vs = ok_vs(&format!(
            "hosts: [reviews]\nhttp:\n- directResponse: {body}\n"
        ));
        let RuleAction::DirectResponse(d) = &vs.entries[0].rule.action else {
            panic!("direct response expected");
        };
        assert_eq!(d.body.as_deref(), want, "{body}");
    }
}

#[test]
fn timeout_and_retries() {
    let vs = ok_vs(&format!(
        "hosts: [reviews]\nhttp:\n- timeout: 0.5s\n{ROUTE}"
    ));
    let f = forward(&vs.entries[0]);
    assert_eq!(f.timeout, Some(Duration::from_millis(500)));
    // No `retries`: Istio's default policy.
    assert_eq!(f.retries, Some(default_retry_policy()));
    let d = default_retry_policy();
    assert!(is_default_retry_policy(&d));
    for changed in [
        RetryPolicy {
            attempts: 3,
            ..d.clone()
        },
        RetryPolicy {
            codes: vec![503],
            ..d.clone()
        },
        RetryPolicy {
            per_try_timeout: Some(std::time::Duration::from_secs(1)),
            ..d.clone()
        },
        RetryPolicy {
            retry_on: vec!["5xx".into()],
            ..d.clone()
        },
        RetryPolicy {
            backoff: Some(std::time::Duration::from_millis(10)),
            ..d.clone()
        },
    ] {
        assert!(!is_default_retry_policy(&changed), "{changed:?}");
    }
    assert_eq!(d.attempts, 2);
    assert_eq!(
        d.retry_on,
        vec![
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled",
            "retriable-status-codes"
        ]
    );

    let vs = ok_vs(&format!(
        "hosts: [reviews]\nhttp:\n- retries: {{attempts: 0}}\n{ROUTE}"
    ));
    assert_eq!(forward(&vs.entries[0]).retries, None);

    let vs = ok_vs(&format!(
        "hosts: [reviews]\nhttp:\n- retries: {{attempts: 3, perTryTimeout: 2s, retryOn: 'gateway-error, 503,connect-failure,429', backoff: 25ms}}\n{ROUTE}"
    ));
    let r = forward(&vs.entries[0]).retries.clone().expect("retries");
    assert_eq!(r.attempts, 3);
    assert_eq!(r.per_try_timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        r.retry_on,
        vec!["gateway-error", "connect-failure", "retriable-status-codes"]
    );
    assert_eq!(r.codes, vec![503, 429]);
    assert_eq!(r.backoff, Some(Duration::from_millis(25)));

    // retryOn unset keeps Istio's default conditions.
    let vs = ok_vs(&format!(
        "hosts: [reviews]\nhttp:\n- retries: {{attempts: 5}}\n{ROUTE}"
    ));
    let r = forward(&vs.entries[0]).retries.clone().expect("retries");
    assert_eq!(
        (r.attempts, r.retry_on),
        (5, default_retry_policy().retry_on)
    );
}

#[test]
fn faults() {
    let cases: Vec<(&str, Option<(Duration, f64)>, Option<(u16, Option<&str>, f64)>)> = vec![
        ("{delay: {fixedDelay: 7s, percentage: {value: 100}}}", Some((Duration::from_secs(7), 100.0)), None),
        ("{delay: {fixedDelay: 2s, percent: 50}}", Some((Duration::from_secs(2), 50.0)), None),
        // No percentage: applies to no request.
        ("{delay: {fixedDelay: 1s}}", Some((Duration::from_secs(1), 0.0)), None),
        ("{abort: {httpStatus: 500, percentage: {value: 100}}}", None, Some((500, None, 100.0))),
        ("{abort: {grpcStatus: UNAVAILABLE, percentage: {value: 12.5}}}", None, Some((200, Some("14"), 12.5))),
        ("{delay: {fixedDelay: 100ms, percentage: {value: 10}}, abort: {httpStatus: 503, percentage: {value: 5}}}", Some((Duration::from_millis(100), 10.0)), Some((503, None, 5.0))),
    ];
    for (fault, delay, abort) in cases {
        let vs = ok_vs(&format!(
            "hosts: [reviews]\nhttp:\n- fault: {fault}\n{ROUTE}"
        ));
        let f = forward(&vs.entries[0]).fault.clone().expect("fault");
        assert_eq!(f.delay, delay, "{fault}");
        let got = f.abort.map(|a| (a.http_status, a.grpc_status, a.percent));
        assert_eq!(
            got,
            abort.map(|(s, g, p)| (s, g.map(str::to_string), p)),
            "{fault}"
        );
    }
}

#[test]
fn mirrors() {
    // (rule fields, [(subset, percent)], deprecated warning)
    let cases: Vec<(&str, Vec<(&str, f64)>, bool)> = vec![
        ("mirror: {host: reviews, subset: v2}\n", vec![("v2", 100.0)], false),
        ("mirror: {host: reviews, subset: v2}\n  mirrorPercentage: {value: 25.5}\n", vec![("v2", 25.5)], false),
        ("mirror: {host: reviews, subset: v2}\n  mirrorPercentage: {value: 0}\n", vec![], false),
        ("mirror: {host: reviews, subset: v2}\n  mirrorPercent: 30\n", vec![("v2", 30.0)], true),
        ("mirrors:\n  - destination: {host: reviews, subset: v2}\n  - destination: {host: reviews, subset: v3}\n    percentage: {value: 5}\n", vec![("v2", 100.0), ("v3", 5.0)], false),
    ];
    for (fields, want, warn) in cases {
        let (vs, d) = compile_vs(&format!("hosts: [reviews]\nhttp:\n- {fields}  route:\n  - destination: {{host: reviews, subset: v1}}\n"));
        let vs = vs.unwrap_or_else(|| panic!("{fields}: {:?}", d.errors));
        let got: Vec<(&str, f64)> = forward(&vs.entries[0])
            .mirrors
            .iter()
            .map(|m| (m.backend.subset.as_deref().unwrap_or(""), m.percent))
            .collect();
        assert_eq!(got, want, "{fields}");
        assert_eq!(
            d.warnings
                .iter()
                .any(|w| w.field == "spec.http[0].mirrorPercent"),
            warn,
            "{fields}"
        );
    }
}

#[test]
fn cors() {
    let vs = ok_vs(&format!(
        "hosts: [reviews]\nhttp:\n- corsPolicy:\n    allowOrigins:\n    - exact: https://a.example\n    - regex: 'https://.*\\.b\\.example'\n    allowMethods: [GET, POST]\n    allowHeaders: [x-custom]\n    exposeHeaders: [x-exposed]\n    maxAge: 24h\n    allowCredentials: true\n{ROUTE}"
    ));
    let c = forward(&vs.entries[0]).cors.clone().expect("cors");
    assert_eq!(c.allow_origins.len(), 2);
    assert!(c.allow_origins[0].matches("https://a.example"));
    assert!(c.allow_origins[1].matches("https://x.b.example"));
    assert!(!c.allow_origins[1].matches("https://x.c.example"));
    assert_eq!(c.allow_methods, vec!["GET", "POST"]);
    assert_eq!(c.allow_headers, vec!["x-custom"]);
    assert_eq!(c.expose_headers, vec!["x-exposed"]);
    assert_eq!(c.max_age, Some(Duration::from_secs(86_400)));
    assert_eq!(c.allow_credentials, Some(true));
    // Deprecated allowOrigin: exact matches.
    let vs = ok_vs(&format!(
        "hosts: [reviews]\nhttp:\n- corsPolicy: {{allowOrigin: ['https://old.example']}}\n{ROUTE}"
    ));
    let c = forward(&vs.entries[0]).cors.clone().expect("cors");
    assert!(c.allow_origins[0].matches("https://old.example"));
    assert!(!c.allow_origins[0].matches("https://old.example.evil"));
}

#[test]
fn tcp_tls_and_export_to_are_accepted() {
    let (vs, d) = compile_vs(
        "hosts: [reviews]\nexportTo: ['.']\nhttp:\n- route:\n  - destination: {host: reviews}\ntcp:\n- route:\n  - destination: {host: reviews}\ntls:\n- match:\n  - sniHosts: [reviews]\n  route:\n  - destination: {host: reviews}\n",
    );
    let vs = vs.expect("compiles");
    assert_eq!(vs.export_to, vec!["."]);
    assert!(d.warnings.iter().any(|w| w.field == "spec.tcp"));
    assert!(d.warnings.iter().any(|w| w.field == "spec.tls"));
    // A VirtualService with only tcp routes compiles to no HTTP entries.
    let vs = ok_vs("hosts: [reviews]\ntcp:\n- route:\n  - destination: {host: reviews}\n");
    assert!(vs.entries.is_empty());
}

#[test]
fn hosts_are_resolved_and_matched() {
    let vs = ok_vs(
        "hosts: [reviews, '*.example.com']\nhttp:\n- route:\n  - destination: {host: reviews}\n",
    );
    assert_eq!(vs.hosts, vec!["reviews", "*.example.com"]);
    assert_eq!(
        vs.resolved_hosts,
        vec!["reviews.default.svc.cluster.local", "*.example.com"]
    );
    assert!(vs.matches_host("reviews.default.svc.cluster.local"));
    assert!(vs.matches_host("api.example.com"));
    assert!(!vs.matches_host("ratings.default.svc.cluster.local"));
    assert!(vs.selected_for(
        "reviews.default.svc.cluster.local",
        "default",
        "waypoint-ns"
    ));
    assert!(!vs.selected_for("reviews.default.svc.cluster.local", "other", "waypoint-ns"));
}

fn named_vs(name: &str, ts: Option<&str>, seq: usize, spec: &str) -> CompiledVirtualService {
    let mut raw = raw(&vs_yaml(spec).replace("name: vs", &format!("name: {name}")));
    raw.creation_timestamp = ts.map(str::to_string);
    raw.seq = seq;
    let (vs, d) = compile_virtual_service(&raw, &bookinfo());
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    vs.expect("compiled")
}

#[test]
fn merge_appends_all_virtual_services_oldest_first() {
    let newer = named_vs(
        "b-newer",
        Some("2024-05-02T00:00:00Z"),
        0,
        "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: v2}\n",
    );
    let older = named_vs("a-older", Some("2024-05-01T00:00:00Z"), 1, "hosts: [reviews]\nhttp:\n- match:\n  - uri: {prefix: /v1}\n  route:\n  - destination: {host: reviews, subset: v1}\n");
    let merged = merge_for_host(&[&newer, &older]);
    assert_eq!(merged.len(), 2);
    assert_eq!(merged[0].rule.id.name, "a-older");
    assert_eq!(merged[1].rule.id.name, "b-newer");
    // First match wins across the merged list.
    let pick = |path: &str| {
        first_match(&merged, &Req::get(path)).map(|e| {
            forward(e).backends[0]
                .backend
                .subset
                .clone()
                .unwrap_or_default()
        })
    };
    assert_eq!(pick("/v1/x").as_deref(), Some("v1"));
    assert_eq!(pick("/other").as_deref(), Some("v2"));

    // Without timestamps, read order decides; a gateway-only VirtualService is skipped.
    let first = named_vs(
        "z",
        None,
        0,
        "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: v3}\n",
    );
    let second = named_vs(
        "a",
        None,
        1,
        "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: v1}\n",
    );
    let gw = named_vs("gw", None, 2, "hosts: [reviews]\ngateways: [default/gw]\nhttp:\n- route:\n  - destination: {host: reviews}\n");
    let merged = merge_for_host(&[&gw, &second, &first]);
    let names: Vec<&str> = merged.iter().map(|e| e.rule.id.name.as_str()).collect();
    assert_eq!(names, vec!["z", "a"]);
    assert!(merge_for_host(&[]).is_empty());
}

#[test]
fn source_namespace_is_the_waypoints_namespace() {
    let vs = named_vs("ns", None, 0, "hosts: [reviews]\nhttp:\n- match:\n  - sourceNamespace: default\n    uri: {prefix: /a}\n  - sourceNamespace: other\n    uri: {prefix: /b}\n  route:\n  - destination: {host: reviews}\n");
    assert_eq!(vs.entries.len(), 2);
    assert_eq!(
        vs.entry_source_namespaces,
        vec![Some("default".to_string()), Some("other".to_string())]
    );
    // Default assumption: the waypoint runs in the VirtualService's namespace.
    assert_eq!(merge_for_host(&[&vs]).len(), 1);
    let at_other = merge_for_host_at(&[&vs], "other");
    assert_eq!(at_other.len(), 1);
    assert!(matches(&at_other[0].matcher, &Req::get("/b")));
    assert!(merge_for_host_at(&[&vs], "third").is_empty());
}

#[test]
fn warnings_for_ignored_fields() {
    // (spec, warned field)
    let cases: Vec<(&str, &str)> = vec![
        ("hosts: [reviews]\nhttp:\n- redirect: {uri: /x}\n  timeout: 1s\n", "spec.http[0].timeout"),
        ("hosts: [reviews]\nhttp:\n- directResponse: {status: 200}\n  corsPolicy: {allowMethods: [GET]}\n", "spec.http[0].corsPolicy"),
        ("hosts: [reviews]\nhttp:\n- headers: {request: {set: {x-ip: '%DOWNSTREAM_REMOTE_ADDRESS%'}}}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].headers.request.set.x-ip"),
        ("hosts: [reviews]\nhttp:\n- retries: {attempts: 2, retryRemoteLocalities: true}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].retries.retryRemoteLocalities"),
        ("hosts: [reviews]\nhttp:\n- corsPolicy: {unmatchedPreflights: IGNORE}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].corsPolicy.unmatchedPreflights"),
        ("hosts: [reviews]\nhttp:\n- fault: {abort: {percentage: {value: 10}}}\n  route:\n  - destination: {host: reviews}\n", "spec.http[0].fault.abort"),
    ];
    // No hosts (a delegate VirtualService): nothing to say at compile time; the delegation
    // merge reports one no root uses (`delegate.rs`).
    for (spec, field) in cases {
        let (vs, d) = compile_vs(spec);
        assert!(vs.is_some(), "{spec}: {:?}", d.errors);
        assert!(
            d.warnings.iter().any(|w| w.field == field),
            "expected a warning at {field}, got {:?}",
            d.warnings
        );
    }
}
