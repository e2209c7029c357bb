//! `waypoint xds` figures (reported, never asserted): snapshot generation time for 1k and 10k
//! services (load + validate + generate + split + protobuf encode), and the bytes a delta push
//! carries for a one-route change.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use waypoint::bootstrap::Inputs;
use waypoint::xds::proto::ROUTE;
use waypoint::xds::{Snapshot, Source};

/// N plain Services (one pod each) bound to the waypoint, each with an HTTPRoute;
/// `backend_of_0` is the backend of the first route (the one-route change flips it).
fn manifests(n: usize, backend_of_0: &str) -> String {
    let mut s = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: default}\n\
         spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}\n",
    );
    for i in 0..n {
        let (a, b) = (i / 250, i % 250);
        let backend = if i == 0 {
            backend_of_0.to_string()
        } else {
            format!("svc{i}")
        };
        s.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: default, labels: {{istio.io/use-waypoint: waypoint}}}}\n\
             spec: {{clusterIP: 10.96.{a}.{b}, ports: [{{name: http, port: 80, targetPort: 8080}}], selector: {{app: svc{i}}}}}\n\
             ---\napiVersion: v1\nkind: Pod\nmetadata: {{name: svc{i}-0, namespace: default, labels: {{app: svc{i}, istio.io/dataplane-mode: none}}}}\n\
             spec: {{serviceAccountName: svc{i}, containers: [{{name: app, image: x}}]}}\nstatus: {{podIP: 10.1.{a}.{b}}}\n\
             ---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: svc{i}, namespace: default}}\n\
             spec: {{parentRefs: [{{group: \"\", kind: Service, name: svc{i}, port: 80}}], rules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]}}\n"
        ));
    }
    s
}

fn source(dir: &Path) -> Source {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    for f in ["waypoint.pem", "waypoint-key.pem", "ca.pem"] {
        std::fs::write(
            certs.join(f),
            "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
    }
    Source {
        inputs: Inputs {
            config: vec![dir.join("config.yaml")],
            root: PathBuf::from("/"),
            namespace: "default".into(),
            waypoint: None,
            certs_dir: certs.display().to_string(),
            module_name: "waypoint".into(),
            trust_domain: "cluster.local".into(),
        },
        rebind: Default::default(),
        extra_listeners: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    for n in [1_000usize, 10_000] {
        let dir =
            std::env::temp_dir().join(format!("waypoint-xds-bench-{n}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let config = dir.join("config.yaml");
        std::fs::write(&config, manifests(n, "svc0")).expect("write");
        let src = source(&dir);
        let before = src.build(None).expect("snapshot");

        // A one-route change: the HTTPRoute of svc0 now sends to svc1.
        std::fs::write(&config, manifests(n, "svc1")).expect("write");
        let after = src.build(None).expect("snapshot");
        let diff = after.diff(&before);
        let pushed: usize = diff.iter().map(|d| d.2).sum();
        let counts: Vec<usize> = after.types.values().map(|m| m.len()).collect();
        println!(
            "xds n={n}: {} resources ({counts:?} by type), full snapshot {} bytes; \
             one-route change pushes {} resource(s), {pushed} bytes: {:?}",
            counts.iter().sum::<usize>(),
            after.bytes(),
            diff.len(),
            diff.iter()
                .map(|d| (waypoint::xds::proto::short(d.0), d.1.as_str(), d.2))
                .collect::<Vec<_>>()
        );
        // A change to one RouteConfiguration (what RDS granularity costs): the readiness table.
        let mut json = src.json(None).expect("json");
        if let Some(rc) = json.get_mut(ROUTE).and_then(|m| m.get_mut("readiness")) {
            rc["virtual_hosts"][0]["name"] = serde_json::json!("readiness-2");
        }
        let one = Snapshot::encode(&json).expect("encode");
        let d: usize = one.diff(&after).iter().map(|d| d.2).sum();
        println!("xds n={n}: one RouteConfiguration change pushes {d} bytes");

        let mut g = c.benchmark_group("xds_snapshot");
        g.sample_size(10);
        g.bench_function(format!("build_{n}_services"), |b| {
            b.iter(|| src.build(None).expect("snapshot"))
        });
        g.finish();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
