//! Istio telemetry through stock Envoy + libwaypoint.so, and the Grafana dashboard checked
//! against real scrapes of both modes (every metric and label it queries must be there).

use std::collections::BTreeSet;

use waypoint_tests::envoy_harness::repo_root;
use waypoint_tests::telemetry::{envoy_scrape, find, host_scrape, Series};

/// Envoy reports `istio_requests_total` and the three histograms under Istio's names with the
/// labels the host computes: the chosen pod's workload and version, the source workload.
#[test]
fn envoy_reports_istio_series_with_the_hosts_labels() {
    let (_envoy, scrape) = envoy_scrape(3);
    let s = &scrape.series;
    let ok = find(
        s,
        "istio_requests_total",
        &[
            ("reporter", "waypoint"),
            (
                "destination_service",
                "productpage.bookinfo.svc.cluster.local",
            ),
            ("response_code", "200"),
        ],
    )
    .unwrap_or_else(|| panic!("no istio_requests_total 200 series:\n{}", scrape.text));
    for (k, v) in [
        ("destination_workload", "productpage-v1"),
        ("destination_workload_namespace", "bookinfo"),
        ("destination_version", "v1"),
        ("destination_app", "productpage"),
        ("destination_canonical_service", "productpage"),
        ("destination_canonical_revision", "v1"),
        (
            "destination_principal",
            "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage",
        ),
        ("destination_service_name", "productpage"),
        ("destination_service_namespace", "bookinfo"),
        ("source_workload", "sleep-v1"),
        ("source_canonical_service", "sleep"),
        ("source_canonical_revision", "v1"),
        ("source_workload_namespace", "bookinfo"),
        (
            "source_principal",
            "spiffe://cluster.local/ns/bookinfo/sa/sleep",
        ),
        ("request_protocol", "http"),
        ("response_flags", "-"),
        ("connection_security_policy", "mutual_tls"),
    ] {
        assert_eq!(
            ok.labels.get(k).map(String::as_str),
            Some(v),
            "{k} in {ok:?}"
        );
    }
    assert_eq!(ok.value, 3.0, "{ok:?}");
    let denied = find(
        s,
        "istio_requests_total",
        &[
            ("response_code", "403"),
            ("destination_service_name", "productpage"),
        ],
    )
    .unwrap_or_else(|| panic!("no 403 series:\n{}", scrape.text));
    assert_eq!(denied.value, 1.0);
    let by_policy = find(
        s,
        "waypoint_policy_denials_total",
        &[
            ("reporter", "waypoint"),
            ("policy", "bookinfo/deny-admin"),
            (
                "destination_service",
                "productpage.bookinfo.svc.cluster.local",
            ),
        ],
    )
    .unwrap_or_else(|| panic!("no denial by policy:\n{}", scrape.text));
    assert_eq!(by_policy.value, 1.0);
    for name in [
        "istio_request_duration_milliseconds_count",
        "istio_request_bytes_count",
        "istio_response_bytes_count",
    ] {
        let n: f64 = s.iter().filter(|x| x.name == name).map(|x| x.value).sum();
        assert_eq!(n, 4.0, "{name}:\n{}", scrape.text);
    }
    // The module's histograms as Envoy prints its own: every `le` of Istio's buckets,
    // cumulative, `+Inf` equal to `_count` (here: the three 200s of one series).
    let ok_series = [
        ("response_code", "200"),
        ("destination_workload", "productpage-v1"),
    ];
    for name in [
        "istio_request_duration_milliseconds",
        "istio_request_bytes",
        "istio_response_bytes",
    ] {
        let bucket = format!("{name}_bucket");
        let mut last = 0.0;
        for le in [
            "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000",
            "10000", "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf",
        ] {
            let mut want = ok_series.to_vec();
            want.push(("le", le));
            let b = find(s, &bucket, &want)
                .unwrap_or_else(|| panic!("no {bucket} le={le}:\n{}", scrape.text));
            assert!(b.value >= last, "{bucket} not cumulative at le={le}");
            last = b.value;
        }
        assert_eq!(last, 3.0, "{bucket} le=+Inf");
        let count = find(s, &format!("{name}_count"), &ok_series).expect("count");
        assert_eq!(count.value, 3.0);
        assert!(find(s, &format!("{name}_sum"), &ok_series).is_some());
    }
}

/// One metric selector of a PromQL expression: the metric and its matchers (label, op, value).
#[derive(Debug)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

/// The selectors and the grouping labels (`by (...)`, `label_values(..., label)`) of `expr`.
fn analyze(expr: &str) -> Result<(Vec<Selector>, BTreeSet<String>), String> {
    let chars: Vec<char> = expr.chars().collect();
    let (mut selectors, mut grouping) = (Vec::new(), BTreeSet::new());
    let mut i = 0;
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_ascii_alphanumeric() || chars[*i] == '_') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_') {
            i += 1;
            continue;
        }
        let word = ident(&mut i);
        skip_ws(&mut i);
        if word == "by" || word == "without" {
            if chars.get(i) != Some(&'(') {
                return Err(format!("`{word}` without a label list in {expr}"));
            }
            let close = chars[i..]
                .iter()
                .position(|c| *c == ')')
                .ok_or_else(|| format!("unclosed `{word} (` in {expr}"))?;
            let list: String = chars[i + 1..i + close].iter().collect();
            grouping.extend(list.split(',').map(|l| l.trim().to_string()));
            i += close + 1;
        } else if word == "label_values" {
            // label_values(metric{...}, label): the label is the last argument.
            let close = chars[i..]
                .iter()
                .rposition(|c| *c == ')')
                .ok_or_else(|| format!("unclosed label_values in {expr}"))?;
            let args: String = chars[i + 1..i + close].iter().collect();
            let label = args.rsplit(',').next().unwrap_or_default().trim();
            grouping.insert(label.to_string());
            i += 1;
        } else if word.starts_with("istio_") || word.starts_with("waypoint_") {
            let mut matchers = Vec::new();
            if chars.get(i) == Some(&'{') {
                i += 1;
                loop {
                    skip_ws(&mut i);
                    if chars.get(i) == Some(&',') {
                        i += 1;
                        skip_ws(&mut i);
                    }
                    if chars.get(i) == Some(&'}') || i >= chars.len() {
                        i += 1;
                        break;
                    }
                    let label = ident(&mut i);
                    skip_ws(&mut i);
                    let op: String = chars[i..]
                        .iter()
                        .take_while(|c| matches!(c, '=' | '!' | '~'))
                        .collect();
                    i += op.len();
                    skip_ws(&mut i);
                    if label.is_empty() || op.is_empty() || chars.get(i) != Some(&'"') {
                        return Err(format!("bad matcher after {word}{{ in {expr}"));
                    }
                    i += 1;
                    let start = i;
                    while i < chars.len() && chars[i] != '"' {
                        i += 1;
                    }
                    let value: String = chars[start..i].iter().collect();
                    i += 1;
                    matchers.push((label, op, value));
                }
            }
            selectors.push(Selector {
                metric: word,
                matchers,
            });
        }
    }
    Ok((selectors, grouping))
}

/// Every PromQL expression of the dashboard: panel targets and templating queries.
fn dashboard_queries(d: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push(e.to_string());
            }
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["query"]["query"].as_str().or(v["definition"].as_str()) {
            if v["type"] == "query" {
                out.push(q.to_string());
            }
        }
    }
    out
}

/// What of `exprs` one scrape lacks: a metric with no series, a label no series of the metric
/// carries, or a literal `reporter` no series has.
fn missing(exprs: &[String], series: &[Series]) -> Vec<String> {
    let mut gaps = Vec::new();
    for expr in exprs {
        let (selectors, grouping) = match analyze(expr) {
            Ok(x) => x,
            Err(e) => {
                gaps.push(e);
                continue;
            }
        };
        if selectors.is_empty() {
            gaps.push(format!("no istio_*/waypoint_* metric in {expr}"));
        }
        for sel in &selectors {
            let of_metric: Vec<&Series> = series.iter().filter(|s| s.name == sel.metric).collect();
            if of_metric.is_empty() {
                gaps.push(format!("metric {} (in {expr})", sel.metric));
                continue;
            }
            let labels = sel
                .matchers
                .iter()
                .map(|(l, _, _)| l.as_str())
                .chain(grouping.iter().map(String::as_str));
            for label in labels {
                if !of_metric.iter().any(|s| s.labels.contains_key(label)) {
                    gaps.push(format!("label {label} on {} (in {expr})", sel.metric));
                }
            }
            for (label, op, value) in &sel.matchers {
                let literal = op == "=" && label == "reporter";
                if literal && !of_metric.iter().any(|s| s.labels.get(label) == Some(value)) {
                    gaps.push(format!("{label}=\"{value}\" on {} (in {expr})", sel.metric));
                }
            }
        }
    }
    gaps
}

#[test]
fn dashboard_queries_resolve_in_both_modes() {
    let path = repo_root().join("host/deploy/dashboards/waypoint.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let dash: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let exprs = dashboard_queries(&dash);
    assert!(exprs.len() >= 8, "queries: {exprs:?}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (host, _) = rt.block_on(host_scrape(2));
    let (_envoy, envoy) = envoy_scrape(2);
    let mut failures = Vec::new();
    for (mode, scrape) in [("host", &host), ("envoy", &envoy)] {
        for gap in missing(&exprs, &scrape.series) {
            failures.push(format!("{mode}: missing {gap}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_query_check_finds_what_a_scrape_lacks() {
    let (sel, by) = analyze(
        r#"histogram_quantile(0.9, sum by (le, destination_service) (rate(istio_request_bytes_bucket{reporter="waypoint", destination_service=~"$service"}[5m])))"#,
    )
    .expect("analyze");
    assert_eq!(sel.len(), 1);
    assert_eq!(sel[0].metric, "istio_request_bytes_bucket");
    assert_eq!(sel[0].matchers.len(), 2);
    assert_eq!(
        by,
        BTreeSet::from(["le".to_string(), "destination_service".to_string()])
    );
    let series = waypoint_tests::telemetry::parse_prometheus(
        "istio_request_bytes_bucket{reporter=\"waypoint\",destination_service=\"a\",le=\"1\"} 1\n",
    )
    .expect("parse");
    let exprs = |e: &str| vec![e.to_string()];
    assert!(missing(
        &exprs("sum by (le) (istio_request_bytes_bucket{reporter=\"waypoint\"})"),
        &series
    )
    .is_empty());
    assert_eq!(
        missing(
            &exprs("sum by (destination_version) (istio_request_bytes_bucket)"),
            &series
        )
        .len(),
        1
    );
    assert_eq!(
        missing(
            &exprs("istio_requests_total{reporter=\"waypoint\"}"),
            &series
        )
        .len(),
        1
    );
    assert_eq!(
        missing(
            &exprs("istio_request_bytes_bucket{reporter=\"ztunnel\"}"),
            &series
        )
        .len(),
        1
    );
    assert_eq!(
        missing(&exprs("label_values(istio_request_bytes_bucket{reporter=\"waypoint\"}, destination_workload)"), &series).len(),
        1
    );
}
