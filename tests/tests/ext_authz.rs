//! CUSTOM AuthorizationPolicy (ext_authz) end to end, the same cases on both data paths: the
//! standalone host and stock Envoy 1.40 on the generated bootstrap with our module, each
//! calling test HTTP and gRPC ext_authz servers on loopback (see `ext_authz_server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use waypoint_core::{BuildOptions, Snapshot};
use waypoint_hbone::HboneClient;
use waypoint_tests::echo::{closed_port, http_echo, EchoServer};
use waypoint_tests::envoy_generated::{GeneratedWaypoint, Layout};
use waypoint_tests::ext_authz_server::{
    grpc_authz, http_authz, AuthzServer, DECIDING_HEADER, DENY_BODY, RESULT_HEADER,
};
use waypoint_tests::hbone_client::{collect, http1_over, tunnel, Collected};
use waypoint_tests::manifests::plain_service;
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::waypoint::{eventually, TestWaypoint, WAYPOINT_GATEWAY};

const LIMIT: Duration = Duration::from_secs(240);

/// Services guarded by one CUSTOM provider each (Istio allows one provider per workload).
const VIA_HTTP: &str = "10.96.70.1:80";
const VIA_GRPC: &str = "10.96.70.2:80";
const VIA_CLOSED: &str = "10.96.70.3:80";
const VIA_OPEN: &str = "10.96.70.4:80";

struct Backends {
    echo: EchoServer,
    http: AuthzServer,
    grpc: AuthzServer,
    down: SocketAddr,
}

async fn backends(base: u8) -> Backends {
    Backends {
        echo: http_echo(SocketAddr::from(([127, base, 0, 2], 0)), "echo").await,
        http: http_authz(SocketAddr::from(([127, base, 0, 3], 0))).await,
        grpc: grpc_authz(SocketAddr::from(([127, base, 0, 4], 0))).await,
        down: closed_port().await,
    }
}

fn mesh_configmap() -> String {
    r#"
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    accessLogFile: /dev/stdout
    extensionProviders:
    - name: http
      envoyExtAuthzHttp:
        service: authz-http.default.svc.cluster.local
        port: "80"
        timeout: 3s
        pathPrefix: /authz
        includeRequestHeadersInCheck: [x-ext-authz]
        headersToUpstreamOnAllow: [x-ext-authz-check-result]
        headersToDownstreamOnDeny: [x-ext-authz-check-result, content-type]
    - name: grpc
      envoyExtAuthzGrpc: {service: default/authz-grpc.default.svc.cluster.local, port: 80, timeout: 3s}
    - name: closed
      envoyExtAuthzHttp: {service: authz-down.default.svc.cluster.local, port: 80, timeout: 3s}
    - name: open
      envoyExtAuthzHttp: {service: authz-down.default.svc.cluster.local, port: 80, timeout: 3s, failOpen: true}
"#
    .to_string()
}

fn policies() -> String {
    let mut out = String::new();
    for (svc, provider) in [
        ("via-http", "http"),
        ("via-grpc", "grpc"),
        ("via-closed", "closed"),
        ("via-open", "open"),
    ] {
        out.push_str(&format!(
            r#"
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {svc}-custom, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: {svc}}}]
  action: CUSTOM
  provider: {{name: {provider}}}
  rules: [{{to: [{{operation: {{paths: ["/check*"]}}}}]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {svc}-deny, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: {svc}}}]
  action: DENY
  rules: [{{to: [{{operation: {{paths: ["/check/deny"]}}}}]}}]
"#
        ));
    }
    out
}

/// Everything but the waypoint Gateway.
fn config_text(b: &Backends, base: u8) -> String {
    let echo_ip = format!("127.{base}.0.2");
    let port = b.echo.addr.port();
    [
        plain_service("via-http", "10.96.70.1", &echo_ip, port),
        plain_service("via-grpc", "10.96.70.2", &echo_ip, port),
        plain_service("via-closed", "10.96.70.3", &echo_ip, port),
        plain_service("via-open", "10.96.70.4", &echo_ip, port),
        plain_service(
            "authz-http",
            "10.96.70.10",
            &b.http.addr.ip().to_string(),
            b.http.addr.port(),
        ),
        plain_service(
            "authz-grpc",
            "10.96.70.11",
            &b.grpc.addr.ip().to_string(),
            b.grpc.addr.port(),
        ),
        plain_service(
            "authz-down",
            "10.96.70.12",
            &b.down.ip().to_string(),
            b.down.port(),
        ),
        mesh_configmap(),
        policies(),
    ]
    .concat()
}

async fn send(
    client: &HboneClient,
    waypoint: SocketAddr,
    vip: &str,
    path: &str,
    allow: bool,
) -> Collected {
    let s = tunnel(client, waypoint, &[], vip)
        .await
        .unwrap_or_else(|e| panic!("tunnel to {vip}: {e}"));
    let mut h1 = http1_over(s).await.expect("http1 over the tunnel");
    let mut req = http::Request::builder().uri(path).header("host", "echo");
    if allow {
        req = req.header(DECIDING_HEADER, "allow");
    }
    let req = req.body(waypoint_tests::echo::empty()).expect("request");
    collect(h1.send_request(req).await.expect("send"))
        .await
        .expect("collect")
}

/// The cases, identical for both data paths.
async fn cases(label: &str, waypoint: SocketAddr, b: &Backends, pki: &Pki) {
    let client = HboneClient::new(pki.store("default", "sleep"));
    for (vip, server) in [(VIA_HTTP, &b.http), (VIA_GRPC, &b.grpc)] {
        let case = format!("{label} {vip}");
        let before = server.calls();
        // CUSTOM matches, the provider allows: forwarded with its header added.
        let r = send(&client, waypoint, vip, "/check/a?x=1", true).await;
        assert_eq!(r.status, 200, "{case} allow: {}", r.text());
        assert_eq!(r.header("x-served-by"), Some("echo"), "{case}");
        assert_eq!(
            r.header(&format!("x-echo-h-{RESULT_HEADER}")),
            Some("allowed"),
            "{case}: headersToUpstreamOnAllow must reach the upstream"
        );
        assert_eq!(r.header("x-echo-h-x-not-for-upstream"), None, "{case}");
        assert_eq!(server.calls(), before + 1, "{case}: one check");
        let checked_path = server
            .last_path
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default();
        let want = if vip == VIA_HTTP {
            "/authz/check/a?x=1"
        } else {
            "/check/a?x=1"
        };
        assert_eq!(checked_path, want, "{case}: checked path");

        // CUSTOM matches, the provider denies: its status, body and header.
        let r = send(&client, waypoint, vip, "/check/b", false).await;
        assert_eq!(r.status, 403, "{case} deny: {}", r.text());
        assert_eq!(r.text(), DENY_BODY, "{case}");
        assert_eq!(r.header(RESULT_HEADER), Some("denied"), "{case}");
        assert_eq!(server.calls(), before + 2, "{case}");

        // CUSTOM does not match: forwarded, no check.
        let r = send(&client, waypoint, vip, "/free", false).await;
        assert_eq!(r.status, 200, "{case} free: {}", r.text());
        assert_eq!(
            r.header(&format!("x-echo-h-{RESULT_HEADER}")),
            None,
            "{case}"
        );
        assert_eq!(
            server.calls(),
            before + 2,
            "{case}: no check without a match"
        );

        // CUSTOM is asked before DENY (Istio's layers: CUSTOM, DENY, ALLOW): an allowing
        // provider cannot override the DENY, a denying one answers with its own response.
        let r = send(&client, waypoint, vip, "/check/deny", true).await;
        assert_eq!(r.status, 403, "{case} DENY: {}", r.text());
        assert_eq!(r.text(), "RBAC: access denied", "{case}");
        assert_eq!(r.header("x-served-by"), None, "{case}: not forwarded");
        assert_eq!(server.calls(), before + 3, "{case}: provider asked first");
        let r = send(&client, waypoint, vip, "/check/deny", false).await;
        assert_eq!(r.status, 403, "{case} DENY + provider deny: {}", r.text());
        assert_eq!(r.text(), DENY_BODY, "{case}: the provider's answer");
        assert_eq!(r.header(RESULT_HEADER), Some("denied"), "{case}");
        assert_eq!(server.calls(), before + 4, "{case}");
    }
    // Provider down: failOpen false → 403 (statusOnError default), failOpen true → forwarded.
    let r = send(&client, waypoint, VIA_CLOSED, "/check/x", true).await;
    assert_eq!(r.status, 403, "{label} closed: {}", r.text());
    assert_eq!(r.header("x-served-by"), None, "{label}");
    let r = send(&client, waypoint, VIA_OPEN, "/check/x", true).await;
    assert_eq!(r.status, 200, "{label} open: {}", r.text());
    assert_eq!(r.header("x-served-by"), Some("echo"), "{label}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_calls_http_and_grpc_providers() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let b = backends(71).await;
        let wp = TestWaypoint::start(&pki, &config_text(&b, 71), 15008).await;
        assert!(
            wp.running.config.current().is_some(),
            "config rejected: {:?}",
            wp.running.config.last_errors()
        );
        cases("host", wp.running.hbone_addr, &b, &pki).await;

        // A bad mesh config is rejected with the ConfigMap and field named; the last good
        // config keeps serving.
        let bad = config_text(&b, 71).replacen("port: \"80\"", "port: \"0\"", 1);
        assert_ne!(bad, config_text(&b, 71));
        std::fs::write(wp.config_file(), bad).expect("write bad config");
        let rejected = eventually(Duration::from_secs(10), || async {
            !wp.running.config.last_errors().is_empty()
        })
        .await;
        assert!(rejected, "the bad mesh config was not rejected");
        let errors = wp.running.config.last_errors();
        assert!(
            errors.iter().any(|e| e.kind == "ConfigMap"
                && e.name == "istio"
                && e.field == "data.mesh.extensionProviders[0].envoyExtAuthzHttp.port"),
            "{errors:?}"
        );
        let client = HboneClient::new(pki.store("default", "sleep"));
        let r = send(
            &client,
            wp.running.hbone_addr,
            VIA_HTTP,
            "/check/again",
            true,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header(&format!("x-echo-h-{RESULT_HEADER}")),
            Some("allowed")
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_calls_http_and_grpc_providers() {
    // Build the module first: its first build can take longer than the test's limit.
    let _ = waypoint_tests::envoy_harness::module_dir();
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let b = backends(72).await;
        let dir = TempDir::new("ext-authz");
        std::fs::write(
            dir.path().join("config.yaml"),
            format!("{WAYPOINT_GATEWAY}{}", config_text(&b, 72)),
        )
        .expect("write config");
        let paths: Vec<PathBuf> = vec![dir.path().to_path_buf()];
        let loaded = waypoint_loader::load_paths(&paths, "default");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let (snap, diags) = Snapshot::build(&loaded.resources, &BuildOptions::default());
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        assert_eq!(snap.ext_authz_providers().len(), 4);
        let wp = GeneratedWaypoint::start(&pki, &snap, &paths, Layout::Envoy, 1)
            .await
            .unwrap_or_else(|e| panic!("start Envoy on the generated bootstrap: {e}"));
        cases("envoy", wp.hbone_addr, &b, &pki).await;
        drop(wp);
    })
    .await
    .expect("test timed out");
}

/// The same cases on Envoy configured over ADS by `waypoint xds` (the provider filters and
/// clusters reach Envoy through the xDS transform of the generated bootstrap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_over_xds_calls_http_and_grpc_providers() {
    use std::collections::BTreeMap;
    use waypoint_envoy_config::bootstrap::Inputs;
    use waypoint_envoy_config::xds::{server, Cache, Source};
    use waypoint_tests::envoy_harness::{free_port, repo_root, Envoy};

    let _ = waypoint_tests::envoy_harness::module_dir();
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let b = backends(73).await;
        let dir = TempDir::new("ext-authz-xds");
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
            format!("{WAYPOINT_GATEWAY}{}", config_text(&b, 73)),
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
        cases("envoy-xds", hbone, &b, &pki).await;
        assert!(xds.cache.nacks().is_empty(), "{:?}", xds.cache.nacks());
        drop(envoy);
    })
    .await
    .expect("test timed out");
}
