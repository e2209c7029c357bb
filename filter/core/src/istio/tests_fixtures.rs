//! Real Istio samples (bookinfo networking and istio.io task pages) compiled end to end; runs
//! only when the shared fixtures directory exists next to the repository, else prints SKIP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::resource::{parse_manifests, RawResource};
use crate::route::RuleAction;

use super::test_support::{bookinfo, first_match, forward, Req};
use super::{compile_destination_rule, compile_virtual_service, CompiledVirtualService};

const ROOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/istio-samples"
);

fn yaml_files(dir: &Path, recurse: bool, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() && recurse {
            yaml_files(&p, true, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

/// Every VirtualService / DestinationRule of the samples, by file name.
fn load(root: &Path) -> Vec<(String, RawResource)> {
    let mut files = Vec::new();
    yaml_files(&root.join("samples/bookinfo/networking"), false, &mut files);
    yaml_files(&root.join("istio.io"), true, &mut files);
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let (rs, errs) = parse_manifests(&text, &name, "default", 0);
        assert!(errs.is_empty(), "{name}: {errs:?}");
        for r in rs {
            if r.group() == "networking.istio.io"
                && matches!(r.kind.as_str(), "VirtualService" | "DestinationRule")
            {
                out.push((name.clone(), r));
            }
        }
    }
    out
}

fn vs_from(all: &[(String, RawResource)], file: &str) -> CompiledVirtualService {
    let (_, raw) = all
        .iter()
        .find(|(f, r)| f == file && r.kind == "VirtualService")
        .unwrap_or_else(|| panic!("no VirtualService in {file}"));
    compile_virtual_service(raw, &bookinfo())
        .0
        .unwrap_or_else(|| panic!("{file} compiles"))
}

#[test]
fn istio_samples_compile() {
    let root = Path::new(ROOT);
    if !root.exists() {
        println!("SKIP: ../shared/fixtures not present ({ROOT})");
        return;
    }
    let all = load(root);
    let (mut vss, mut drs) = (0, 0);
    for (file, raw) in &all {
        let diags = if raw.kind == "VirtualService" {
            vss += 1;
            compile_virtual_service(raw, &bookinfo()).1
        } else {
            drs += 1;
            compile_destination_rule(raw, &bookinfo()).1
        };
        assert!(
            diags.errors.is_empty(),
            "{file} {}: {:?}",
            raw.name,
            diags.errors
        );
    }
    assert!(
        vss >= 20 && drs >= 5,
        "found {vss} VirtualServices, {drs} DestinationRules"
    );

    // reviews 90/10.
    let vs = vs_from(&all, "virtual-service-reviews-90-10.yaml");
    let w: Vec<(String, u32)> = forward(&vs.entries[0])
        .backends
        .iter()
        .map(|b| (b.backend.subset.clone().unwrap_or_default(), b.weight))
        .collect();
    assert_eq!(w, vec![("v1".to_string(), 90), ("v2".to_string(), 10)]);

    // jason: exact match on end-user → v2, everyone else → v3.
    let vs = vs_from(&all, "virtual-service-reviews-jason-v2-v3.yaml");
    let h = &vs.entries[0].matcher.headers[0];
    assert_eq!(h.name, "end-user");
    assert_eq!(
        h.matcher.as_ref().map(|m| m.describe()).as_deref(),
        Some("exact \"jason\"")
    );
    let subset = |headers: &[(&str, &str)]| {
        let r = Req {
            headers,
            ..Req::get("/reviews/0")
        };
        first_match(&vs.entries, &r).and_then(|e| forward(e).backends[0].backend.subset.clone())
    };
    assert_eq!(subset(&[("end-user", "jason")]).as_deref(), Some("v2"));
    assert_eq!(subset(&[("end-user", "json")]).as_deref(), Some("v3"));

    // ratings abort 500 at 100 %.
    let vs = vs_from(&all, "virtual-service-ratings-test-abort.yaml");
    let abort = forward(&vs.entries[0])
        .fault
        .clone()
        .and_then(|f| f.abort)
        .expect("abort");
    assert_eq!((abort.http_status, abort.percent), (500, 100.0));
    assert!(forward(&vs.entries[1]).fault.is_none());

    // ratings delay 7s at 100 %.
    let vs = vs_from(&all, "virtual-service-ratings-test-delay.yaml");
    let delay = forward(&vs.entries[0])
        .fault
        .clone()
        .and_then(|f| f.delay)
        .expect("delay");
    assert_eq!(delay, (Duration::from_secs(7), 100.0));

    // Timeouts task: reviews timeout 0.5s; ratings delay 2s with deprecated `percent: 100`.
    let vs = vs_from(&all, "3-reviews-v2-timeout-0.5s.yaml");
    assert_eq!(
        forward(&vs.entries[0]).timeout,
        Some(Duration::from_millis(500))
    );
    let vs = vs_from(&all, "2-ratings-delay-2s.yaml");
    let delay = forward(&vs.entries[0])
        .fault
        .clone()
        .and_then(|f| f.delay)
        .expect("delay");
    assert_eq!(delay, (Duration::from_secs(2), 100.0));

    // Mirroring: all traffic to v1, mirrored 100 % to v2.
    let vs = vs_from(&all, "2-istio-httpbin-mirror-v2.yaml");
    let f = forward(&vs.entries[0]);
    assert_eq!(f.backends[0].backend.subset.as_deref(), Some("v1"));
    assert_eq!(f.mirrors.len(), 1);
    assert_eq!(
        f.mirrors[0].backend.host,
        "httpbin.default.svc.cluster.local"
    );
    assert_eq!(f.mirrors[0].backend.subset.as_deref(), Some("v2"));
    assert_eq!(f.mirrors[0].percent, 100.0);

    // The bookinfo gateway VirtualService is not for the waypoint.
    let vs = vs_from(&all, "bookinfo-gateway.yaml");
    assert!(!vs.applies_to_mesh());
    assert!(matches!(vs.entries[0].rule.action, RuleAction::Forward(_)));
}
