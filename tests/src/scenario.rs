//! The shared scenario suite: data files (config + request + expected decision) that every
//! mode (core, Envoy module, standalone host) runs, so all modes must decide the same.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use waypoint_core::explain::decision_json;
use waypoint_core::{BuildOptions, Request, Snapshot, SplitMix64};

/// One scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Config paths relative to the repository root.
    pub config: Vec<String>,
    #[serde(default)]
    pub waypoint: Option<String>,
    pub cases: Vec<Case>,
}

/// One request and what must come of it.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub request: CaseRequest,
    /// A subset of the explain JSON: every key given must equal the decision's.
    pub expect: Value,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CaseRequest {
    #[serde(default = "get")]
    pub method: String,
    /// `http://host[:port]/path?query`.
    pub url: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub source_principal: Option<String>,
    #[serde(default)]
    pub source_ip: Option<String>,
    #[serde(default)]
    pub dest: Option<String>,
    #[serde(default)]
    pub seed: u64,
}

fn get() -> String {
    "GET".to_string()
}

/// Repository root (the tests crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every scenario file, sorted.
pub fn scenario_files() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    files.retain(|p| fixtures_present(p));
    files
}

/// Scenario files may take config from `../shared/fixtures` (upstream conformance manifests
/// we may not commit): without it they are skipped, visibly.
fn fixtures_present(path: &Path) -> bool {
    let Ok(file) = load(path) else {
        return true; // the runner reports the parse error
    };
    let missing: Vec<&String> = file
        .config
        .iter()
        .filter(|c| c.starts_with("../shared/") && !repo_root().join(c).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    println!(
        "SKIP {}: config not present: {}",
        path.display(),
        missing
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    false
}

pub fn load(path: &Path) -> anyhow::Result<ScenarioFile> {
    let text = std::fs::read_to_string(path)?;
    Ok(serde_yaml::from_str(&text)?)
}

/// Split `http://host[:port]/path` into (scheme, authority, path+query).
pub fn split_url(url: &str) -> anyhow::Result<(String, String, String)> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| anyhow::anyhow!("url {url:?} has no scheme"))?;
    let i = rest.find(['/', '?']).unwrap_or(rest.len());
    let mut path = rest[i..].to_string();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    Ok((scheme.to_string(), rest[..i].to_string(), path))
}

/// Build the snapshot a scenario file describes.
pub fn build_snapshot(file: &ScenarioFile) -> anyhow::Result<Snapshot> {
    let paths: Vec<PathBuf> = file.config.iter().map(|c| repo_root().join(c)).collect();
    let loaded = waypoint_loader::load_paths(&paths, "default");
    anyhow::ensure!(loaded.errors.is_empty(), "load errors: {:?}", loaded.errors);
    let waypoint = file
        .waypoint
        .as_deref()
        .and_then(|w| w.split_once('/'))
        .map(|(a, b)| (a.to_string(), b.to_string()));
    let (snap, diags) = Snapshot::build(
        &loaded.resources,
        &BuildOptions {
            waypoint,
            ..Default::default()
        },
    );
    anyhow::ensure!(
        diags.errors.is_empty(),
        "config errors: {}",
        diags
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(snap)
}

/// Decide one case with the core and render the explain JSON.
pub fn core_decision(snap: &Snapshot, case: &Case) -> anyhow::Result<Value> {
    let r = &case.request;
    let (scheme, authority, path) = split_url(&r.url)?;
    let dest = match &r.dest {
        Some(d) => d.clone(),
        None if authority.contains(':') => authority.clone(),
        None => format!("{authority}:80"),
    };
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let source_ip = r.source_ip.as_deref().map(str::parse).transpose()?;
    let req = Request {
        method: &r.method,
        scheme: &scheme,
        authority: &authority,
        path: &path,
        headers: &headers,
        source_principal: r.source_principal.as_deref(),
        source_ip,
        destination: &dest,
        sni: None,
    };
    let d = snap.decide(&req, &mut SplitMix64(r.seed), true);
    Ok(decision_json(&d, &req))
}

/// Check that `actual` contains `expected` (objects: every expected key, recursively; arrays:
/// same length, element-wise; everything else: equal). Returns the first difference.
pub fn contains(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, ev) in e {
                let av = a.get(k).unwrap_or(&Value::Null);
                contains(av, ev, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => {
            for (i, (av, ev)) in a.iter().zip(e).enumerate() {
                contains(av, ev, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(a), Value::Number(e)) if a.as_f64() == e.as_f64() => Ok(()),
        (a, e) if a == e => Ok(()),
        (a, e) => Err(format!("{path}: expected {e}, got {a}")),
    }
}

/// Replace `podIP: <old>` (not followed by another digit or dot) with the new address.
pub fn remap_text(text: &str, map: &BTreeMap<IpAddr, IpAddr>) -> String {
    let mut out = text.to_string();
    for (old, new) in map {
        let needle = old.to_string();
        let replacement = new.to_string();
        let mut res = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(i) = rest.find(&needle) {
            let end = i + needle.len();
            let next = rest[end..].chars().next();
            let prev = rest[..i].chars().last();
            let boundary = !next.is_some_and(|c| c.is_ascii_digit() || c == '.')
                && !prev.is_some_and(|c| c.is_ascii_digit() || c == '.');
            res.push_str(&rest[..i]);
            res.push_str(if boundary { &replacement } else { &needle });
            rest = &rest[end..];
        }
        res.push_str(rest);
        out = res;
    }
    out
}

/// Copy every manifest of `config` into `dir` with pod IPs remapped.
pub fn write_config(config: &[String], map: &BTreeMap<IpAddr, IpAddr>, dir: &std::path::Path) {
    let mut n = 0;
    let mut stack: Vec<std::path::PathBuf> = config.iter().map(|c| repo_root().join(c)).collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).expect("read dir").flatten() {
                stack.push(e.path());
            }
        } else if p
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            let text = std::fs::read_to_string(&p).expect("read manifest");
            n += 1;
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("yaml");
            std::fs::write(dir.join(format!("m{n:03}.{ext}")), remap_text(&text, map))
                .expect("write manifest");
        }
    }
}
