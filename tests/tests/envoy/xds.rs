//! `waypoint xds` against real Envoy 1.40 started from `waypoint bootstrap --xds`: the initial
//! config over SotW and delta ADS, routing changes pushed within 2 s with no failed request,
//! NACKs keep the old config, and a one-route change resends only that RouteConfiguration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use waypoint_envoy_config::bootstrap::Inputs;
use waypoint_envoy_config::xds::proto::{CLUSTER, ENDPOINT, EXTENSION, LISTENER, ROUTE, SECRET};
use waypoint_envoy_config::xds::{server, Cache, Snapshot, Source};
use waypoint_hbone::HboneClient;
use waypoint_tests::envoy_harness::{
    free_port, http_get, repo_root, scratch_dir, validate, Envoy, Upstream,
};
use waypoint_tests::hbone_client::http1_get;
use waypoint_tests::manifests::plain_service;
use waypoint_tests::pki::Pki;

const WAYPOINT: &str = "default/waypoint";
const ALPHA: &str = "10.96.5.1:80";

/// The waypoint, services `alpha` and `beta` (one local upstream each), and an HTTPRoute on
/// `alpha` sending its traffic to `backend`.
fn manifests(alpha_port: u16, beta_port: u16, backend: &str) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: waypoint, namespace: default}}
spec: {{gatewayClassName: istio-waypoint, listeners: [{{name: mesh, port: 15008, protocol: HBONE}}]}}
{alpha}{beta}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: alpha, namespace: default}}
spec:
  parentRefs: [{{group: "", kind: Service, name: alpha, port: 80}}]
  rules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]
"#,
        alpha = plain_service("alpha", "10.96.5.1", "127.0.0.1", alpha_port),
        beta = plain_service("beta", "10.96.5.2", "127.0.0.1", beta_port),
    )
}

/// Write a file atomically (a reader never sees half of it).
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

struct Setup {
    rt: tokio::runtime::Runtime,
    server: server::Running,
    envoy: Envoy,
    client: Arc<HboneClient>,
    hbone: SocketAddr,
    /// Test-only plaintext entry into `main_internal` (see `plain_listener`).
    plain: u16,
    readiness: u16,
    config: PathBuf,
    certs: PathBuf,
    pki: Pki,
    source: Source,
    ports: (u16, u16),
    _upstreams: Vec<Upstream>,
}

impl Setup {
    fn start(delta: bool) -> Setup {
        let dir = scratch_dir(if delta { "xds-delta" } else { "xds-sotw" });
        let pki = Pki::new("cluster.local");
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).expect("certs dir");
        write_waypoint_certs(&pki, &certs);
        let alpha = Upstream::start("up-alpha").expect("upstream");
        let beta = Upstream::start("up-beta").expect("upstream");
        let config = dir.join("config.yaml");
        write(&config, &manifests(alpha.port, beta.port, "alpha"));
        let (hbone, readiness, stats) = (free_port(), free_port(), free_port());
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
        let hbone_addr: SocketAddr = format!("127.0.0.1:{hbone}").parse().expect("addr");
        let rebind = BTreeMap::from([
            ("connect_terminate".to_string(), hbone_addr),
            (
                "readiness".to_string(),
                format!("127.0.0.1:{readiness}").parse().expect("addr"),
            ),
            (
                "stats".to_string(),
                format!("127.0.0.1:{stats}").parse().expect("addr"),
            ),
        ]);
        let plain = free_port();
        let source = Source {
            inputs: inputs.clone(),
            rebind,
            extra_listeners: vec![plain_listener(plain)],
        };
        let watched = source.watched();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let cache = Cache::from_source(source.clone());
        let server = rt
            .block_on(server::start(
                cache,
                "127.0.0.1:0".parse().expect("addr"),
                watched,
                Duration::from_millis(100),
            ))
            .expect("xds server");
        // The bootstrap exactly as `waypoint bootstrap --xds` writes it, on a free admin port.
        let admin = free_port();
        let yaml = waypoint_envoy_config::xds::render_bootstrap(&inputs, server.addr, delta)
            .expect("bootstrap")
            .replace("port_value: 15000", &format!("port_value: {admin}"));
        let path = dir.join("envoy.yaml");
        std::fs::write(&path, yaml).expect("write bootstrap");
        let envoy = Envoy::start(&path, admin, &repo_root()).unwrap_or_else(|e| panic!("{e}"));
        let client = HboneClient::new(pki.store("default", "sleep"));
        Setup {
            rt,
            server,
            envoy,
            client,
            hbone: hbone_addr,
            plain,
            readiness,
            config,
            certs,
            pki,
            source,
            ports: (alpha.port, beta.port),
            _upstreams: vec![alpha, beta],
        }
    }

    /// One request to `alpha` over HBONE: the upstream that answered, or the error.
    fn request(&self) -> Result<String, String> {
        self.rt.block_on(request(&self.client, self.hbone))
    }

    fn route_to(&self, backend: &str) {
        write(
            &self.config,
            &manifests(self.ports.0, self.ports.1, backend),
        );
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.server
            .cache
            .current(WAYPOINT)
            .expect("snapshot of the node")
    }

    /// Wait until `f` holds (polling), up to `limit`.
    fn wait_for(&self, limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.envoy.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pushes_after(&self, n: usize) -> Vec<waypoint_envoy_config::xds::Push> {
        self.server.cache.pushes().into_iter().skip(n).collect()
    }
}

/// A test-only plaintext listener playing the HBONE-terminating hop: it sets the peer
/// principal and original destination (alpha's VIP) in filter state, as `connect_terminate`
/// does from the mTLS peer and the CONNECT authority, and forwards to `main_internal`. The
/// reroute test uses it: requests over terminated HBONE occasionally get reset under load
/// (envoy-hbone-notes.md, "Cause 1"), with or without any config change, which would hide
/// what the test is about.
fn plain_listener(port: u16) -> serde_json::Value {
    let state = |key: &str, value: &str| {
        serde_json::json!({"object_key": key, "factory_key": "envoy.string",
            "format_string": {"text_format_source": {"inline_string": value}},
            "shared_with_upstream": "ONCE"})
    };
    serde_json::json!({
        "name": "test_plain",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "test_plain",
            "route_config": {"name": "test_plain", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "route": {"cluster": "main_internal", "timeout": "0s"}}]}]},
            "http_filters": [
                {"name": "envoy.filters.http.set_filter_state", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config",
                    "on_request_headers": [
                        state("io.istio.peer_principal", "spiffe://cluster.local/ns/default/sa/sleep"),
                        state("waypoint.original_dst", ALPHA)]}},
                {"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}],
    })
}

/// One plaintext request to `alpha` through `test_plain`: the upstream that answered.
fn plain_request(port: u16) -> Result<String, String> {
    let r = http_get(port, "alpha.default.svc.cluster.local", "/", &[])?;
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.body));
    }
    r.header("x-upstream")
        .map(str::to_string)
        .ok_or_else(|| "no x-upstream header".to_string())
}

/// One request to `alpha` over a new HBONE tunnel: the upstream that answered, or the error.
async fn request(client: &HboneClient, hbone: SocketAddr) -> Result<String, String> {
    let r = tokio::time::timeout(Duration::from_secs(5), http1_get(client, hbone, ALPHA, "/"))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| format!("{e:#}"))?;
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.text()));
    }
    r.header("x-upstream")
        .map(str::to_string)
        .ok_or_else(|| "no x-upstream header".to_string())
}

/// The waypoint's certificate, key and root in the layout the bootstrap names.
fn write_waypoint_certs(pki: &Pki, certs: &Path) {
    let issued = pki.issue("default", "waypoint");
    for (from, to) in [
        (&issued.cert, "waypoint.pem"),
        (&issued.key, "waypoint-key.pem"),
        (&issued.roots, "ca.pem"),
    ] {
        let text = std::fs::read_to_string(from).expect("read cert");
        write(&certs.join(to), &text);
    }
}

#[test]
fn initial_config_is_served_over_sotw_and_delta() {
    for delta in [false, true] {
        let s = Setup::start(delta);
        assert_eq!(s.request(), Ok("up-alpha".to_string()), "delta={delta}");
        let pushes = s.server.cache.pushes();
        for t in [LISTENER, ROUTE, CLUSTER, ENDPOINT, SECRET, EXTENSION] {
            assert!(
                pushes
                    .iter()
                    .any(|p| p.type_url == t && p.delta == delta && !p.names.is_empty()),
                "delta={delta}: no {t} pushed: {pushes:?}"
            );
        }
        // The SDS secrets are Istio's names, read from the cert files.
        let snap = s.snapshot();
        let secrets: Vec<&str> = snap.of(SECRET).map(|r| r.name.as_str()).collect();
        assert_eq!(secrets, ["ROOTCA", "default"]);
        let r = http_get(s.readiness, "127.0.0.1", "/healthz/ready", &[]).expect("readiness");
        assert_eq!(r.status, 200);
        assert!(
            s.server.cache.nacks().is_empty(),
            "{:?}",
            s.server.cache.nacks()
        );
    }
}

/// A routing change through ADS applies within 2 s while four request loops run (requests are
/// in flight at the moment of the switch), and not one request fails; every request started
/// after the switch point goes to `beta`. The loops enter through `test_plain` (see there);
/// the other tests use the real HBONE path.
fn reroute_without_failures(delta: bool) {
    let s = Setup::start(delta);
    assert_eq!(s.request(), Ok("up-alpha".to_string()));
    assert_eq!(plain_request(s.plain), Ok("up-alpha".to_string()));
    let mark = s.server.cache.pushes().len();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (port, stop) = (s.plain, Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut out = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = t0.elapsed();
                    out.push((started, plain_request(port)));
                }
                out
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let changed = t0.elapsed();
    s.route_to("beta");
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut results: Vec<(Duration, Result<String, String>)> = Vec::new();
    for w in workers {
        results.extend(w.join().expect("worker"));
    }
    results.sort_by_key(|r| r.0);
    let failures: Vec<_> = results.iter().filter(|r| r.1.is_err()).collect();
    assert!(
        failures.is_empty(),
        "delta={delta}: {} of {} failed: {failures:?}",
        failures.len(),
        results.len()
    );
    // Requests that started before the change went to alpha; from some point on, all to beta.
    assert!(results
        .iter()
        .filter(|r| r.0 < changed)
        .all(|r| r.1.as_deref() == Ok("up-alpha")));
    let last_alpha = results
        .iter()
        .filter(|r| r.1.as_deref() == Ok("up-alpha"))
        .map(|r| r.0)
        .max()
        .unwrap_or_default();
    let switched = last_alpha.saturating_sub(changed);
    assert!(
        results.iter().any(|r| r.1.as_deref() == Ok("up-beta")),
        "delta={delta}: never routed to beta"
    );
    assert!(
        switched < Duration::from_secs(2),
        "delta={delta}: took {switched:?}"
    );
    println!(
        "delta={delta}: {} requests (4 loops), none failed; last request to the old backend started {switched:?} after the file change",
        results.len()
    );
    // Only the module's filter config (ECDS) changed: no listener, route or cluster resent.
    let pushes = s.pushes_after(mark);
    assert!(!pushes.is_empty());
    for p in &pushes {
        assert_eq!(p.type_url, EXTENSION, "{pushes:?}");
        assert_eq!(p.names, ["waypoint"], "{pushes:?}");
    }
}

#[test]
fn config_change_reroutes_within_2s_without_failures_sotw() {
    reroute_without_failures(false);
}

#[test]
fn config_change_reroutes_within_2s_without_failures_delta() {
    reroute_without_failures(true);
}

#[test]
fn nack_keeps_traffic_on_the_old_config() {
    for delta in [false, true] {
        let s = Setup::start(delta);
        assert_eq!(s.request(), Ok("up-alpha".to_string()));
        // 1. A config file our validation rejects never replaces the good snapshot.
        let before = s.snapshot();
        let mark = s.server.cache.pushes().len();
        write(&s.config, "kind: [this is not a manifest");
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(*s.snapshot(), *before);
        assert!(s.pushes_after(mark).is_empty());
        assert_eq!(s.request(), Ok("up-alpha".to_string()));
        s.route_to("alpha");
        // Let the watcher see the repaired file (same config: no push) before injecting.
        std::thread::sleep(Duration::from_millis(800));

        // 2. A snapshot Envoy rejects (RE2 refuses the regex `(`; protobuf encoding and our
        // checks accept it): NACKed with Envoy's message, traffic stays on the old config,
        // and the rejected version is not pushed again.
        let bad = Snapshot::encode(&bad_routes(&s)).expect("encodes");
        let mark = s.server.cache.pushes().len();
        s.server.cache.set(WAYPOINT, bad);
        s.wait_for(Duration::from_secs(5), "a NACK", || {
            !s.server.cache.nacks().is_empty()
        });
        let nack = s.server.cache.nacks()[0].clone();
        assert_eq!(nack.type_url, ROUTE, "{nack:?}");
        // RE2's own words: Envoy's error_detail is surfaced as is.
        assert!(nack.message.contains("missing )"), "{nack:?}");
        for _ in 0..10 {
            assert_eq!(s.request(), Ok("up-alpha".to_string()), "delta={delta}");
        }
        std::thread::sleep(Duration::from_millis(500));
        let route_pushes = s
            .pushes_after(mark)
            .iter()
            .filter(|p| p.type_url == ROUTE)
            .count();
        assert_eq!(
            route_pushes, 1,
            "delta={delta}: the rejected version was pushed again"
        );

        // 3. The next good change goes through.
        s.route_to("beta");
        s.wait_for(Duration::from_secs(3), "routing to beta", || {
            s.request().as_deref() == Ok("up-beta")
        });
    }
}

/// The current resources with an extra route whose regex Envoy (RE2) rejects.
fn bad_routes(s: &Setup) -> waypoint_envoy_config::xds::resources::JsonResources {
    let mut json = s.source.json(Some(WAYPOINT)).expect("json");
    let rc = json
        .get_mut(ROUTE)
        .and_then(|m| m.get_mut("waypoint"))
        .expect("waypoint route config");
    let routes = rc["virtual_hosts"][0]["routes"]
        .as_array_mut()
        .expect("routes");
    routes.insert(
        0,
        serde_json::json!({"match": {"safe_regex": {"regex": "("}}, "direct_response": {"status": 418}}),
    );
    json
}

/// Delta: a change to one RouteConfiguration resends that one only (and Envoy applies it);
/// a certificate rotation resends only the `default` secret.
#[test]
fn one_route_change_resends_only_that_route_configuration() {
    let s = Setup::start(true);
    assert_eq!(s.request(), Ok("up-alpha".to_string()));
    let mut json = s.source.json(Some(WAYPOINT)).expect("json");
    let rc = json
        .get_mut(ROUTE)
        .and_then(|m| m.get_mut("readiness"))
        .expect("readiness route config");
    rc["virtual_hosts"][0]["routes"]
        .as_array_mut()
        .expect("routes")
        .insert(
            0,
            serde_json::json!({"match": {"path": "/healthz/extra"},
            "direct_response": {"status": 200, "body": {"inline_string": "extra\n"}}}),
        );
    let before = s.snapshot();
    let next = Snapshot::encode(&json).expect("encode");
    let mark = s.server.cache.pushes().len();
    s.server.cache.set(WAYPOINT, next.clone());
    s.wait_for(Duration::from_secs(5), "the new route", || {
        http_get(s.readiness, "127.0.0.1", "/healthz/extra", &[]).is_ok_and(|r| r.status == 200)
    });
    let pushes = s.pushes_after(mark);
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].type_url, ROUTE);
    assert_eq!(pushes[0].names, ["readiness"]);
    assert!(pushes[0].removed.is_empty());
    let size = next.get(ROUTE, "readiness").map(|r| r.body.len());
    assert_eq!(Some(pushes[0].bytes), size);
    println!(
        "one-route change: {} bytes pushed (full snapshot {} bytes)",
        pushes[0].bytes,
        before.bytes()
    );
    assert_eq!(s.request(), Ok("up-alpha".to_string()));

    // Certificate rotation: the files change, only the `default` secret is resent.
    let mark = s.server.cache.pushes().len();
    let issued = s.pki.issue("default", "waypoint");
    write(
        &s.certs.join("waypoint.pem"),
        &std::fs::read_to_string(&issued.cert).expect("cert"),
    );
    write(
        &s.certs.join("waypoint-key.pem"),
        &std::fs::read_to_string(&issued.key).expect("key"),
    );
    s.wait_for(Duration::from_secs(5), "the secret push", || {
        s.pushes_after(mark).iter().any(|p| p.type_url == SECRET)
    });
    std::thread::sleep(Duration::from_millis(500));
    let pushes = s.pushes_after(mark);
    assert!(
        pushes
            .iter()
            .all(|p| p.type_url == SECRET || p.type_url == ROUTE),
        "{pushes:?}"
    );
    let secret: Vec<&str> = pushes
        .iter()
        .filter(|p| p.type_url == SECRET)
        .flat_map(|p| p.names.iter().map(String::as_str))
        .collect();
    assert_eq!(secret, ["default"]);
    s.wait_for(
        Duration::from_secs(5),
        "a request on the new certificate",
        || s.request().as_deref() == Ok("up-alpha"),
    );
}

/// `waypoint bootstrap --xds` output passes `envoy --mode validate`, SotW and delta.
#[test]
fn xds_bootstrap_validates() {
    let dir = scratch_dir("xds-validate");
    for delta in [false, true] {
        let inputs = Inputs {
            config: vec![PathBuf::from("examples/bookinfo")],
            root: repo_root(),
            namespace: "default".into(),
            waypoint: None,
            certs: waypoint_hbone::tls::CertPaths::from_dir(Path::new("/etc/waypoint/certs")),
            module_name: "waypoint".into(),
            trust_domain: "cluster.local".into(),
            originator: None,
            access_log: false,
            timeouts: Default::default(),
        };
        let yaml = waypoint_envoy_config::xds::render_bootstrap(
            &inputs,
            "127.0.0.1:15010".parse().expect("addr"),
            delta,
        )
        .expect("bootstrap");
        assert!(yaml.contains(if delta {
            "DELTA_GRPC"
        } else {
            "api_type: GRPC"
        }));
        let path = dir.join(format!("xds-{delta}.yaml"));
        std::fs::write(&path, &yaml).expect("write");
        let out = validate(&path, &repo_root());
        assert!(
            out.status.success(),
            "delta={delta}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
