//! Multi-host test in network namespaces (root only; prints SKIP otherwise): a client, the
//! waypoint and two server hosts, each with its own address on a bridge. The client's HBONE
//! requests to a service VIP are spread by the waypoint over both servers' HBONE endpoints.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use waypoint_tests::netns::{skip_unless_root, Topology};
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::waypoint::WAYPOINT_GATEWAY;

const NODE: &str = env!("CARGO_BIN_EXE_wp-netns-node");

/// Children killed on drop, whatever the test outcome.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start `wp-netns-node` in namespace `ns` and wait for its "ready" line.
fn spawn_ready(children: &mut Children, ns: &str, args: &[String]) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, NODE])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node");
    let stdout = child.stdout.take().expect("stdout");
    children.0.push(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.trim() == "ready" {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("node in {ns} did not become ready: {args:?}"));
}

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
    let dir_of =
        |p: &waypoint::tls::CertPaths| p.cert.parent().expect("cert dir").display().to_string();

    let mut topo = Topology::new().expect("bridge");
    let client_ns = topo.host("c", 10).expect("client ns");
    let wp_ns = topo.host("w", 20).expect("waypoint ns");
    let s1_ns = topo.host("s1", 31).expect("server1 ns");
    let s2_ns = topo.host("s2", 32).expect("server2 ns");
    let (wp_ip, s1_ip, s2_ip) = (topo.addr(20), topo.addr(31), topo.addr(32));

    let config = TempDir::new("netns-config");
    std::fs::write(
        config.path().join("config.yaml"),
        service_yaml(&s1_ip.to_string(), &s2_ip.to_string()),
    )
    .expect("config");

    let mut children = Children(Vec::new());
    for (ns, ip, name) in [(&s1_ns, s1_ip, "srv1"), (&s2_ns, s2_ip, "srv2")] {
        spawn_ready(
            &mut children,
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
                dir_of(&web_certs),
            ],
        );
    }
    spawn_ready(
        &mut children,
        &wp_ns,
        &[
            "waypoint".into(),
            "--ip".into(),
            wp_ip.to_string(),
            "--config".into(),
            config.path().display().to_string(),
            "--certs".into(),
            dir_of(&wp_certs),
        ],
    );

    let out = Command::new("ip")
        .args(["netns", "exec", &client_ns, NODE, "client"])
        .args(["--waypoint", &format!("{wp_ip}:15008")])
        .args(["--authority", "10.96.9.1:80", "--count", "20"])
        .args(["--certs", &dir_of(&client_certs)])
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
