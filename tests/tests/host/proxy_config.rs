//! `waypoint proxy-config` against a real host on loopback serving examples/bookinfo: the
//! reviews 90/10 split with both weights, policies, clusters, endpoints and the certificate
//! (SPIFFE SAN, serial, validity, roots, no key material), from the generation in force.

use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use waypoint_hbone::tls::CertPaths;
use waypoint_proxy::admin::proxy_config::{self, Format, Mode, ProxyConfig, Section};
use waypoint_tests::envoy_harness::repo_root;
use waypoint_tests::pki::Pki;
use waypoint_tests::waypoint::{admin_get, eventually, TestWaypoint};
use x509_parser::prelude::{FromDer, X509Certificate};

const LIMIT: Duration = Duration::from_secs(60);
const REVIEWS: &str = "reviews.default.svc.cluster.local";

async fn fetch(addr: std::net::SocketAddr) -> ProxyConfig {
    proxy_config::fetch(&addr.to_string(), &repo_root(), Duration::from_secs(5))
        .await
        .expect("proxy-config from the host admin")
}

/// (subset, weight, cluster) of the backends of the reviews `canary` rule.
fn canary_split(doc: &ProxyConfig) -> Vec<(String, u32, String)> {
    let row = doc
        .routes
        .iter()
        .find(|r| {
            r.resource.as_deref() == Some("VirtualService/default/reviews")
                && r.rule.as_deref() == Some("canary")
        })
        .unwrap_or_else(|| panic!("no reviews canary route in {:#?}", doc.routes));
    assert_eq!(row.service, REVIEWS);
    row.backends
        .iter()
        .map(|b| {
            (
                b.subset.clone().unwrap_or_default(),
                b.weight,
                b.cluster.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// The PEM body lines of a key file: none may appear in any output.
fn key_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read key")
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_proxy_config_shows_bookinfo_as_served() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        let wp = TestWaypoint::start_in(&pki, &repo_root().join("examples/bookinfo"), 15008).await;
        let admin = wp.running.admin_addr.expect("admin addr");
        let doc = fetch(admin).await;
        assert_eq!(doc.mode, Mode::Host);
        assert_eq!(doc.waypoint.as_deref(), Some("default/waypoint"));
        assert!(
            doc.generation.is_some_and(|g| g >= 1),
            "{:?}",
            doc.generation
        );

        // Routes: the 90/10 canary with both weights and their clusters; jason's header rule.
        assert_eq!(
            canary_split(&doc),
            vec![
                ("v1".into(), 90, format!("outbound|9080|v1|{REVIEWS}")),
                ("v3".into(), 10, format!("outbound|9080|v3|{REVIEWS}")),
            ]
        );
        let jason = doc
            .routes
            .iter()
            .find(|r| r.service == REVIEWS && r.rule.as_deref() == Some("jason"))
            .expect("jason rule");
        assert_eq!(jason.matcher, "header end-user exact \"jason\"");
        let ratings_fault = doc
            .routes
            .iter()
            .find(|r| r.rule.as_deref() == Some("jason-faults"))
            .expect("ratings fault rule");
        assert_eq!(
            ratings_fault.fault.as_deref(),
            Some("delay 7000ms 100%, abort 500 100%")
        );
        let table = proxy_config::render(&doc, Section::Routes, Format::Short).expect("render");
        assert!(
            table.contains(&format!("{REVIEWS}:9080/v1=90, {REVIEWS}:9080/v3=10")),
            "{table}"
        );

        // Policies: names, actions and targets as compiled.
        let pol = |name: &str| {
            doc.policies
                .iter()
                .find(|p| p.name == name)
                .unwrap_or_else(|| panic!("no policy {name} in {:#?}", doc.policies))
        };
        assert_eq!(pol("productpage-viewer").action, "ALLOW");
        assert_eq!(
            pol("productpage-viewer").targets,
            vec!["Service/default/productpage".to_string()]
        );
        assert_eq!(pol("deny-admin").action, "DENY");
        assert_eq!(
            pol("deny-admin").targets,
            vec!["Gateway/default/waypoint".to_string()]
        );
        let table = proxy_config::render(&doc, Section::Policies, Format::Short).expect("render");
        assert!(table.contains("productpage-viewer"), "{table}");

        // Clusters and endpoints: a subset cluster, its DestinationRule, its one pod.
        let v1 = doc
            .clusters
            .iter()
            .find(|c| c.name == format!("outbound|9080|v1|{REVIEWS}"))
            .expect("reviews v1 cluster");
        assert_eq!(
            v1.destination_rule.as_deref(),
            Some("DestinationRule/default/reviews")
        );
        assert_eq!(v1.endpoints, 1);
        let ep: Vec<_> = doc
            .endpoints
            .iter()
            .filter(|e| e.cluster == v1.name)
            .collect();
        assert_eq!(ep.len(), 1);
        assert_eq!(ep[0].address, "127.10.0.21:9080");
        assert!(ep[0].hbone);
        assert_eq!(
            ep[0].identity.as_deref(),
            Some("spiffe://cluster.local/ns/default/sa/bookinfo-reviews")
        );
        let all_reviews = doc
            .clusters
            .iter()
            .find(|c| c.name == format!("outbound|9080||{REVIEWS}"))
            .expect("reviews cluster");
        assert_eq!(all_reviews.endpoints, 3);

        // Secrets: the certificate the host serves with, compared with the file it loaded.
        // What the test waypoint loaded (issuing again would replace it on disk).
        let issued = CertPaths::from_dir(&pki.dir.path().join("default.waypoint"));
        let leaf = doc
            .secrets
            .iter()
            .find(|s| s.kind == "cert_chain")
            .expect("workload certificate");
        assert_eq!(leaf.name, "default");
        assert_eq!(
            leaf.identity.as_deref(),
            Some("spiffe://cluster.local/ns/default/sa/waypoint")
        );
        let pem = std::fs::read_to_string(&issued.cert).expect("cert");
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem");
        let (_, cert) = X509Certificate::from_der(&der).expect("x509");
        let serial: String = cert
            .raw_serial()
            .iter()
            .skip_while(|b| **b == 0)
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(leaf.serial, serial);
        assert_eq!(
            leaf.not_after,
            proxy_config::certs::rfc3339(cert.validity().not_after.timestamp())
        );
        assert!(
            doc.secrets
                .iter()
                .any(|s| s.kind == "root" && s.name == "ROOTCA"),
            "{:#?}",
            doc.secrets
        );
        let keys = key_lines(&issued.key);
        assert!(!keys.is_empty());
        for format in [Format::Short, Format::Json, Format::Yaml] {
            let out = proxy_config::render(&doc, Section::All, format).expect("render");
            assert!(!out.contains("PRIVATE KEY"), "{out}");
            for k in &keys {
                assert!(
                    !out.contains(k.as_str()),
                    "key material in {format:?} output"
                );
            }
        }
        let (_, raw) = admin_get(admin, "/proxy_config").await.expect("raw");
        assert!(!raw.contains("PRIVATE KEY") && !keys.iter().any(|k| raw.contains(k.as_str())));

        // JSON keeps every field, null when absent.
        let json = proxy_config::render(&doc, Section::Routes, Format::Json).expect("json");
        let v: serde_json::Value = serde_json::from_str(&json).expect("parse");
        let first = &v["routes"][0];
        for key in ["timeout_ms", "retries", "fault", "port", "resource"] {
            assert!(
                first.as_object().is_some_and(|o| o.contains_key(key)),
                "{key}: {first}"
            );
        }
        assert!(v.get("clusters").is_none());
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_proxy_config_follows_the_generation_in_force_and_only_on_admin() {
    tokio::time::timeout(LIMIT, async {
        let pki = Pki::new("cluster.local");
        // The bookinfo manifests (less its Gateway, which the test waypoint writes) in a
        // watched directory, so the test can change them.
        let root = repo_root().join("examples/bookinfo");
        let mut yaml = String::new();
        for f in [
            "base/namespace.yaml",
            "base/services.yaml",
            "istio/destination-rules.yaml",
            "istio/virtual-services.yaml",
            "policies/authorization.yaml",
        ] {
            yaml.push_str(&std::fs::read_to_string(root.join(f)).expect("read example"));
            yaml.push_str("\n---\n");
        }
        let wp = TestWaypoint::start(&pki, &yaml, 15008).await;
        let admin = wp.running.admin_addr.expect("admin addr");
        let before = fetch(admin).await;
        assert_eq!(canary_split(&before)[0].1, 90);

        let changed =
            yaml.replacen("weight: 90", "weight: 60", 1)
                .replacen("weight: 10", "weight: 40", 1);
        assert_ne!(changed, yaml);
        let tmp = wp.config_file().with_extension("tmp");
        std::fs::write(&tmp, &changed).expect("write");
        std::fs::rename(&tmp, wp.config_file()).expect("rename");
        let switched = eventually(Duration::from_secs(20), || async {
            let d = fetch(admin).await;
            d.generation > before.generation
                && canary_split(&d).iter().map(|x| x.1).collect::<Vec<_>>() == vec![60, 40]
        })
        .await;
        assert!(switched, "the view never showed the 60/40 split");

        // Only the loopback admin serves it; the other ports answer 404 and are not an admin.
        for addr in [wp.running.stats_addr, wp.running.ready_addr] {
            let addr = addr.expect("listener");
            assert_eq!(admin_get(addr, "/proxy_config").await.expect("get").0, 404);
            let err = proxy_config::fetch(&addr.to_string(), &repo_root(), Duration::from_secs(5))
                .await
                .expect_err("not an admin");
            let msg = err.to_string();
            assert!(
                msg.contains(&addr.to_string()) && msg.contains("neither"),
                "{msg}"
            );
        }
    })
    .await
    .expect("test timed out");
}
