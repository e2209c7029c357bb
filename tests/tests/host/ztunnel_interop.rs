//! Interop with a REAL ztunnel on both sides of the standalone waypoint (root only, and only
//! when `WAYPOINT_ZTUNNEL=/path/to/ztunnel` is set; otherwise it prints a SKIP line and passes).
//!
//! Topology (one network namespace per pod, on a bridge; nothing leaves the machine):
//!
//! ```text
//! client ns: `call` ──iptables REDIRECT (VIP → :15001)──► ztunnel (dedicated, default/sleep)
//!     ──HBONE :15008, mTLS as sleep, CONNECT <VIP>:80──► waypoint ns: `waypoint run` (our host)
//!     ──HBONE <pod IP>:15008, mTLS as waypoint, CONNECT <pod IP>:8080──►
//! web-v1 / web-v2 ns: ztunnel (dedicated, default/web-vN) ──► app on <pod IP>:8080
//! ```
//!
//! The ztunnels run without istiod: `XDS_ADDRESS=""` and `LOCAL_XDS_PATH` (workloads, the
//! service with its waypoint, and an L4 ALLOW policy at the servers that admits only the
//! waypoint's identity); certificates come from `CA_ADDRESS`, a stand-in for istiod's CA that
//! signs their CSRs with the test mesh CA (`waypoint_tests::ztunnel::ca`). The app answers every
//! request with `Connection: close` and closes, the case that broke stock-Envoy waypoints.
//!
//! Cases: (1) L7 policy through the waypoint: header route to v2, 90/10 split v1/v2, DENY by the
//! client's SPIFFE identity (403), 10 requests on one keep-alive client connection, no stream errors in any ztunnel log; (2) 50 MiB download and
//! 20 MiB upload intact; (3) 20 parallel requests; (4) 50 MiB over an opaque TCP port (L4
//! relay), server finishing first; (5) an L4 deny at the waypoint (401 to the CONNECT). The server ztunnels must log the waypoint's
//! identity as the source and `CONNECT <pod IP>:8080`.
//!
//! The ztunnel binary is not built by this repository. Build istio/ztunnel yourself (see the
//! README section "Interop with ztunnel" for the commit and the cargo features used here) and
//! point `WAYPOINT_ZTUNNEL` at it; `WAYPOINT_ZTUNNEL_LOG` overrides its `RUST_LOG`.

use std::net::SocketAddr;
use std::time::Duration;

use waypoint_devtools::dev_ca::DevCa;
use waypoint_tests::netns::{exec, ip, skip_unless_root, Nodes, Topology};
use waypoint_tests::pki::{Pki, TempDir};
use waypoint_tests::ztunnel::ca::CaServer;
use waypoint_tests::ztunnel::client::Reply;
use waypoint_tests::ztunnel::mesh::{waypoint_yaml, ztunnel_yaml, HOST, LOCKED_VIP, RAW_VIP, VIP};
use waypoint_tests::ztunnel::process::{binary_or_skip, error_lines, Ztunnel, ZtunnelSpec};

const NODE: &str = env!("CARGO_BIN_EXE_wp-netns-node");
const MIB: u64 = 1024 * 1024;

/// Run `call` in the client namespace; one parsed reply per request (failures panic).
fn call(client_ns: &str, path: &str, extra: &[&str], diag: &dyn Fn() -> String) -> Vec<Reply> {
    let to = format!("{VIP}:80");
    let out = exec(client_ns, NODE)
        .arg("call")
        .args(["--to", &to, "--host", HOST, "--path", path])
        .args(extra)
        .output()
        .expect("run call");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let replies: Vec<Reply> = stdout.lines().filter_map(Reply::parse).collect();
    assert!(
        out.status.success() && !stdout.lines().any(|l| l.starts_with("fail")),
        "call {path} {extra:?} failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        diag()
    );
    replies
}

/// Poll `f` every 100 ms until it is true or `timeout` passes.
fn eventually_sync(timeout: Duration, f: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

fn served(replies: &[Reply], by: &str) -> usize {
    replies.iter().filter(|r| r.served_by == by).count()
}

#[test]
fn real_ztunnel_client_and_server_through_the_waypoint() {
    let test = "real_ztunnel_client_and_server_through_the_waypoint";
    if skip_unless_root(test) {
        return;
    }
    let Some(bin) = binary_or_skip(test) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(bin));
}

async fn run(bin: std::path::PathBuf) {
    let pki = Pki::new("cluster.local");
    let wp_certs = pki.issue("default", "waypoint");
    let dir = TempDir::new("ztunnel-interop");

    let mut topo = Topology::new().expect("bridge");
    let [client_ns, wp_ns, v1_ns, v2_ns] = topo
        .hosts([("c", 10), ("w", 20), ("v1", 31), ("v2", 32)])
        .expect("hosts");
    let (client_ip, wp_ip, v1_ip, v2_ip) =
        (topo.addr(10), topo.addr(20), topo.addr(31), topo.addr(32));

    // The client pod's outbound capture, as istio-cni sets it up (VIP traffic only).
    ip(&[
        "-n",
        &client_ns,
        "route",
        "add",
        "10.96.0.0/16",
        "dev",
        "eth0",
    ])
    .expect("VIP route");
    ip(&[
        "netns",
        "exec",
        &client_ns,
        "iptables",
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "-d",
        "10.96.0.0/16",
        "-j",
        "REDIRECT",
        "--to-ports",
        "15001",
    ])
    .expect("VIP capture");

    let ca = CaServer::start(
        SocketAddr::new(topo.addr(1), 0),
        DevCa::load(pki.dir.path(), "cluster.local").expect("ca"),
        dir.path(),
    )
    .await
    .expect("CA endpoint");
    let zt_config = dir.path().join("ztunnel.yaml");
    std::fs::write(&zt_config, ztunnel_yaml(client_ip, wp_ip, v1_ip, v2_ip)).expect("write");

    let mut zts = Vec::new();
    for (name, ns, workload, ip) in [
        (
            "ztunnel-client",
            &client_ns,
            "default/sleep/sleep",
            client_ip,
        ),
        ("ztunnel-web-v1", &v1_ns, "default/web-v1/web", v1_ip),
        ("ztunnel-web-v2", &v2_ns, "default/web-v2/web", v2_ip),
    ] {
        let spec = ZtunnelSpec {
            netns: ns,
            workload: workload.into(),
            ip,
            local_config: &zt_config,
            ca_url: ca.url(),
            ca_root: &ca.tls_root,
        };
        zts.push(Ztunnel::start(&bin, name, &spec, dir.path()).expect("start ztunnel"));
    }
    for z in &mut zts {
        z.wait_ready(Duration::from_secs(60))
            .await
            .expect("ztunnel ready");
    }

    let mut children = Nodes::new(
        NODE,
        &std::env::var("WAYPOINT_LOG").unwrap_or_else(|_| "warn".into()),
    );
    for (ns, ip, name) in [(&v1_ns, v1_ip, "v1"), (&v2_ns, v2_ip, "v2")] {
        children.spawn_ready(
            ns,
            &[
                "app".into(),
                "--http".into(),
                format!("{ip}:8080"),
                "--name".into(),
                name.into(),
            ],
        );
        children.spawn_ready(
            ns,
            &[
                "tcp-app".into(),
                "--bind".into(),
                format!("{ip}:9000"),
                "--len".into(),
                (50 * MIB).to_string(),
            ],
        );
    }
    let wp_config = TempDir::new("ztunnel-interop-config");
    std::fs::write(
        wp_config.path().join("config.yaml"),
        waypoint_yaml(v1_ip, v2_ip),
    )
    .expect("write");
    children.spawn_waypoint(&wp_ns, wp_ip, wp_config.path(), &wp_certs);

    let diag = || {
        zts.iter()
            .map(|z| {
                let text = z.log_text();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("=== {} (last 40 lines)\n{}", z.name, tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Case 1: L7 policy through the waypoint, app closing after every response.
    let canary = call(
        &client_ns,
        "/",
        &["--header", "x-canary: yes", "--count", "10"],
        &diag,
    );
    assert_eq!(canary.len(), 10);
    // `Connection: close` is hop-by-hop: the app sends it to the waypoint, which does not
    // forward it (RFC 9110 §7.6.1), so the client does not see it.
    assert!(
        canary
            .iter()
            .all(|r| r.status == 200 && r.served_by == "v2"),
        "header route: {canary:?}\n{}",
        diag()
    );
    let split = call(&client_ns, "/", &["--count", "40"], &diag);
    assert_eq!(split.len(), 40);
    assert!(split.iter().all(|r| r.status == 200), "split: {split:?}");
    assert_eq!(served(&split, "v1") + served(&split, "v2"), 40, "{split:?}");
    // 90/10: P(v1 < 28 of 40) is below 1e-5.
    assert!(served(&split, "v1") >= 28, "90/10 split: {split:?}");
    let denied = call(&client_ns, "/private/x", &["--count", "3"], &diag);
    assert!(
        denied.iter().all(|r| r.status == 403 && r.served_by == "-"),
        "DENY for sleep's identity: {denied:?}"
    );
    let mine = call(&client_ns, "/mine", &["--count", "2"], &diag);
    assert!(
        mine.iter().all(|r| r.status == 200),
        "a DENY for another identity must not match sleep: {mine:?}"
    );
    // A keep-alive client: one client connection (one tunnel) carries 10 requests while the
    // app closes after each, so the waypoint opens a new upstream tunnel per request.
    let reused = call(&client_ns, "/", &["--keepalive", "10"], &diag);
    assert_eq!(reused.len(), 10);
    assert!(
        reused.iter().all(|r| r.status == 200),
        "keep-alive client: {reused:?}\n{}",
        diag()
    );
    for z in &zts {
        let errors = error_lines(&z.log_text());
        assert!(
            errors.is_empty(),
            "{} logged errors in case 1:\n{}",
            z.name,
            errors.join("\n")
        );
    }

    // Case 2: large bodies both ways.
    let down = call(
        &client_ns,
        &format!("/bytes/{}", 50 * MIB),
        &["--header", "x-canary: yes", "--timeout", "180"],
        &diag,
    );
    assert_eq!(down.len(), 1);
    assert!(
        down[0].status == 200 && down[0].len == 50 * MIB && down[0].pattern_ok,
        "50 MiB download: {:?}\n{}",
        down[0],
        diag()
    );
    let up = call(
        &client_ns,
        "/echo",
        &[
            "--header",
            "x-canary: yes",
            "--upload",
            &(20 * MIB).to_string(),
            "--timeout",
            "180",
        ],
        &diag,
    );
    assert_eq!(up.len(), 1);
    assert!(
        up[0].status == 200 && up[0].len == 20 * MIB && up[0].pattern_ok,
        "20 MiB upload (echoed back): {:?}\n{}",
        up[0],
        diag()
    );

    // Case 3: 20 requests at once.
    let par = call(&client_ns, "/delay/200", &["--parallel", "20"], &diag);
    assert_eq!(par.len(), 20);
    assert!(par.iter().all(|r| r.status == 200), "parallel: {par:?}");

    // Case 4: an opaque TCP port, relayed at L4; the server finishes first (half-close) after
    // 50 MiB, the case that truncated downloads through a stock-Envoy waypoint.
    let out = exec(&client_ns, NODE)
        .arg("tcp-get")
        .args(["--to", &format!("{RAW_VIP}:9000")])
        .output()
        .expect("run tcp-get");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("tcp {} true", 50 * MIB),
        "TCP 50 MiB download:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        diag()
    );

    // The servers saw the waypoint, not the client, and the pod-addressed CONNECT.
    for z in &zts {
        let errors = error_lines(&z.log_text());
        assert!(
            errors.is_empty(),
            "{} logged errors:\n{}",
            z.name,
            errors.join("\n")
        );
    }
    for (z, ip) in [(&zts[1], v1_ip), (&zts[2], v2_ip)] {
        let log = z.log_text();
        assert!(
            log.contains("src.identity=\"spiffe://cluster.local/ns/default/sa/waypoint\""),
            "{} never saw the waypoint's identity:\n{log}",
            z.name
        );
        assert!(
            !log.contains("sa/sleep\""),
            "{} saw the client's identity: the waypoint was bypassed:\n{log}",
            z.name
        );
        let connect = format!("uri: {ip}:8080");
        assert!(
            log.contains("method: CONNECT") && log.contains(&connect),
            "{} never logged CONNECT {ip}:8080:\n{log}",
            z.name
        );
    }
    // ztunnel fetches certificates on demand; by now each identity has one from our CA.
    let issued = ca.issued();
    for id in ["sleep", "web"] {
        let want = format!("spiffe://cluster.local/ns/default/sa/{id}");
        assert!(issued.contains(&want), "CA signed {issued:?}");
    }
    let client_log = zts[0].log_text();
    assert!(
        client_log.contains(&format!("{wp_ip}:15008")),
        "the client ztunnel never dialled the waypoint:\n{client_log}"
    );
    // Case 5 (last: the client's ztunnel logs the refusal as an error): an L4 deny at the
    // waypoint answers the CONNECT with 401; no byte of the service reaches the client.
    let out = exec(&client_ns, NODE)
        .arg("tcp-get")
        .args(["--to", &format!("{LOCKED_VIP}:9100")])
        .output()
        .expect("run tcp-get");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.trim() == "tcp 0 true" || stdout.starts_with("fail"),
        "L4 deny must deliver nothing: {stdout}"
    );
    let denied_line = |log: &str| {
        log.lines()
            .any(|l| l.contains(&format!("dst.hbone_addr={LOCKED_VIP}:9100")) && l.contains("401"))
    };
    assert!(
        eventually_sync(Duration::from_secs(5), || denied_line(&zts[0].log_text())),
        "the client's ztunnel did not log the waypoint's 401:\n{}",
        diag()
    );
    if std::env::var_os("WAYPOINT_ZTUNNEL_KEEP_LOGS").is_some() {
        for z in &zts {
            let keep = std::env::temp_dir().join(format!("{}.log", z.name));
            let _ = std::fs::copy(&z.log, &keep);
        }
    }
    drop(children);
    drop(zts);
    drop(topo);
}
