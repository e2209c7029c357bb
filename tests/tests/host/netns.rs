//! Multi-host test in network namespaces (root only; prints SKIP otherwise): a client, the
//! waypoint and two server hosts, each with its own address on a bridge. The client's HBONE
//! requests to a service VIP are spread by the waypoint over both servers' HBONE endpoints.

use waypoint_tests::netns::{cert_dir, exec, skip_unless_root, Nodes, Topology};
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::waypoint::WAYPOINT_GATEWAY;

const NODE: &str = env!("CARGO_BIN_EXE_wp-netns-node");

fn service_yaml(a: &str, b: &str) -> String {
    let mut y = format!(
        "{WAYPOINT_GATEWAY}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n  labels:\n    istio.io/dataplane-mode: ambient\n    istio.io/use-waypoint: waypoint\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\nspec:\n  clusterIP: 10.96.9.1\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n  selector:\n    app: web\n"
    );
    for (i, ip) in [a, b].iter().enumerate() {
        y.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-{i}\n  namespace: default\n  labels:\n    app: web\nspec:\n  serviceAccountName: web\n  containers:\n  - name: web\n    image: example\nstatus:\n  podIP: {ip}\n"
        ));
    }
    y
}

#[test]
fn client_waypoint_and_two_servers_in_namespaces() {
    if skip_unless_root("client_waypoint_and_two_servers_in_namespaces") {
        return;
    }
    let pki = Pki::new("cluster.local");
    let wp_certs = pki.issue("default", "waypoint");
    let web_certs = pki.issue("default", "web");
    let client_certs = pki.issue("default", "sleep");

    let mut topo = Topology::new().expect("bridge");
    let [client_ns, wp_ns, s1_ns, s2_ns] = topo
        .hosts([("c", 10), ("w", 20), ("s1", 31), ("s2", 32)])
        .expect("hosts");
    let (wp_ip, s1_ip, s2_ip) = (topo.addr(20), topo.addr(31), topo.addr(32));

    let config = TempDir::new("netns-config");
    std::fs::write(
        config.path().join("config.yaml"),
        service_yaml(&s1_ip.to_string(), &s2_ip.to_string()),
    )
    .expect("config");

    let mut children = Nodes::new(NODE, "warn");
    for (ns, ip, name) in [(&s1_ns, s1_ip, "srv1"), (&s2_ns, s2_ip, "srv2")] {
        children.spawn_ready(
            ns,
            &[
                "server".into(),
                "--http".into(),
                format!("{ip}:8080"),
                "--hbone".into(),
                format!("{ip}:15008"),
                "--name".into(),
                name.into(),
                "--certs".into(),
                cert_dir(&web_certs),
            ],
        );
    }
    children.spawn_waypoint(&wp_ns, wp_ip, config.path(), &wp_certs);

    let out = exec(&client_ns, NODE)
        .arg("client")
        .args(["--waypoint", &format!("{wp_ip}:15008")])
        .args(["--authority", "10.96.9.1:80", "--count", "20"])
        .args(["--certs", &cert_dir(&client_certs)])
        .output()
        .expect("client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 20, "{stdout}");
    assert!(lines.iter().all(|l| l.starts_with("200 srv")), "{stdout}");
    let s1 = lines.iter().filter(|l| l.ends_with("srv1")).count();
    let s2 = lines.iter().filter(|l| l.ends_with("srv2")).count();
    assert!(
        s1 >= 5 && s2 >= 5,
        "round robin over both servers: {s1}/{s2}"
    );
    drop(children);
    drop(topo);
}
