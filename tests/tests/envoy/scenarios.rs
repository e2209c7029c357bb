//! The shared scenario suite through real Envoy 1.40 + libwaypoint.so: every case is sent
//! through Envoy and must come out as the core decides (status, body, location, cluster,
//! upstream path and request headers, response headers, fault delay).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use waypoint_core::decision::Action;
use waypoint_core::{Request, SplitMix64};
use waypoint_tests::envoy_harness::{self, http_request, https_request, Bookinfo, Response};
use waypoint_tests::scenario::{self, Case, ScenarioFile};

/// Istio's cluster name, as the module writes it into `x-waypoint-cluster`.
fn cluster(port: u16, subset: Option<&str>, host: &str) -> String {
    format!("outbound|{port}|{}|{host}", subset.unwrap_or(""))
}

/// The destination the scenario runner gives the core (`dest`, else authority[:80]).
fn destination(case: &Case) -> Result<(String, String, String, String), String> {
    let (scheme, authority, path) =
        scenario::split_url(&case.request.url).map_err(|e| e.to_string())?;
    let dest = match &case.request.dest {
        Some(d) => d.clone(),
        None if authority.contains(':') => authority.clone(),
        None => format!("{authority}:80"),
    };
    Ok((scheme, authority, path, dest))
}

/// Clusters a case may be sent to: every weighted candidate (the split is random in Envoy).
fn clusters_for(snap: &waypoint_core::Snapshot, case: &Case) -> Result<BTreeSet<String>, String> {
    let r = &case.request;
    let (scheme, authority, path, dest) = destination(case)?;
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = Request {
        method: &r.method,
        scheme: &scheme,
        authority: &authority,
        path: &path,
        headers: &headers,
        source_principal: r.source_principal.as_deref(),
        source_ip: None,
        destination: &dest,
        sni: None,
    };
    let d = snap.decide(&req, &mut SplitMix64(r.seed), false);
    let mut out = BTreeSet::new();
    if let (Action::Passthrough, Some(addr)) = (d.action, d.passthrough) {
        out.insert(waypoint_core::names::passthrough_cluster_name(addr));
    }
    if let (Action::Route, Some(f)) = (d.action, &d.forward) {
        out.insert(cluster(
            f.port,
            f.backend.subset.as_deref(),
            &f.backend.host,
        ));
        for c in f.candidates.iter().filter(|c| c.weight > 0) {
            let port = c.backend.port.unwrap_or(f.port);
            out.insert(cluster(port, c.backend.subset.as_deref(), &c.backend.host));
        }
    }
    Ok(out)
}

fn send(b: &Bookinfo, case: &Case) -> Result<(Response, Duration), String> {
    let r = &case.request;
    let (_, authority, path, dest) = destination(case)?;
    let mut headers: Vec<(&str, &str)> = vec![("x-envoy-original-dst-host", dest.as_str())];
    headers.extend(r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let t = Instant::now();
    let resp = match r.source_principal.as_deref() {
        // The identity travels as the client certificate's URI SAN over the mTLS listener.
        Some(p) => https_request(
            b.tls_port,
            b.pki.client(Some(p)),
            &r.method,
            &authority,
            &path,
            &headers,
        ),
        None => http_request(b.plain_port, &r.method, &authority, &path, &headers),
    }?;
    Ok((resp, t.elapsed()))
}

/// Compare what came out of Envoy with the core's explain JSON for the same case.
fn compare(
    core: &Value,
    resp: &Response,
    took: Duration,
    allowed: &BTreeSet<String>,
) -> Result<(), String> {
    let action = core.get("action").and_then(Value::as_str).unwrap_or("");
    if let Some(ms) = core.get("fault_delay_ms").and_then(Value::as_u64) {
        if took < Duration::from_millis(ms) {
            return Err(format!(
                "fault delay {ms} ms but the response took {took:?}"
            ));
        }
    }
    // A pass-through goes upstream like a route (to the original destination's cluster).
    if action != "route" && action != "passthrough" {
        let status = core.get("status").and_then(Value::as_u64).unwrap_or(0);
        if u64::from(resp.status) != status || resp.upstream().is_some() {
            return Err(format!(
                "core: {action} {status}; envoy: {} {:?}",
                resp.status, resp.body
            ));
        }
        let body = core.get("body").and_then(Value::as_str).unwrap_or("");
        if resp.body != body {
            return Err(format!("body {:?}, core says {body:?}", resp.body));
        }
        if let Some(Value::Object(hs)) = core.get("local_headers") {
            for (k, v) in hs {
                let got: Vec<&str> = resp
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, x)| x.as_str())
                    .collect();
                if Some(got.join(",").as_str()) != v.as_str() {
                    return Err(format!("reply header {k}: {got:?}, core says {v}"));
                }
            }
        }
        if let Some(loc) = core.get("location").and_then(Value::as_str) {
            if resp.header("location") != Some(loc) {
                return Err(format!(
                    "location {:?}, core says {loc:?}",
                    resp.header("location")
                ));
            }
        }
        return Ok(());
    }
    let up = resp.upstream().unwrap_or_default();
    if resp.status != 200 || !allowed.contains(&up) {
        return Err(format!(
            "core routes to one of {allowed:?}; envoy: {} from {up:?} {:?}",
            resp.status, resp.body
        ));
    }
    if let Some(path) = core.get("path").and_then(Value::as_str) {
        let got = resp
            .json()
            .get("path")
            .and_then(Value::as_str)
            .map(str::to_string);
        if got.as_deref() != Some(path) {
            return Err(format!("upstream path {got:?}, core says {path:?}"));
        }
    }
    if let Some(Value::Object(hs)) = core.get("request_headers") {
        for (k, v) in hs {
            if k.starts_with(':') || k == "host" {
                continue;
            }
            let got = resp.upstream_header(k);
            let want: Vec<String> = v.as_str().map(|s| vec![s.to_string()]).unwrap_or_default();
            if got.join(",") != want.join(",") {
                return Err(format!("upstream header {k}: {got:?}, core says {v}"));
            }
        }
    }
    if let Some(Value::Array(adds)) = core.get("response_headers_add") {
        for a in adds {
            let (Some(n), Some(v)) = (
                a.get("name").and_then(Value::as_str),
                a.get("value").and_then(Value::as_str),
            ) else {
                continue;
            };
            let got: Vec<&str> = resp
                .headers
                .iter()
                .filter(|(k, _)| k == n)
                .map(|(_, x)| x.as_str())
                .collect();
            if !got.contains(&v) {
                return Err(format!("response header {n}: {got:?}, core adds {v:?}"));
            }
        }
    }
    Ok(())
}

/// Which filter runs the core in front of Envoy's router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// The dynamic module (`libwaypoint.so`).
    Module,
    /// The proxy-wasm filter (`waypoint_wasm.wasm`) on V8.
    Wasm,
}

/// Why the Wasm filter cannot run a case (listed as a visible SKIP), or `None`.
fn wasm_gap(core: &Value) -> Option<&'static str> {
    let mirrors = core
        .get("mirrors")
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty());
    mirrors.then_some("request mirroring is not implemented in the Wasm filter")
}

pub fn run_file(file: &std::path::Path, kind: Filter) -> Result<usize, Vec<String>> {
    let name = file.display().to_string();
    let sf: ScenarioFile = scenario::load(file).map_err(|e| vec![format!("{name}: {e}")])?;
    let snap = scenario::build_snapshot(&sf).map_err(|e| vec![format!("{name}: {e}")])?;
    let mut all = BTreeSet::new();
    let mut allowed = Vec::new();
    for case in &sf.cases {
        let c =
            clusters_for(&snap, case).map_err(|e| vec![format!("{name}: {}: {e}", case.name)])?;
        all.extend(c.iter().cloned());
        allowed.push(c);
    }
    let ups: Vec<(String, String)> = all.iter().map(|c| (c.clone(), c.clone())).collect();
    let mut filter = serde_json::json!({
        "config_paths": sf.config.iter().map(|c| scenario::repo_root().join(c).display().to_string()).collect::<Vec<_>>(),
        "default_namespace": "default",
    });
    if let Some(w) = &sf.waypoint {
        filter["waypoint"] = Value::String(w.clone());
    }
    let started = match kind {
        Filter::Module => Bookinfo::start_with(&filter, &ups),
        Filter::Wasm => {
            // A Wasm VM has no file system: the same manifests, inline.
            let files: Vec<std::path::PathBuf> = sf
                .config
                .iter()
                .map(|c| scenario::repo_root().join(c))
                .flat_map(|p| waypoint_loader::load_paths(&[p], "default").files)
                .collect();
            let inline = waypoint_envoy_config::bootstrap::inline_manifests(&files)
                .map_err(|e| vec![format!("{name}: {e}")])?;
            filter["config_inline"] = Value::String(inline);
            if let Some(o) = filter.as_object_mut() {
                o.remove("config_paths");
            }
            Bookinfo::start_filter(&envoy_harness::wasm_filter(&filter), &ups)
        }
    };
    let b = started.map_err(|e| vec![format!("{name}: {e}")])?;
    let mut failures = Vec::new();
    let mut ran = 0;
    for (case, allowed) in sf.cases.iter().zip(&allowed) {
        // Envoy sees the loopback client address; cases about other source IPs cannot be
        // reproduced through a real socket here.
        if case
            .request
            .source_ip
            .as_deref()
            .is_some_and(|ip| ip != "127.0.0.1")
        {
            eprintln!(
                "skip {}: needs source_ip {:?}",
                case.name, case.request.source_ip
            );
            continue;
        }
        let core = match scenario::core_decision(&snap, case) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: {}: core: {e}", case.name));
                continue;
            }
        };
        if let Some(why) = wasm_gap(&core).filter(|_| kind == Filter::Wasm) {
            println!("SKIP {name} / {}: {why}", case.name);
            continue;
        }
        ran += 1;
        let r = send(&b, case).and_then(|(resp, took)| compare(&core, &resp, took, allowed));
        if let Err(e) = r {
            failures.push(format!("{name}: {}: {e}", case.name));
        }
    }
    if failures.is_empty() {
        Ok(ran)
    } else {
        failures.push(format!(
            "--- envoy log tail ---\n{}",
            tail(&b.envoy.log_text(), 30)
        ));
        Err(failures)
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn shared_scenarios_decide_the_same_through_envoy() {
    let files = scenario::scenario_files();
    assert!(!files.is_empty(), "no scenario files");
    let mut failures = Vec::new();
    let mut ran = 0;
    for f in &files {
        match run_file(f, Filter::Module) {
            Ok(n) => {
                eprintln!("{}: {n} cases matched the core through Envoy", f.display());
                ran += n
            }
            Err(e) => failures.extend(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(ran >= 10, "only {ran} scenario cases ran through Envoy");
}
