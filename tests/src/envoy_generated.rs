//! Real Envoy 1.40 on a bootstrap from the real generator (`bootstrap::generate`), moved onto
//! loopback ports, with either way of originating HBONE; and raw HTTP/1.1 exchanges over our
//! HBONE client that fail on any stream reset.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use waypoint_core::{BuildOptions, Snapshot};
use waypoint_envoy_config::bootstrap::{self, Options};
use waypoint_hbone::originate::Originator;
use waypoint_hbone::timeouts::Timeouts;
use waypoint_hbone::HboneClient;

use crate::echo::pattern;
use crate::envoy_harness::{free_port, parse_head, repo_root, scratch_dir, Envoy};
use crate::hbone_client::tunnel;
use crate::pki::{Pki, TempDir};

/// How the generated bootstrap reaches mesh endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Stock Envoy: a tcp_proxy with `tunneling_config` per pod (HTTP/2 CONNECT upstream).
    Envoy,
    /// Our local originator (`waypoint originate`), PROXY v2 from Envoy.
    Originator,
}

/// A running Envoy on a generated bootstrap (and the originator it needs); stopped on drop.
#[derive(Debug)]
pub struct GeneratedWaypoint {
    pub envoy: Envoy,
    /// The `connect_terminate` (:15008) listener, moved to loopback.
    pub hbone_addr: SocketAddr,
    /// The `stats` (:15020) and `readiness` (:15021) listeners, moved to loopback.
    pub stats_addr: SocketAddr,
    pub readiness_addr: SocketAddr,
    pub originator: Option<Originator>,
    pub bootstrap: PathBuf,
    _certs: TempDir,
}

/// Loopback ports the relocated bootstrap listens on.
#[derive(Debug, Default)]
struct Ports {
    admin: u16,
    terminate: u16,
    stats: u16,
    readiness: u16,
}

/// Move every listener and the admin interface to a free loopback port, and the pods' HBONE
/// port (15008 in a cluster) to `pod_hbone_port`.
fn relocate(boot: &mut Value, pod_hbone_port: u16) -> Ports {
    let admin = free_port();
    boot["admin"]["address"]["socket_address"]["port_value"] = admin.into();
    let mut ports = Ports {
        admin,
        ..Ports::default()
    };
    if let Some(ls) = boot["static_resources"]["listeners"].as_array_mut() {
        for l in ls {
            if l["address"]["socket_address"].is_object() {
                let port = free_port();
                match l["name"].as_str() {
                    Some("connect_terminate") => ports.terminate = port,
                    Some("stats") => ports.stats = port,
                    Some("readiness") => ports.readiness = port,
                    _ => {}
                }
                l["address"]["socket_address"] =
                    serde_json::json!({"address": "127.0.0.1", "port_value": port});
            }
        }
    }
    if let Some(cs) = boot["static_resources"]["clusters"].as_array_mut() {
        for c in cs {
            let name = c["name"].as_str().unwrap_or("").to_string();
            let port = if name.starts_with("hbone|") {
                pod_hbone_port
            } else if name == "prometheus_stats" {
                admin
            } else {
                continue;
            };
            if let Some(eps) = c["load_assignment"]["endpoints"][0]["lb_endpoints"].as_array_mut() {
                for e in eps {
                    e["endpoint"]["address"]["socket_address"]["port_value"] = port.into();
                }
            }
        }
    }
    ports
}

/// Write `yaml` as `config.yaml` in `dir`, load it as the module will (the directory is the
/// config path) and compile it; panics on any config error. Returns (config paths, snapshot).
pub fn write_config(dir: &Path, yaml: &str) -> (Vec<PathBuf>, Snapshot) {
    std::fs::write(dir.join("config.yaml"), yaml).expect("write config");
    let paths: Vec<PathBuf> = vec![dir.to_path_buf()];
    let loaded = waypoint_loader::load_paths(&paths, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let (snap, diags) = Snapshot::build(&loaded.resources, &BuildOptions::default());
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
    (paths, snap)
}

impl GeneratedWaypoint {
    /// `manifests` behind the waypoint Gateway, written to `dir`: no config warning allowed;
    /// Envoy started on the generated bootstrap (originator layout, pods' HBONE on 15008),
    /// which `envoy --mode validate` must accept too.
    pub async fn start_validated(pki: &Pki, dir: &TempDir, manifests: &str) -> GeneratedWaypoint {
        let yaml = format!("{}{manifests}", crate::waypoint::WAYPOINT_GATEWAY);
        let (paths, snap) = write_config(dir.path(), &yaml);
        assert!(
            snap.diagnostics.warnings.is_empty(),
            "{:?}",
            snap.diagnostics.warnings
        );
        let wp = Self::start(pki, &snap, &paths, Layout::Originator, 15008)
            .await
            .unwrap_or_else(|e| panic!("start Envoy on the generated bootstrap: {e}"));
        let out = crate::envoy_harness::validate(&wp.bootstrap, &repo_root());
        assert!(
            out.status.success(),
            "envoy --mode validate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wp
    }

    /// Generate the bootstrap for `snapshot` (its waypoint; the module loads `config_paths`),
    /// then start the originator (for [`Layout::Originator`]) and Envoy.
    pub async fn start(
        pki: &Pki,
        snapshot: &Snapshot,
        config_paths: &[PathBuf],
        layout: Layout,
        pod_hbone_port: u16,
    ) -> Result<GeneratedWaypoint, String> {
        Self::start_with(
            pki,
            snapshot,
            config_paths,
            layout,
            pod_hbone_port,
            Timeouts::default(),
        )
        .await
    }

    /// [`GeneratedWaypoint::start`] with the generator's `timeouts` (the `--*-timeout` flags).
    pub async fn start_with(
        pki: &Pki,
        snapshot: &Snapshot,
        config_paths: &[PathBuf],
        layout: Layout,
        pod_hbone_port: u16,
        timeouts: Timeouts,
    ) -> Result<GeneratedWaypoint, String> {
        let certs = TempDir::new("gen-certs");
        let issued = pki.issue("default", "waypoint");
        for (from, to) in [
            (&issued.cert, "waypoint.pem"),
            (&issued.key, "waypoint-key.pem"),
            (&issued.roots, "ca.pem"),
        ] {
            std::fs::copy(from, certs.path().join(to)).map_err(|e| e.to_string())?;
        }
        let originator = match layout {
            Layout::Envoy => None,
            Layout::Originator => Some(
                waypoint_hbone::originate::start(
                    "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
                    pki.store("default", "waypoint"),
                    pod_hbone_port,
                )
                .await
                .map_err(|e| e.to_string())?,
            ),
        };
        let waypoint = snapshot
            .waypoint
            .as_ref()
            .map(|w| format!("{}/{}", w.namespace, w.name))
            .ok_or("the snapshot has no waypoint")?;
        let opts = Options {
            waypoint,
            config_paths: config_paths
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            certs: waypoint_hbone::tls::CertPaths::find(certs.path()).map_err(|e| e.to_string())?,
            module_name: "waypoint".into(),
            trust_domain: pki.trust_domain.clone(),
            originator: originator.as_ref().map(|o| o.addr),
            // Shown by `log_tail` when a test fails.
            access_log: true,
            timeouts,
            filter: Default::default(),
        };
        let mut boot = bootstrap::generate(snapshot, &opts);
        let ports = relocate(&mut boot, pod_hbone_port);
        let dir = scratch_dir("generated");
        let path = dir.join("bootstrap.yaml");
        let text = serde_yaml::to_string(&boot).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        // Started from the calling thread (the test's own, which outlives Envoy): Envoy gets
        // SIGTERM when the thread that spawned it exits (a `spawn_blocking` thread idles out
        // after 10 s). This blocks the caller until Envoy is ready.
        let envoy = Envoy::start(&path, ports.admin, &repo_root())?;
        let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        Ok(GeneratedWaypoint {
            envoy,
            hbone_addr: local(ports.terminate),
            stats_addr: local(ports.stats),
            readiness_addr: local(ports.readiness),
            originator,
            bootstrap: path,
            _certs: certs,
        })
    }

    /// The last `n` lines of Envoy's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.envoy.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// One HTTP/1.1 exchange as the client saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Exchange {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse a complete HTTP/1.1 response (content-length, chunked, or to EOF).
pub fn parse_response(raw: &[u8]) -> Result<Exchange, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {} bytes", raw.len()))?;
    let (status, headers) = parse_head(&String::from_utf8_lossy(&raw[..end]))?;
    let rest = &raw[end + 4..];
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let body = if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(n) = get("content-length") {
        let n: usize = n.parse().map_err(|_| format!("bad content-length {n}"))?;
        if rest.len() != n {
            return Err(format!("body of {} bytes, content-length {n}", rest.len()));
        }
        rest.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Exchange {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = s
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line missing (truncated)")?;
        let size_text = String::from_utf8_lossy(&s[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        s = &s[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if s.len() < size + 2 {
            return Err(format!("chunk of {size} bytes truncated at {}", s.len()));
        }
        out.extend_from_slice(&s[..size]);
        s = &s[size + 2..];
    }
}

/// Bytes of a complete response at the start of `raw`, once known (content-length, chunked
/// end, or a bodiless status).
fn complete_len(raw: &[u8]) -> Option<usize> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    for line in head.split("\r\n") {
        if let Some(v) = line.strip_prefix("content-length:") {
            let n: usize = v.trim().parse().ok()?;
            return (raw.len() >= end + n).then_some(end + n);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return raw.ends_with(b"0\r\n\r\n").then_some(raw.len());
        }
    }
    let status = head.split_whitespace().nth(1)?;
    (status.starts_with('1') || status == "204" || status == "304").then_some(end)
}

/// Open a tunnel to `authority` through the waypoint and send one HTTP/1.1 request (with
/// `upload` generated body bytes); read the response; then close like a client app behind
/// ztunnel does: END_STREAM, and read the waypoint's END_STREAM. Any stream error (a reset)
/// on the way is an `Err`.
pub async fn exchange(
    client: &HboneClient,
    waypoint: SocketAddr,
    authority: &str,
    method: &str,
    path: &str,
    upload: u64,
) -> Result<Exchange, String> {
    let stream = tunnel(client, waypoint, &[], authority)
        .await
        .map_err(|e| format!("CONNECT {authority}: {e}"))?;
    let (mut r, mut w) = tokio::io::split(stream);
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {authority}\r\n");
    if upload > 0 || method == "POST" {
        head.push_str(&format!("content-length: {upload}\r\n"));
    }
    head.push_str("\r\n");
    let writer = tokio::spawn(async move {
        w.write_all(head.as_bytes()).await?;
        let mut off = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        while off < upload {
            let n = (buf.len() as u64).min(upload - off) as usize;
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern(off + i as u64);
            }
            w.write_all(&buf[..n]).await?;
            off += n as u64;
        }
        Ok::<_, std::io::Error>(w)
    });
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    // Once the head is in: the full length (content-length) or None (chunked / to EOF).
    let mut known: Option<Option<usize>> = None;
    let complete = loop {
        match known {
            Some(Some(n)) if raw.len() >= n => break n,
            Some(None) | None => {
                if let Some(n) = complete_len(&raw) {
                    break n;
                }
                if known.is_none() && raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
                    known = Some(
                        head.split("\r\n")
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .map(|n| head_end + n),
                    );
                    continue;
                }
            }
            Some(Some(_)) => {}
        }
        match r.read(&mut buf).await {
            Ok(0) => break raw.len(),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => {
                return Err(format!(
                    "stream reset while reading the response ({} bytes read): {e}",
                    raw.len()
                ))
            }
        }
    };
    let w = writer
        .await
        .map_err(|e| format!("writer: {e}"))?
        .map_err(|e| format!("stream reset while sending ({} bytes read): {e}", raw.len()))?;
    let mut stream = r.unsplit(w);
    stream
        .shutdown()
        .await
        .map_err(|e| format!("stream reset before our END_STREAM: {e}"))?;
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .await
        .map_err(|e| format!("stream reset instead of END_STREAM after the response: {e}"))?;
    if !rest.is_empty() || complete != raw.len() {
        return Err(format!(
            "{} unexpected bytes after the response",
            rest.len() + raw.len() - complete
        ));
    }
    parse_response(&raw)
}

/// `Arc` of a client for `ns/sa` of `pki`.
pub fn client(pki: &Pki, ns: &str, sa: &str) -> Arc<HboneClient> {
    HboneClient::new(pki.store(ns, sa))
}
