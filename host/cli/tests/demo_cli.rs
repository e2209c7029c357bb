//! `waypoint demo` as `make demo` runs it: the whole bookinfo mesh on loopback exits 0 and its
//! summary shows the canary split, jason on v2, the fault abort and the policy denials.

use std::process::Command;

#[test]
fn demo_runs_bookinfo_end_to_end() {
    let root = format!("{}/../..", env!("CARGO_MANIFEST_DIR"));
    // A mesh port other than 15008 so a `make demo` running alongside does not clash.
    let out = Command::new(env!("CARGO_BIN_EXE_waypoint"))
        .current_dir(&root)
        .args(["demo", "--requests", "200", "--mesh-port", "25008"])
        .output()
        .expect("run waypoint demo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");

    let line = |tag: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(tag))
            .unwrap_or_else(|| panic!("no {tag} line in:\n{stdout}"))
            .to_string()
    };
    // The canary: only v1 and v3, v1 the large majority.
    let canary = line("[3/6]");
    let count = |name: &str| -> usize {
        canary
            .split(&format!("{name} "))
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let (v1, v3) = (count("reviews-v1"), count("reviews-v3"));
    assert_eq!(v1 + v3, 200, "{canary}");
    assert!(v1 > 150 && v3 > 0, "{canary}");
    assert!(!canary.contains("reviews-v2"), "{canary}");

    assert!(line("[4/6]").contains("reviews-v2 20 (100.0%)"), "{stdout}");
    let ratings = line("[5/6]");
    assert!(ratings.contains("GET -> 200 from ratings-v1"), "{ratings}");
    assert!(ratings.contains("jason -> 500 after"), "{ratings}");

    // The policy phase prints one indented line per request after its header.
    let policy = stdout
        .split("[6/6]")
        .nth(1)
        .unwrap_or_else(|| panic!("no [6/6] section in:\n{stdout}"));
    for want in [
        "curl GET /productpage -> 200 from productpage-v1",
        "notsleep GET /productpage -> 403",
        "curl POST /productpage -> 403",
        "curl GET /admin -> 403",
    ] {
        assert!(policy.contains(want), "{want} missing: {policy}");
    }
    assert!(
        stdout.contains("expected outcomes seen; everything shut down cleanly"),
        "{stdout}"
    );
    // What to try next, and no terminal escapes in output that is not a terminal.
    let next = stdout
        .split("\nnext:")
        .nth(1)
        .unwrap_or_else(|| panic!("no next: in {stdout}"));
    for verb in ["waypoint explain", "waypoint run", "waypoint curl"] {
        assert!(next.contains(verb), "{verb} missing: {next}");
    }
    assert!(
        !stdout.contains('\x1b') && !stderr.contains('\x1b'),
        "{stdout}{stderr}"
    );
}

/// A taken mesh port: the error says how to pick another through `make`, once, uncoloured.
#[test]
fn demo_port_conflict_is_reported_once_with_the_make_flag() {
    let root = format!("{}/../..", env!("CARGO_MANIFEST_DIR"));
    // Every pod IP's port is taken by one wildcard listener.
    let taken = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_waypoint"))
        .current_dir(&root)
        .args(["demo", "--requests", "10", "--mesh-port", &port])
        .output()
        .expect("run waypoint demo");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("DEMO_ARGS='--mesh-port"), "{stderr}");
    assert_eq!(
        stderr.matches("HBONE server on").count(),
        1,
        "printed once: {stderr}"
    );
    assert!(!stderr.contains('\x1b'), "{stderr}");
}
