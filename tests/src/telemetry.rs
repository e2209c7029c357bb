//! Telemetry in both modes: a real host and a real Envoy + module, each sent the same kinds of
//! requests (allowed, denied) and scraped at `/stats/prometheus`; a Prometheus text parser.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use waypoint_hbone::HboneClient;

use crate::echo::http_echo;
use crate::envoy_harness::{http_get, Bookinfo, FS_PRINCIPAL};
use crate::hbone_client::http1_get;
use crate::pki::Pki;
use crate::waypoint::{admin_get, TestWaypoint};

/// One series of a scrape: metric name and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parse Prometheus text exposition (comments skipped; escaped label values unescaped).
pub fn parse_prometheus(text: &str) -> Result<Vec<Series>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => return Err(format!("no value: {line}")),
        };
        let (labels, rest) = match rest.strip_prefix('{') {
            Some(body) => parse_labels(body).map_err(|e| format!("{e}: {line}"))?,
            None => (BTreeMap::new(), rest),
        };
        let value = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| format!("no value: {line}"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse::<f64>()
                .map_err(|e| format!("bad value {v:?} ({e}): {line}"))?,
        };
        out.push(Series {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(out)
}

/// The labels of `body` (the text after `{`) and the text after the closing `}`.
fn parse_labels(body: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut i = 0;
    loop {
        let rest = &body[i..];
        let skipped = rest.len() - rest.trim_start_matches([',', ' ']).len();
        i += skipped;
        let rest = &body[i..];
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let key = rest[..eq].trim().to_string();
        let value_start = &rest[eq + 1..];
        let quoted = value_start
            .strip_prefix('"')
            .ok_or_else(|| format!("label {key} without a quoted value"))?;
        let mut value = String::new();
        let mut escaped = false;
        let mut close = None;
        for (j, c) in quoted.char_indices() {
            match (escaped, c) {
                (true, 'n') => value.push('\n'),
                (true, c) => value.push(c),
                (false, '\\') => {}
                (false, '"') => {
                    close = Some(j);
                    break;
                }
                (false, c) => value.push(c),
            }
            escaped = !escaped && c == '\\';
        }
        let close = close.ok_or_else(|| format!("label {key}: unterminated value"))?;
        labels.insert(key, value);
        // Past `key="value"`: eq + 1 (the `=`) + 1 (opening quote) + close + 1 (closing quote).
        i += eq + 2 + close + 1;
    }
}

/// The first series named `name` whose labels include every `(k, v)` of `want`.
pub fn find<'a>(series: &'a [Series], name: &str, want: &[(&str, &str)]) -> Option<&'a Series> {
    series.iter().find(|s| {
        s.name == name
            && want
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// The host's mesh for [`host_scrape`]: echo's pod is a Deployment's (`echo-v2`), sleep's pod
/// runs as `default/sleep`; `/admin` is denied.
pub fn host_manifests(echo_port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: default
  labels: {{istio.io/use-waypoint: waypoint}}
spec:
  clusterIP: 10.96.1.1
  selector: {{app: echo}}
  ports: [{{name: http, port: 80, targetPort: {echo_port}}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: echo-v2-7c9d8-k2lzq
  generateName: echo-v2-7c9d8-
  namespace: default
  labels: {{app: echo, version: v2, pod-template-hash: 7c9d8, istio.io/dataplane-mode: none}}
  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: echo-v2-7c9d8, uid: u1, controller: true}}]
spec: {{serviceAccountName: echo, containers: [{{name: app, image: echo}}]}}
status: {{podIP: 127.0.0.1}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny-admin, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: echo}}]
  action: DENY
  rules: [{{to: [{{operation: {{paths: ["/admin"]}}}}]}}]
"#
    )
}

/// What one mode's scrape showed after the traffic.
#[derive(Debug)]
pub struct Scrape {
    pub text: String,
    pub series: Vec<Series>,
}

/// Start a host with [`host_manifests`], send `ok` allowed requests (echo answers 200) and
/// one denied one (`/admin`, 403) as `default/sleep`, and scrape its stats port. Returns the
/// scrape and the echo's response to the first request (what the upstream received).
pub async fn host_scrape(ok: usize) -> (Scrape, crate::hbone_client::Collected) {
    let pki = Pki::new("cluster.local");
    let echo = http_echo("127.0.0.1:0".parse().expect("addr"), "echo-v2").await;
    let wp = TestWaypoint::start(&pki, &host_manifests(echo.addr.port()), 15008).await;
    let client = HboneClient::new(pki.store("default", "sleep"));
    let mut first = None;
    for i in 0..ok {
        let r = http1_get(
            &client,
            wp.running.hbone_addr,
            "10.96.1.1:80",
            &format!("/ok/{i}"),
        )
        .await
        .expect("request");
        assert_eq!(r.status, 200, "{}", r.text());
        first.get_or_insert(r);
    }
    let denied = http1_get(&client, wp.running.hbone_addr, "10.96.1.1:80", "/admin")
        .await
        .expect("request");
    assert_eq!(denied.status, 403, "{}", denied.text());
    let stats = wp.running.stats_addr.expect("stats addr");
    // The response-size histogram is observed once the body has streamed: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, text) = admin_get(stats, "/stats/prometheus").await.expect("stats");
        assert_eq!(code, 200);
        let series = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let sizes: f64 = series
            .iter()
            .filter(|s| s.name == "istio_response_bytes_count")
            .map(|s| s.value)
            .sum();
        if sizes >= (ok + 1) as f64 || Instant::now() > deadline {
            return (Scrape { text, series }, first.expect("one request"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Envoy mode's mesh: productpage's pod is a Deployment's (`productpage-v1`) at
/// 127.0.0.1 where the test upstream listens, sleep's pod runs as `bookinfo/sleep` (the
/// principal the harness's `fs` listener hands the module); `/admin` is denied.
pub const ENVOY_MANIFESTS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: bookinfo, labels: {istio.io/waypoint-for: service}}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: v1
kind: Service
metadata: {name: productpage, namespace: bookinfo, labels: {istio.io/use-waypoint: waypoint}}
spec:
  clusterIP: 10.96.0.10
  selector: {app: productpage}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: productpage-v1-6b746f74dc-9stvs
  generateName: productpage-v1-6b746f74dc-
  namespace: bookinfo
  labels: {app: productpage, version: v1, pod-template-hash: 6b746f74dc}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: productpage-v1-6b746f74dc, uid: u1, controller: true}]
spec: {serviceAccountName: bookinfo-productpage, containers: [{name: app, image: productpage}]}
status: {podIP: 127.0.0.1}
---
apiVersion: v1
kind: Pod
metadata:
  name: sleep-v1-5f5b6c-wq8x2
  generateName: sleep-v1-5f5b6c-
  namespace: bookinfo
  labels: {app: sleep, version: v1, pod-template-hash: 5f5b6c}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: sleep-v1-5f5b6c, uid: u2, controller: true}]
spec: {serviceAccountName: sleep, containers: [{name: app, image: sleep}]}
status: {podIP: 127.0.0.2}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: bookinfo}
spec:
  targetRefs: [{kind: Service, group: "", name: productpage}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin"]}}]}]
"#;

/// Start Envoy with the module on [`ENVOY_MANIFESTS`], send `ok` allowed requests and one
/// denied one through the listener that hands the module [`FS_PRINCIPAL`] and productpage's
/// VIP, and scrape `/stats/prometheus` once Envoy's histograms have them.
pub fn envoy_scrape(ok: usize) -> (Bookinfo, Scrape) {
    let config =
        serde_json::json!({"waypoint": "bookinfo/waypoint", "config_inline": ENVOY_MANIFESTS});
    let ups = vec![(
        "productpage-v1".to_string(),
        "outbound|9080||productpage.bookinfo.svc.cluster.local".to_string(),
    )];
    let b = Bookinfo::start_with(&config, &ups).unwrap_or_else(|e| panic!("start: {e}"));
    assert!(FS_PRINCIPAL.ends_with("/ns/bookinfo/sa/sleep"));
    for i in 0..ok {
        let r = http_get(b.fs_port, "productpage:9080", &format!("/ok/{i}"), &[])
            .unwrap_or_else(|e| panic!("GET: {e}"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let denied =
        http_get(b.fs_port, "productpage:9080", "/admin", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(denied.status, 403, "{}", denied.body);
    // The module flushes its batched Istio metrics into Envoy's counters 5 s after the first
    // request of a batch (`istio_batch::FLUSH_DELAY`): poll, bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = http_get(b.envoy.admin_port, "127.0.0.1", "/stats/prometheus", &[])
            .unwrap_or_else(|e| panic!("scrape: {e}"))
            .body;
        let series = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let counted: f64 = series
            .iter()
            .filter(|s| s.name == "istio_request_duration_milliseconds_count")
            .map(|s| s.value)
            .sum();
        if counted >= (ok + 1) as f64 || Instant::now() > deadline {
            return (b, Scrape { text, series });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_labels_escapes_and_values() {
        let text = "# HELP x\nistio_requests_total{a=\"1\",b=\"q\\\"x,y}\"} 3\nup 1\nh_bucket{le=\"+Inf\",} 2.5\n";
        let s = parse_prometheus(text).expect("parse");
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "istio_requests_total");
        assert_eq!(s[0].labels.get("b").map(String::as_str), Some("q\"x,y}"));
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[1].name, "up");
        assert!(s[1].labels.is_empty());
        assert_eq!(s[2].labels.get("le").map(String::as_str), Some("+Inf"));
        assert_eq!(s[2].value, 2.5);
        assert!(find(&s, "istio_requests_total", &[("a", "1")]).is_some());
        assert!(find(&s, "istio_requests_total", &[("a", "2")]).is_none());
        assert!(parse_prometheus("x{a=1} 2").is_err());
    }
}
