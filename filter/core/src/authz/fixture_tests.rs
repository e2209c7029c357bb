//! Istio's own builder test data (`pilot/pkg/security/authz/builder/testdata/http`), read
//! from `../shared/fixtures` when present: every input compiles, and our matchers agree with
//! the golden Envoy RBAC outputs on probe strings. Skips visibly when the fixtures are absent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::Value;

use super::pattern::{PathPat, PrincipalPat, StrPat};
use super::*;
use crate::request::Request;
use crate::resource::{parse_manifests, RawResource};

fn fixture_dir() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/istio-authz/pilot/pkg/security/authz/builder/testdata/http"
    ));
    if dir.is_dir() {
        Some(dir.to_path_buf())
    } else {
        crate::test_skip::skip(&format!(
            "../shared/fixtures not present ({})",
            dir.display()
        ));
        None
    }
}

fn load(dir: &Path, file: &str) -> Vec<RawResource> {
    let text = std::fs::read_to_string(dir.join(file)).expect("read fixture");
    let (rs, errs) = parse_manifests(&text, file, "default", 0);
    assert!(errs.is_empty(), "{file}: {errs:?}");
    assert!(!rs.is_empty(), "{file}: no resources");
    rs
}

fn golden(dir: &Path, file: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(file)).expect("read golden");
    serde_yaml::from_str(&text).expect("golden yaml")
}

/// Trust-domain bundle Istio's builder test uses for each input.
fn bundle_for(file: &str) -> TrustDomainBundle {
    match file {
        "simple-policy-td-aliases-in.yaml" => TrustDomainBundle::new("td1", &["cluster.local"]),
        "simple-policy-multiple-td-aliases-in.yaml" => {
            TrustDomainBundle::new("td1", &["cluster.local", "some-td"])
        }
        "simple-policy-principal-with-wildcard-in.yaml" => {
            TrustDomainBundle::new("td1", &["foobar"])
        }
        "td-aliases-source-principal-in.yaml" => {
            TrustDomainBundle::new("new-td", &["old-td", "some-trustdomain"])
        }
        _ => TrustDomainBundle::default(),
    }
}

fn compile_file(dir: &Path, file: &str, providers: &[&str]) -> Vec<(CompiledPolicy, Diagnostics)> {
    let td = bundle_for(file);
    load(dir, file)
        .iter()
        .map(|r| {
            compile_policy_with(
                r,
                &CompileOptions {
                    custom_providers: providers,
                    trust_domains: &td,
                },
            )
        })
        .collect()
}

use crate::error::Diagnostics;

#[test]
fn every_builder_input_compiles() {
    let Some(dir) = fixture_dir() else {
        return;
    };
    // Inputs whose diagnostics must carry errors, with a substring each error must contain.
    let expected_errors: BTreeMap<&str, &str> = [
        // The waypoint has no Envoy dynamic metadata: the ALLOW rule using it is dropped.
        ("allow-full-rule-in.yaml", "experimental.envoy.filters"),
        // `another` is not a provider we were given.
        ("custom-bad-multiple-providers-in.yaml", "another"),
    ]
    .into_iter()
    .collect();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("list fixtures")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-in.yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected Istio builder inputs, found {files:?}"
    );
    for file in &files {
        for (p, d) in compile_file(&dir, file, &["default"]) {
            assert!(!p.is_fail_closed(), "{file}: {:?}", d.errors);
            assert!(
                matches!(p.targets, PolicyTargets::Selector | PolicyTargets::Unscoped),
                "{file}: builder inputs use selector or nothing"
            );
            match expected_errors.get(file.as_str()) {
                None => assert!(d.errors.is_empty(), "{file} {}: {:?}", p.id, d.errors),
                Some(_)
                    if p.action == Action::Custom && p.provider.as_deref() == Some("default") =>
                {
                    assert!(d.errors.is_empty(), "{file} {}: {:?}", p.id, d.errors)
                }
                Some(needle) => {
                    assert!(
                        !d.errors.is_empty(),
                        "{file}: expected an error about {needle}"
                    );
                    for e in &d.errors {
                        assert!(e.to_string().contains(needle), "{file}: {e}");
                    }
                }
            }
        }
    }
}

struct Probe {
    principal: Option<String>,
    method: String,
    authority: String,
    path: String,
    headers: Vec<(String, String)>,
    source_ip: &'static str,
    dest_port: u16,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            principal: Some("spiffe://cluster.local/ns/foo/sa/sleep".into()),
            method: "GET".into(),
            authority: "httpbin.foo".into(),
            path: "/".into(),
            headers: vec![],
            source_ip: "10.0.0.1",
            dest_port: 8000,
        }
    }
}

fn decide<'p>(policies: &[&'p CompiledPolicy], p: &Probe) -> AuthzOutcome<'p> {
    let headers: Vec<(&str, &str)> = p
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = Request {
        method: &p.method,
        scheme: "http",
        authority: &p.authority,
        path: &p.path,
        headers: &headers,
        source_principal: p.principal.as_deref(),
        source_ip: p.source_ip.parse().ok(),
        destination: "10.0.0.2:8000",
        sni: None,
    };
    let path = normalize_path(&p.path);
    evaluate(
        policies,
        &AuthzInput {
            request: &req,
            path: &path,
            dest_ip: "10.0.0.2".parse().ok(),
            dest_port: Some(p.dest_port),
            auth: None,
        },
        false,
    )
}

fn refs(v: &[(CompiledPolicy, Diagnostics)]) -> Vec<&CompiledPolicy> {
    v.iter().map(|(p, _)| p).collect()
}

#[test]
fn builder_semantics() {
    let Some(dir) = fixture_dir() else {
        return;
    };
    let any = Probe::default();
    let one = |file: &str| compile_file(&dir, file, &["default"]);

    // allow-nil-rule: `permissions: notRule any` => an ALLOW that denies everything.
    let nil = one("allow-nil-rule-in.yaml");
    assert_eq!(nil[0].0.rule_count(), 0);
    assert!(!decide(&refs(&nil), &any).allowed);
    // allow-empty-rule / audit-full-rule / deny-empty-rule: `rules: [{}]` => `any: true`.
    assert!(decide(&refs(&one("allow-empty-rule-in.yaml")), &any).allowed);
    let audit = one("audit-full-rule-in.yaml");
    let out = decide(&refs(&audit), &any);
    assert!(out.allowed && out.verdicts[0].matched);
    assert!(!decide(&refs(&one("deny-empty-rule-in.yaml")), &any).allowed);

    // deny-and-allow: DENY filter (principal spiffe://deny) before ALLOW (spiffe://allow).
    let da = one("deny-and-allow-in.yaml");
    for (principal, want) in [
        ("spiffe://deny", false),
        ("spiffe://allow", true),
        ("spiffe://x", false),
    ] {
        let p = Probe {
            principal: Some(principal.into()),
            ..Probe::default()
        };
        assert_eq!(decide(&refs(&da), &p).allowed, want, "{principal}");
    }

    // dry-run-mix: the dry-run ALLOW only goes to shadow rules.
    let mix = one("dry-run-mix-in.yaml");
    assert!(mix[0].0.dry_run && !mix[1].0.dry_run);
    for (path, want) in [("/allow", false), ("/another", true)] {
        let p = Probe {
            path: path.into(),
            ..Probe::default()
        };
        assert_eq!(decide(&refs(&mix), &p).allowed, want, "{path}");
    }
    let dry = one("dry-run-allow-and-deny-in.yaml");
    assert!(dry.iter().all(|(p, _)| p.dry_run));
    assert!(decide(&refs(&dry), &any).allowed);

    // allow-path / allow-host-before-111: `notPaths`/`notHosts` hold `*`, so nothing matches.
    assert!(
        !decide(
            &refs(&one("allow-path-in.yaml")),
            &Probe {
                path: "/exact".into(),
                ..Probe::default()
            }
        )
        .allowed
    );
    assert!(
        !decide(
            &refs(&one("allow-host-before-111-in.yaml")),
            &Probe {
                authority: "example.com".into(),
                ..Probe::default()
            }
        )
        .allowed
    );

    // allow-full-rule: rule[0] (service accounts) survives; rule[1] is dropped.
    let full = one("allow-full-rule-in.yaml");
    assert_eq!(full[0].0.rule_count(), 1);
    for (principal, want) in [
        ("spiffe://cluster.local/ns/my-ns/sa/my-sa", true),
        ("spiffe://cluster.local/ns/foo/sa/sa-only", true),
        ("spiffe://cluster.local/ns/my-ns/sa/my-sa-not", false),
        ("spiffe://cluster.local/ns/foo/sa/other", false),
    ] {
        let p = Probe {
            principal: Some(principal.into()),
            ..Probe::default()
        };
        assert_eq!(decide(&refs(&full), &p).allowed, want, "{principal}");
    }

    // multiple-policies: nine ALLOW policies, any match allows.
    let multi = one("multiple-policies-in.yaml");
    assert_eq!(multi.len(), 9);
    let base = || Probe {
        method: "PUT".into(),
        path: "/x".into(),
        principal: Some("spiffe://cluster.local/ns/foo/sa/sleep".into()),
        ..Probe::default()
    };
    assert!(!decide(&refs(&multi), &base()).allowed);
    let allowed_probes: Vec<Probe> = vec![
        Probe {
            method: "GET".into(),
            ..base()
        },
        Probe {
            path: "/v2?q".into(),
            ..base()
        },
        Probe {
            authority: "HTTPBIN.ORG".into(),
            ..base()
        },
        Probe {
            dest_port: 90,
            ..base()
        },
        Probe {
            principal: Some("spiffe://principals2".into()),
            ..base()
        },
        Probe {
            principal: Some("spiffe://td/ns/namespaces1/sa/x".into()),
            ..base()
        },
        Probe {
            source_ip: "5.6.7.200",
            ..base()
        },
        Probe {
            headers: vec![("x-abc".into(), "abc2".into())],
            ..base()
        },
    ];
    for p in &allowed_probes {
        assert!(
            decide(&refs(&multi), p).allowed,
            "{} {} {}",
            p.method,
            p.path,
            p.authority
        );
    }

    // Trust-domain aliases (bundle td1 + cluster.local).
    let td = one("simple-policy-td-aliases-in.yaml");
    for (principal, want) in [
        ("spiffe://td1/ns/rule[1]/sa/from[0]-principal[0]", true),
        (
            "spiffe://cluster.local/ns/rule[1]/sa/from[0]-principal[0]",
            true,
        ),
        ("spiffe://other/ns/rule[1]/sa/from[0]-principal[0]", false),
    ] {
        let p = Probe {
            principal: Some(principal.into()),
            method: "rule[1]-to[0]-method[0]".into(),
            ..Probe::default()
        };
        assert_eq!(decide(&refs(&td), &p).allowed, want, "{principal}");
    }
    let td = one("td-aliases-source-principal-in.yaml");
    let p = Probe {
        principal: Some("spiffe://x/ns/istio-system/sa/y".into()),
        ..Probe::default()
    };
    assert!(decide(&refs(&td), &p).allowed);

    // trustDomains: from[0] trusts cluster.local / another.local; from[1] excludes bad*.
    let tds = one("trust-domains-in.yaml");
    for (principal, want) in [
        ("spiffe://another.local/ns/a/sa/b", true),
        ("spiffe://bad-td/ns/a/sa/b", false),
        ("spiffe://untrusted/ns/a/sa/b", false),
        ("spiffe://neutral/ns/a/sa/b", true),
    ] {
        let p = Probe {
            principal: Some(principal.into()),
            ..Probe::default()
        };
        assert_eq!(decide(&refs(&tds), &p).allowed, want, "{principal}");
    }

    // CUSTOM with a known provider asks it; two providers deny what they match.
    let custom = one("custom-simple-http-in.yaml");
    let out = decide(
        &refs(&custom),
        &Probe {
            path: "/httpbin1".into(),
            ..Probe::default()
        },
    );
    assert!(out.allowed);
    assert_eq!(out.custom, Some("default"));
    let bad = compile_file(
        &dir,
        "custom-bad-multiple-providers-in.yaml",
        &["default", "another"],
    );
    assert!(
        !decide(
            &refs(&bad),
            &Probe {
                path: "/httpbin2".into(),
                ..Probe::default()
            }
        )
        .allowed
    );
    assert!(
        decide(
            &refs(&bad),
            &Probe {
                path: "/other".into(),
                ..Probe::default()
            }
        )
        .allowed
    );
}

/// One Envoy string matcher from a golden output.
#[derive(Debug)]
enum Golden {
    Exact(String, bool),
    Prefix(String, bool),
    Suffix(String, bool),
    Regex(Regex),
    Present,
    Template(String),
}

impl Golden {
    fn from_string_matcher(m: &Value) -> Golden {
        let ic = m
            .get("ignoreCase")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        if let Some(v) = s("exact") {
            Golden::Exact(v, ic)
        } else if let Some(v) = s("prefix") {
            Golden::Prefix(v, ic)
        } else if let Some(v) = s("suffix") {
            Golden::Suffix(v, ic)
        } else if let Some(r) = m
            .get("safeRegex")
            .and_then(|r| r.get("regex"))
            .and_then(Value::as_str)
        {
            Golden::Regex(Regex::new(&format!("^(?:{r})$")).expect("golden regex"))
        } else {
            panic!("unknown string matcher {m}")
        }
    }

    fn holds(&self, v: Option<&str>) -> bool {
        let Some(v) = v else {
            return false;
        };
        let fold = |s: &str, ic: bool| {
            if ic {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        };
        match self {
            Golden::Exact(e, ic) => fold(v, *ic) == fold(e, *ic),
            Golden::Prefix(p, ic) => fold(v, *ic).starts_with(&fold(p, *ic)),
            Golden::Suffix(s, ic) => fold(v, *ic).ends_with(&fold(s, *ic)),
            Golden::Regex(r) => r.is_match(v),
            Golden::Present => true,
            Golden::Template(_) => unreachable!("templates are compared by text"),
        }
    }
}

/// Leaf matchers of one kind, in document order.
fn collect(
    v: &Value,
    pick: &dyn Fn(&serde_json::Map<String, Value>) -> Option<Golden>,
    out: &mut Vec<Golden>,
) {
    match v {
        Value::Object(m) => {
            if let Some(g) = pick(m) {
                out.push(g);
                return;
            }
            for (_, x) in m {
                collect(x, pick, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, pick, out)),
        _ => {}
    }
}

/// Probe strings around a value: itself (globs filled), with extra text on either side, cut.
fn probes(values: &[&str], wrap: &dyn Fn(&str) -> Vec<String>) -> Vec<Option<String>> {
    let mut out = vec![None, Some(String::new())];
    for v in values {
        let core = v
            .replace("{**}", "a/b")
            .replace("{*}", "seg")
            .replace('*', "q");
        for c in [
            core.clone(),
            format!("{core}x"),
            format!("x{core}"),
            core[..core.len().saturating_sub(1)].to_string(),
            core.to_uppercase(),
        ] {
            out.extend(wrap(&c).into_iter().map(Some));
        }
    }
    out
}

#[test]
fn matchers_agree_with_goldens() {
    let Some(dir) = fixture_dir() else {
        return;
    };
    // Paths (allow-path): urlPath string matchers and uri templates.
    let paths_in = [
        "/exact",
        "/prefix/*",
        "*/suffix",
        "*",
        "/path/template/{*}",
        "/{**}/path/template",
        "/not-exact",
        "/not-prefix/*",
        "*/not-suffix",
        "*",
        "/not-path/template/{*}",
        "/{**}/not-path/template",
    ];
    let mut gold = Vec::new();
    collect(
        &golden(&dir, "allow-path-out.yaml"),
        &|m| {
            if let Some(p) = m.get("urlPath").and_then(|u| u.get("path")) {
                return Some(Golden::from_string_matcher(p));
            }
            m.get("uriTemplate").map(|t| {
                Golden::Template(
                    t.pointer("/typedConfig/pathTemplate")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                )
            })
        },
        &mut gold,
    );
    assert_eq!(gold.len(), paths_in.len());
    let ps = probes(&paths_in, &|c| {
        vec![c.to_string(), format!("/{c}"), format!("{c}/z")]
    });
    for (v, g) in paths_in.iter().zip(&gold) {
        let ours = PathPat::compile(v).expect("path");
        match g {
            Golden::Template(t) => assert_eq!(t, &v.replace("{**}", "**").replace("{*}", "*")),
            g => {
                for p in &ps {
                    let Some(p) = p else { continue };
                    assert_eq!(ours.matches(p), g.holds(Some(p)), "path {v} vs {p:?}");
                }
            }
        }
    }

    // Principals (allow-full-rule): service accounts, principals, namespaces, source.*.
    let full = golden(&dir, "allow-full-rule-out.yaml");
    let mut gold = Vec::new();
    collect(
        &full,
        &|m| {
            m.get("authenticated")
                .and_then(|a| a.get("principalName"))
                .map(Golden::from_string_matcher)
        },
        &mut gold,
    );
    let sa = ["my-ns/my-sa", "sa-only", "my-ns/my-sa-not", "sa-not-only"];
    let pr = [
        "principal",
        "principal-prefix-*",
        "*-suffix-principal",
        "*",
        "not-principal",
        "not-principal-prefix-*",
        "*-not-suffix-principal",
        "*",
    ];
    let ns = [
        "ns",
        "ns-prefix-*",
        "*-ns-suffix",
        "*",
        "not-ns",
        "not-ns-prefix-*",
        "*-not-ns-suffix",
        "*",
    ];
    let mut ours: Vec<(String, PrincipalPat)> = Vec::new();
    ours.extend(sa.iter().map(|v| {
        (
            v.to_string(),
            PrincipalPat::service_account(v, "foo").expect("sa"),
        )
    }));
    ours.extend(
        pr.iter()
            .map(|v| (v.to_string(), PrincipalPat::principal(v))),
    );
    ours.extend(
        ns.iter()
            .map(|v| (v.to_string(), PrincipalPat::namespace(v).expect("ns"))),
    );
    ours.extend(
        ns.iter()
            .map(|v| (v.to_string(), PrincipalPat::namespace(v).expect("ns"))),
    );
    ours.extend(
        pr.iter()
            .map(|v| (v.to_string(), PrincipalPat::principal(v))),
    );
    assert_eq!(gold.len(), ours.len(), "{gold:?}");
    let all: Vec<&str> = sa.iter().chain(&pr).chain(&ns).copied().collect();
    let ps = probes(&all, &|c| {
        vec![
            format!("spiffe://{c}"),
            format!("spiffe://td/ns/{c}/sa/x"),
            format!("spiffe://td/ns/my-ns/sa/{c}"),
            format!("spiffe://td/ns/foo/sa/{c}"),
            format!("spiffe://td/ns/foo/x/sa/{c}/y"),
            c.to_string(),
        ]
    });
    for ((v, ours), g) in ours.iter().zip(&gold) {
        for p in &ps {
            assert_eq!(
                ours.matches(p.as_deref()),
                g.holds(p.as_deref()),
                "principal {v} vs {p:?}"
            );
        }
    }

    // Hosts (allow-full-rule): `:authority` header matchers, case-insensitive.
    let mut gold = Vec::new();
    collect(
        &full,
        &|m| {
            let h = m.get("header")?;
            if h.get("name").and_then(Value::as_str) != Some(":authority") {
                return None;
            }
            Some(match h.get("stringMatch") {
                Some(sm) => Golden::from_string_matcher(sm),
                None => Golden::Present,
            })
        },
        &mut gold,
    );
    let hosts = [
        "exact.com",
        "*.suffix.com",
        "prefix.*",
        "*",
        "not-exact.com",
        "*.not-suffix.com",
        "not-prefix.*",
        "*",
    ];
    assert_eq!(gold.len(), hosts.len());
    let ps = probes(&hosts, &|c| vec![c.to_string(), format!("{c}:80")]);
    for (v, g) in hosts.iter().zip(&gold) {
        let ours = StrPat::header(v).lowercase();
        for p in &ps {
            assert_eq!(
                ours.matches_ignore_case(p.as_deref()),
                g.holds(p.as_deref()),
                "host {v} vs {p:?}"
            );
        }
    }
}
