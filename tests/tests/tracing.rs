//! Tracing and the Telemetry API end to end on both data paths (the standalone host, and
//! stock Envoy on the generated bootstrap with our module): a fake OTLP collector on loopback
//! receives the waypoint's span for a request carrying a sampled `traceparent` (same trace,
//! parent = the caller's span, status code attribute), nothing for a request left to 0 %
//! sampling, and the access log follows `accessLogging` (on, then disabled at the waypoint);
//! the tracing cases also on Envoy configured over ADS by `waypoint xds`; a refused upgrade
//! has no span and a request ended by the request timeout has one (408), on both paths.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use waypoint_hbone::HboneClient;
use waypoint_proxy::telemetry::trace_context::{hex, parse_traceparent};
use waypoint_tests::echo::{http_echo, EchoServer};
use waypoint_tests::envoy_generated::{write_config, GeneratedWaypoint, Layout};
use waypoint_tests::hbone_client::{collect, http1_over, tunnel, Collected};
use waypoint_tests::manifests::plain_service;
use waypoint_tests::otlp_collector::{Collector, Received};
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::waypoint::{eventually, TestWaypoint, WAYPOINT_GATEWAY};

const LIMIT: Duration = Duration::from_secs(240);
const VIP: &str = "10.96.80.1:80";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
/// Envoy's OpenTelemetry tracer flushes every 5 s (or every 5 spans).
const SPAN_WAIT: Duration = Duration::from_secs(15);

fn mesh_and_telemetry(collector: SocketAddr, quiet: bool) -> String {
    let mut out = format!(
        r#"
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: istio, namespace: istio-system}}
data:
  mesh: |-
    extensionProviders:
    - name: otel
      opentelemetry: {{service: "{ip}", port: {port}}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: istio-system}}
spec:
  tracing:
  - providers: [{{name: otel}}]
    randomSamplingPercentage: 0
  accessLogging:
  - providers: [{{name: envoy}}]
"#,
        ip = collector.ip(),
        port = collector.port()
    );
    if quiet {
        out.push_str(
            r#"
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: waypoint-quiet, namespace: default}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  accessLogging:
  - disabled: true
"#,
        );
    }
    out
}

fn config_text(echo: &EchoServer, collector: SocketAddr, quiet: bool) -> String {
    [
        plain_service(
            "traced",
            "10.96.80.1",
            &echo.addr.ip().to_string(),
            echo.addr.port(),
        ),
        mesh_and_telemetry(collector, quiet),
    ]
    .concat()
}

async fn send(
    client: &HboneClient,
    waypoint: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Collected {
    let s = tunnel(client, waypoint, &[], VIP)
        .await
        .unwrap_or_else(|e| panic!("tunnel to {VIP}: {e}"));
    let mut h1 = http1_over(s).await.expect("http1 over the tunnel");
    let mut req = http::Request::builder().uri(path).header("host", "traced");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(waypoint_tests::echo::empty()).expect("request");
    collect(h1.send_request(req).await.expect("send"))
        .await
        .expect("collect")
}

/// The tracing cases, the same on both data paths.
async fn tracing_cases(
    label: &str,
    waypoint: SocketAddr,
    collector: &Collector,
    pki: &Pki,
    diag: &dyn Fn() -> String,
) {
    let client = HboneClient::new(pki.store("default", "sleep"));
    // No trace context and 0 % sampling: no span (sent first: spans leave in order, so it
    // would be exported no later than the sampled one below).
    let r = send(&client, waypoint, "/unsampled", &[]).await;
    assert_eq!(r.status, 200, "{label}: {}", r.text());

    // A sampled traceparent: continued, whatever the percentage.
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let r = send(
        &client,
        waypoint,
        "/traced",
        &[
            ("traceparent", &incoming),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{label}: {}", r.text());
    let upstream = r
        .header("x-echo-h-traceparent")
        .unwrap_or_else(|| panic!("{label}: no traceparent upstream"));
    let (trace, span, sampled) =
        parse_traceparent(upstream).unwrap_or_else(|| panic!("{label}: bad {upstream}"));
    assert_eq!(hex(&trace), TRACE, "{label}: same trace upstream");
    assert_ne!(
        hex(&span),
        PARENT,
        "{label}: the waypoint's own span id upstream"
    );
    assert!(sampled, "{label}: sampled upstream");
    assert_eq!(
        r.header("x-echo-h-tracestate"),
        Some("congo=t61rcWkgMzE"),
        "{label}: tracestate propagated"
    );

    let got = collector
        .wait_for(SPAN_WAIT, |s| hex(&s.trace_id) == TRACE)
        .await
        .unwrap_or_else(|| {
            panic!(
                "{label}: no span reached the collector: {:?}\n{}",
                collector.spans(),
                diag()
            )
        });
    let s = &got.span;
    assert_eq!(
        hex(&s.parent_span_id),
        PARENT,
        "{label}: parent = the caller's span"
    );
    assert_eq!(
        hex(&s.span_id),
        hex(&span),
        "{label}: the span the upstream saw"
    );
    assert_eq!(
        s.attribute("http.status_code"),
        Some("200"),
        "{label}: {s:?}"
    );
    assert_eq!(s.attribute("http.method"), Some("GET"), "{label}: {s:?}");
    assert!(
        s.attribute("http.url")
            .is_some_and(|u| u.contains("/traced")),
        "{label}: {s:?}"
    );
    assert_eq!(got.service_name, "waypoint.default", "{label}");
    let unsampled: Vec<_> = collector
        .spans()
        .into_iter()
        .filter(|r| {
            r.span
                .attribute("http.url")
                .is_some_and(|u| u.contains("/unsampled"))
        })
        .collect();
    assert!(
        unsampled.is_empty(),
        "{label}: 0 % sampling exported {unsampled:?}"
    );
}

/// Access log lines written by the host in this test binary (target `access`).
fn host_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let w = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("access=info"))
            .with_ansi(false)
            .with_writer(move || LogWriter(w.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn host_log_text() -> String {
    host_log()
        .lock()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_exports_spans_and_follows_access_logging() {
    let _ = host_log();
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = http_echo(SocketAddr::from(([127, 81, 0, 2], 0)), "echo").await;
        let collector = Collector::start(SocketAddr::from(([127, 81, 0, 3], 0))).await;
        let wp = TestWaypoint::start(&pki, &config_text(&echo, collector.addr, false), 15008).await;
        assert!(
            wp.running.config.current().is_some(),
            "config rejected: {:?}",
            wp.running.config.last_errors()
        );
        tracing_cases(
            "host",
            wp.running.hbone_addr,
            &collector,
            &pki,
            &String::new,
        )
        .await;
        // accessLogging names the built-in provider: a line per request.
        assert!(host_log_text().contains("/traced"), "{}", host_log_text());

        // Disabled at the waypoint (targetRefs): no line, on the next config generation.
        std::fs::write(wp.config_file(), config_text(&echo, collector.addr, true))
            .expect("write config");
        let client = HboneClient::new(pki.store("default", "sleep"));
        let quiet = eventually(Duration::from_secs(10), || async {
            wp.running
                .config
                .current()
                .is_some_and(|c| c.policy.snapshot.telemetry.access_log == Some(false))
        })
        .await;
        assert!(
            quiet,
            "the quiet config was not loaded: {:?}",
            wp.running.config.last_errors()
        );
        let r = send(&client, wp.running.hbone_addr, "/quiet", &[]).await;
        assert_eq!(r.status, 200);
        let r = send(&client, wp.running.hbone_addr, "/quiet-again", &[]).await;
        assert_eq!(r.status, 200);
        let log = host_log_text();
        assert!(
            !log.contains("/quiet"),
            "access log written while disabled: {log}"
        );
    })
    .await
    .expect("test timed out");
}

/// Envoy on the generated bootstrap with its backends (dropped after Envoy: field order).
struct EnvoyRun {
    wp: GeneratedWaypoint,
    collector: Collector,
    pki: Pki,
    _echo: EchoServer,
    _dir: TempDir,
}

async fn envoy_run(quiet: bool, base: u8) -> EnvoyRun {
    let pki = Pki::new("cluster.local");
    let echo = http_echo(SocketAddr::from(([127, base, 0, 2], 0)), "echo").await;
    let collector = Collector::start(SocketAddr::from(([127, base, 0, 3], 0))).await;
    let dir = TempDir::new("tracing");
    let (paths, snap) = write_config(
        dir.path(),
        &format!(
            "{WAYPOINT_GATEWAY}{}",
            config_text(&echo, collector.addr, quiet)
        ),
    );
    assert!(snap.telemetry.tracing.is_some());
    let wp = GeneratedWaypoint::start(&pki, &snap, &paths, Layout::Envoy, 1)
        .await
        .unwrap_or_else(|e| panic!("start Envoy on the generated bootstrap: {e}"));
    EnvoyRun {
        wp,
        collector,
        pki,
        _echo: echo,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_exports_spans_and_follows_access_logging() {
    // Build the module first: its first build can take longer than the test's limit.
    let _ = waypoint_tests::envoy_harness::module_dir();
    tokio::time::timeout(LIMIT, async {
        let run = envoy_run(false, 82).await;
        let wp = &run.wp;
        tracing_cases("envoy", wp.hbone_addr, &run.collector, &run.pki, &|| {
            let stats = waypoint_tests::envoy_harness::http_get(
                wp.envoy.admin_port,
                "admin",
                "/stats?filter=tracing|opentelemetry",
                &[],
            )
            .map(|r| r.body)
            .unwrap_or_default();
            format!("{}\n{stats}", wp.log_tail(10))
        })
        .await;
        let logged = eventually(Duration::from_secs(10), || async {
            wp.envoy.log_text().contains("GET /traced")
        })
        .await;
        assert!(logged, "no access log line: {}", wp.log_tail(30));
        drop(run);

        let run = envoy_run(true, 83).await;
        let wp = &run.wp;
        let client = HboneClient::new(run.pki.store("default", "sleep"));
        let r = send(&client, wp.hbone_addr, "/quiet", &[]).await;
        assert_eq!(r.status, 200);
        // Envoy flushes access logs every second.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let log = wp.envoy.log_text();
        assert!(
            !log.contains("GET /quiet"),
            "access log written while disabled: {log}"
        );
    })
    .await
    .expect("test timed out");
}

/// The tracing cases on Envoy configured over ADS by `waypoint xds` (the tracer and the
/// collector cluster reach Envoy through the xDS transform of the generated bootstrap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_over_xds_exports_spans() {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use waypoint_envoy_config::bootstrap::Inputs;
    use waypoint_envoy_config::xds::{server, Cache, Source};
    use waypoint_tests::envoy_harness::{free_port, repo_root, Envoy};

    let _ = waypoint_tests::envoy_harness::module_dir();
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = http_echo(SocketAddr::from(([127, 84, 0, 2], 0)), "echo").await;
        let collector = Collector::start(SocketAddr::from(([127, 84, 0, 3], 0))).await;
        let dir = TempDir::new("tracing-xds");
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).expect("certs dir");
        let issued = pki.issue("default", "waypoint");
        for (from, to) in [
            (&issued.cert, "waypoint.pem"),
            (&issued.key, "waypoint-key.pem"),
            (&issued.roots, "ca.pem"),
        ] {
            std::fs::copy(from, certs.join(to)).expect("copy cert");
        }
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "{WAYPOINT_GATEWAY}{}",
                config_text(&echo, collector.addr, false)
            ),
        )
        .expect("write config");
        let inputs = Inputs {
            config: vec![config.clone()],
            root: PathBuf::from("/"),
            namespace: "default".into(),
            waypoint: None,
            certs: waypoint_hbone::tls::CertPaths::find(&certs).expect("certificate files"),
            module_name: "waypoint".into(),
            trust_domain: "cluster.local".into(),
            originator: None,
            access_log: false,
            timeouts: Default::default(),
        };
        let hbone: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut rebind = BTreeMap::from([("connect_terminate".to_string(), hbone)]);
        for name in ["readiness", "stats"] {
            let a: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            rebind.insert(name.to_string(), a);
        }
        let source = Source {
            inputs: inputs.clone(),
            rebind,
            extra_listeners: Vec::new(),
        };
        let watched = source.watched();
        let xds = server::start(
            Cache::from_source(source),
            "127.0.0.1:0".parse().expect("addr"),
            watched,
            Duration::from_millis(200),
        )
        .await
        .expect("xds server");
        let admin = free_port();
        let yaml = waypoint_envoy_config::xds::render_bootstrap(&inputs, xds.addr, false)
            .expect("bootstrap")
            .replace("port_value: 15000", &format!("port_value: {admin}"));
        let path = dir.path().join("envoy.yaml");
        std::fs::write(&path, yaml).expect("write bootstrap");
        let envoy = Envoy::start(&path, admin, &repo_root()).unwrap_or_else(|e| panic!("{e}"));
        tracing_cases("envoy-xds", hbone, &collector, &pki, &|| envoy.log_text()).await;
        assert!(xds.cache.nacks().is_empty(), "{:?}", xds.cache.nacks());
        drop(envoy);
    })
    .await
    .expect("test timed out");
}

/// Trace ids of the refusal cases.
const TRACE_UPGRADE: &str = "4bf92f3577b34da6a3ce929d0e0e4737";
const TRACE_TIMEOUT: &str = "4bf92f3577b34da6a3ce929d0e0e4738";

/// What came of the two refusals, each with a sampled `traceparent`: a request with an
/// upgrade the connection manager is not configured for (refused, 403 `upgrade_failed`) and a
/// request whose body never completes within the request timeout while its upstream holds
/// the response back (408).
#[derive(Debug)]
struct Refusals {
    upgrade_status: Option<u16>,
    timeout_status: Option<u16>,
    upgrade_span: Option<Received>,
    timeout_span: Option<Received>,
}

async fn refusals(waypoint: SocketAddr, collector: &Collector, pki: &Pki) -> Refusals {
    use tokio::io::AsyncWriteExt;
    use waypoint_tests::security::{read_response, write_request};
    let client = HboneClient::new(pki.store("default", "sleep"));
    let mut t = tunnel(&client, waypoint, &[], VIP).await.expect("tunnel");
    let extra = format!(
        "connection: upgrade\r\nupgrade: foo\r\ntraceparent: 00-{TRACE_UPGRADE}-{PARENT}-01\r\n"
    );
    write_request(&mut t, "GET", "/refused", "traced", &extra)
        .await
        .expect("write");
    let upgrade_status = read_response(&mut t, Duration::from_secs(5))
        .await
        .map(|r| r.status);

    let mut t = tunnel(&client, waypoint, &[], VIP).await.expect("tunnel");
    let extra = format!("content-length: 100\r\ntraceparent: 00-{TRACE_TIMEOUT}-{PARENT}-01\r\n");
    write_request(&mut t, "POST", "/delay/20000", "traced", &extra)
        .await
        .expect("write");
    t.write_all(b"x").await.expect("body");
    t.flush().await.expect("flush");
    let timeout_status = read_response(&mut t, Duration::from_secs(8))
        .await
        .map(|r| r.status);
    let timeout_span = collector
        .wait_for(SPAN_WAIT, |s| hex(&s.trace_id) == TRACE_TIMEOUT)
        .await;
    // Spans leave in order: the upgrade's, if any, was exported before the timeout's.
    let upgrade_span = collector
        .spans()
        .into_iter()
        .find(|s| hex(&s.span.trace_id) == TRACE_UPGRADE);
    Refusals {
        upgrade_status,
        timeout_status,
        upgrade_span,
        timeout_span,
    }
}

/// Envoy's connection manager refuses an upgrade before it starts tracing the request, so a
/// refused upgrade has no span; a request timeout ends a traced request: its span has status
/// 408 and Envoy's tags. Both data paths export the same.
fn check_refusals(label: &str, got: Refusals, diag: &dyn Fn() -> String) {
    assert_eq!(
        got.upgrade_status,
        Some(403),
        "{label}: {got:?}\n{}",
        diag()
    );
    assert_eq!(
        got.timeout_status,
        Some(408),
        "{label}: {got:?}\n{}",
        diag()
    );
    assert!(
        got.upgrade_span.is_none(),
        "{label}: span for a refused upgrade: {got:?}"
    );
    let t = got
        .timeout_span
        .unwrap_or_else(|| panic!("{label}: no span for the request timeout\n{}", diag()));
    let s = &t.span;
    assert_eq!(hex(&s.parent_span_id), PARENT, "{label}: {s:?}");
    assert_eq!(
        s.attribute("http.status_code"),
        Some("408"),
        "{label}: {s:?}"
    );
    assert_eq!(s.attribute("http.method"), Some("POST"), "{label}: {s:?}");
    assert!(
        s.attribute("http.url")
            .is_some_and(|u| u.contains("/delay/20000")),
        "{label}: {s:?}"
    );
    assert_eq!(s.attribute("error"), None, "{label}: {s:?}");
    // Envoy sets no response flag for its request timeout; the router had picked the cluster.
    assert_eq!(s.attribute("response_flags"), Some("-"), "{label}: {s:?}");
    assert_eq!(
        s.attribute("upstream_cluster"),
        Some("outbound|80||traced.default.svc.cluster.local"),
        "{label}: {s:?}"
    );
}

fn refusal_timeouts() -> waypoint_hbone::timeouts::Timeouts {
    waypoint_hbone::timeouts::Timeouts {
        request: Duration::from_secs(2),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_spans_for_refused_upgrades_and_request_timeouts() {
    let _ = waypoint_tests::envoy_harness::module_dir();
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = http_echo(SocketAddr::from(([127, 85, 0, 2], 0)), "echo").await;
        let collector = Collector::start(SocketAddr::from(([127, 85, 0, 3], 0))).await;
        let dir = TempDir::new("tracing-refusals");
        let (paths, snap) = write_config(
            dir.path(),
            &format!(
                "{WAYPOINT_GATEWAY}{}",
                config_text(&echo, collector.addr, false)
            ),
        );
        let wp = GeneratedWaypoint::start_with(
            &pki,
            &snap,
            &paths,
            Layout::Envoy,
            1,
            refusal_timeouts(),
        )
        .await
        .unwrap_or_else(|e| panic!("start Envoy: {e}"));
        let got = refusals(wp.hbone_addr, &collector, &pki).await;
        check_refusals("envoy", got, &|| wp.log_tail(40));
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_spans_for_refused_upgrades_and_request_timeouts() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let echo = http_echo(SocketAddr::from(([127, 86, 0, 2], 0)), "echo").await;
        let collector = Collector::start(SocketAddr::from(([127, 86, 0, 3], 0))).await;
        let wp = TestWaypoint::start_with(&pki, &config_text(&echo, collector.addr, false), |o| {
            o.timeouts = refusal_timeouts()
        })
        .await;
        assert!(wp.running.config.current().is_some());
        let got = refusals(wp.running.hbone_addr, &collector, &pki).await;
        check_refusals("host", got, &String::new);
    })
    .await
    .expect("test timed out");
}
