//! The README's "Try it" commands, run as written: `dev-ca` → `run` → `curl`, each `curl`
//! answered with the status its comment promises. Only the ports and `/tmp/mesh` (also
//! `curl --dev-ca`'s default) differ.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Shell words of one command line (single and double quotes, no escapes), comment dropped.
fn words(line: &str) -> (Vec<String>, String) {
    let (mut out, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    let mut chars = line.chars();
    let mut comment = String::new();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '#') if cur.is_empty() => {
                comment = chars.collect::<String>().trim().to_string();
                break;
            }
            (None, '\'' | '"') => (quote, any) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (_, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    (out, comment)
}

/// The `waypoint …` lines of the README's "Try it" code blocks, in order, with their comments.
fn try_it_commands() -> Vec<(Vec<String>, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Try it")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a '## Try it' section in README.md");
    // Only code blocks (every second piece between fences), continuation lines joined.
    section
        .split("```")
        .skip(1)
        .step_by(2)
        .flat_map(|block| {
            block
                .replace("\\\n", " ")
                .lines()
                .filter(|l| l.starts_with("waypoint "))
                .map(words)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

/// Run `args` (the README's words after `waypoint`) from the repository root, with
/// `/tmp/mesh` replaced by `mesh`.
fn waypoint(args: &[String], mesh: &Path, extra: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_waypoint"));
    c.current_dir(root());
    for a in args {
        c.arg(a.replace("/tmp/mesh", &mesh.display().to_string()));
    }
    c.args(extra);
    c
}

struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn show(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn readme_dev_ca_run_curl_work_as_written() {
    let commands = try_it_commands();
    let verbs: Vec<&str> = commands.iter().map(|(w, _)| w[1].as_str()).collect();
    assert!(
        verbs.starts_with(&["dev-ca", "run", "curl"]) && verbs.contains(&"explain"),
        "the README's Try it section runs dev-ca, run, curl and explain: {verbs:?}"
    );
    let mesh = std::env::temp_dir().join(format!("wp-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&mesh);
    let (hbone, ready, stats, admin) = (free_port(), free_port(), free_port(), free_port());
    let mut running = None;
    let mut curls = 0;
    for (words, comment) in &commands {
        let args = &words[1..];
        match args[0].as_str() {
            "dev-ca" | "explain" => {
                let out = waypoint(args, &mesh, &[]).output().expect("spawn");
                assert!(out.status.success(), "{args:?}:\n{}", show(&out));
            }
            "run" => {
                let ports = [
                    ("--hbone-addr", hbone),
                    ("--ready-addr", ready),
                    ("--stats-addr", stats),
                    ("--admin-addr", admin),
                ];
                let extra: Vec<String> = ports
                    .iter()
                    .flat_map(|(f, a)| [f.to_string(), a.to_string()])
                    .collect();
                let child = waypoint(args, &mesh, &extra)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn run");
                running = Some(Stop(child));
                let deadline = Instant::now() + Duration::from_secs(30);
                while http_status(ready, "/healthz/ready") != Some(200) {
                    assert!(Instant::now() < deadline, "`waypoint {args:?}` never ready");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            "curl" => {
                assert!(running.is_some(), "curl before run in the README");
                // `--dev-ca` defaults to /tmp/mesh, the README's directory: moved like it.
                let extra = [
                    "--waypoint".to_string(),
                    hbone.to_string(),
                    "--dev-ca".to_string(),
                    mesh.display().to_string(),
                ];
                let out = waypoint(args, &mesh, &extra).output().expect("spawn curl");
                let text = show(&out);
                assert!(out.status.success(), "{args:?}:\n{text}");
                // The comment starts with the status the README promises.
                let want = comment.split_whitespace().next().unwrap_or("");
                assert!(
                    want.len() == 3 && want.parse::<u16>().is_ok(),
                    "README curl line {args:?} has no '# STATUS ...' comment"
                );
                let got = text.lines().next().unwrap_or("");
                assert!(
                    got.starts_with(&format!("HTTP/1.1 {want}")),
                    "{args:?}: README says {comment:?}, got:\n{text}"
                );
                if want == "403" {
                    assert!(text.contains("RBAC: access denied"), "{text}");
                }
                if args.iter().any(|a| a == "--explain") {
                    let why = String::from_utf8_lossy(&out.stderr);
                    assert!(why.contains("* explain under"), "{why}");
                    let action = if want == "403" { "deny (403)" } else { "route" };
                    assert!(why.contains(action), "explain disagrees with {want}: {why}");
                }
                curls += 1;
            }
            other => panic!("README Try it runs an unexpected command: {other}"),
        }
    }
    assert!(curls >= 3, "the README shows allowed and denied requests");
    drop(running);
    let _ = std::fs::remove_dir_all(&mesh);
}

#[test]
fn words_split_like_a_shell() {
    let (w, c) = words("waypoint curl -H 'end-user: jason' http://a/  # 403 RBAC: x");
    assert_eq!(
        w,
        ["waypoint", "curl", "-H", "end-user: jason", "http://a/"]
    );
    assert_eq!(c, "403 RBAC: x");
}
