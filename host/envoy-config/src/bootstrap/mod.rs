//! `waypoint bootstrap`: a complete static Envoy 1.40 bootstrap shaped like Istio's waypoint
//! (HBONE in on :15008, our module on an internal L7 listener, HBONE or plaintext out).

pub mod clusters;
pub mod ext_authz;
pub mod hardening;
pub mod jwt_authn;
pub mod listeners;
pub mod ratelimit;
pub mod sidecar_tls;
pub mod telemetry;
pub mod traffic_policy;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;

use serde_json::{json, Value};
use waypoint_core::{BuildOptions, NamespacedName, Snapshot};

use clusters::{internal_upstream_socket, Target};
use listeners::{BUFFER_LIMIT, MAIN_INTERNAL};

use waypoint_hbone::timeouts::Timeouts;
use waypoint_hbone::tls::CertPaths;

/// What the bootstrap needs besides the snapshot.
#[derive(Debug, Clone)]
pub struct Options {
    /// `namespace/name` of the waypoint (passed to the module).
    pub waypoint: String,
    /// Config paths the module loads (as Envoy will see them).
    pub config_paths: Vec<String>,
    /// The waypoint's chain, key and mesh roots, as Envoy will see them.
    pub certs: CertPaths,
    /// Module name: Envoy loads `lib<name>.so` from `$ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
    pub module_name: String,
    /// SPIFFE trust domain of the mesh.
    pub trust_domain: String,
    /// Where mesh endpoints are reached: `None` tunnels from Envoy itself (a tcp_proxy with
    /// `tunneling_config` per pod); `Some("127.0.0.1:15009")` hands each upstream connection to
    /// our local originator (`waypoint originate`) with a PROXY v2 header naming the pod.
    pub originator: Option<SocketAddr>,
    /// Write an access log line per request on the L7 listener (stdout). Off by default, as in
    /// Istio (`meshConfig.accessLogFile` is empty unless set): formatting a line per request
    /// costs CPU on every request.
    pub access_log: bool,
    /// Handshake, header, stream, connection, TCP relay and upstream pool timeouts of every
    /// listener and cluster (the same flags as `waypoint run`).
    pub timeouts: Timeouts,
    /// Which filter runs the policy core on the L7 listener (`waypoint bootstrap --filter`).
    pub filter: PolicyFilter,
}

/// The HTTP filter that runs the policy core.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PolicyFilter {
    /// The dynamic module (`lib<module_name>.so`), reading `config_paths` itself.
    #[default]
    Module,
    /// The proxy-wasm filter (filter/wasm) on Envoy's V8 runtime: a Wasm VM has no file
    /// system, so the manifests travel inline in its plugin configuration.
    Wasm {
        /// The `.wasm` file as Envoy will see it.
        file: String,
        /// Every manifest, as one multi-document YAML text.
        manifests: String,
        /// Namespace for resources without one.
        default_namespace: String,
    },
}

/// The manifests of `files` as one multi-document YAML text (for `PolicyFilter::Wasm`).
pub fn inline_manifests(files: &[PathBuf]) -> anyhow::Result<String> {
    let mut out = String::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        out.push_str("---\n");
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// The `envoy.filters.http.wasm` entry running `file` on V8 with `configuration` (the
/// plugin configuration: JSON text) as its plugin configuration.
pub fn wasm_http_filter(file: &str, configuration: &str) -> Value {
    json!({"name": "waypoint", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": "waypoint",
            "root_id": "waypoint",
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": configuration},
            "vm_config": {
                "vm_id": "waypoint",
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": file}}}}}})
}

impl Default for Options {
    fn default() -> Self {
        Options {
            waypoint: "default/waypoint".into(),
            config_paths: Vec::new(),
            certs: CertPaths::from_dir(Path::new("/etc/waypoint/certs")),
            module_name: "waypoint".into(),
            trust_domain: "cluster.local".into(),
            originator: None,
            access_log: false,
            timeouts: Timeouts::default(),
            filter: PolicyFilter::Module,
        }
    }
}

impl Options {
    /// The chain, key and roots file names written into the bootstrap.
    pub fn cert_files(&self) -> [String; 3] {
        self.certs.all().map(|p| p.display().to_string())
    }
}

/// The bootstrap as a JSON value (object keys come out sorted, so the output is deterministic).
pub fn generate(snapshot: &Snapshot, o: &Options) -> Value {
    // The Telemetry API may turn the access log on or off.
    let o = &telemetry::effective_options(o, snapshot);
    let plans = clusters::plan(snapshot, &o.trust_domain);
    // Every distinct mesh pod/target port gets an originating listener; every pod a cluster
    // (HBONE from Envoy, or the local originator with the pod in the PROXY header).
    let mesh: BTreeSet<Target> = plans
        .iter()
        .flat_map(|p| p.targets.iter())
        .filter(|t| t.mesh)
        .cloned()
        .collect();
    let via = o.originator;
    let paths = snapshot.mesh().path_normalization;
    let tcp_idle = o.timeouts.tcp_idle;
    let mut main = listeners::main_internal(o, paths);
    ext_authz::wire(&mut main, snapshot);
    for note in ratelimit::wire(&mut main, snapshot) {
        tracing::warn!("rate limit: {note}");
    }
    jwt_authn::wire(&mut main, snapshot);
    telemetry::wire(&mut main, snapshot);
    let mut listeners = vec![listeners::connect_terminate(o, paths), main];
    listeners.extend(mesh.iter().map(|t| match via {
        Some(_) => listeners::connect_originate_local(t, tcp_idle),
        None => listeners::connect_originate(t, tcp_idle),
    }));
    listeners.push(listeners::readiness(&o.timeouts));
    listeners.push(listeners::stats(&o.timeouts));

    let mut cluster_list = vec![
        json!({
            "name": MAIN_INTERNAL,
            "type": "STATIC",
            "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
            "load_assignment": {"cluster_name": MAIN_INTERNAL, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"envoy_internal_address": {"server_listener_name": MAIN_INTERNAL}}}}]}]},
            "transport_socket": internal_upstream_socket(),
        }),
        json!({
            "name": "prometheus_stats",
            "type": "STATIC",
            "load_assignment": {"cluster_name": "prometheus_stats", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}}}]}]},
        }),
    ];
    let mut seen_pods = BTreeSet::new();
    for t in &mesh {
        if seen_pods.insert(t.ip) {
            cluster_list.push(match via {
                Some(addr) => clusters::originator_cluster(addr, t),
                None => listeners::hbone_cluster(o, t),
            });
        }
    }
    cluster_list.extend(plans.iter().map(|p| {
        let mut c = clusters::outbound_cluster_via(p, via.is_some());
        sidecar_tls::apply(&mut c, p, o);
        c
    }));
    // Workload-addressed requests (a pod IP): to that pod and port, no service route.
    let pods: BTreeSet<&Target> = plans.iter().flat_map(|p| p.targets.iter()).collect();
    cluster_list.extend(clusters::passthrough_plans(pods).iter().map(|p| {
        let mut c = clusters::outbound_cluster_via(p, via.is_some());
        sidecar_tls::apply(&mut c, p, o);
        c
    }));
    cluster_list.extend(jwt_authn::clusters(snapshot));
    cluster_list.extend(telemetry::clusters(snapshot));
    cluster_list.extend(ext_authz::provider_clusters(
        snapshot,
        &plans,
        via.is_some(),
    ));
    ratelimit::clusters(&mut cluster_list, snapshot);
    // Every HTTP upstream pool closes connections idle for `upstream_idle`. The internal
    // connection to main_internal and the originator's carry raw TCP (tcp_proxy / CONNECT).
    for c in &mut cluster_list {
        let name = c["name"].as_str().unwrap_or("");
        if name != MAIN_INTERNAL && !name.starts_with("originate|") {
            hardening::pool_idle(c, &o.timeouts);
        }
    }

    json!({
        "node": {"id": format!("waypoint~{}", o.waypoint), "cluster": o.waypoint},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
        "bootstrap_extensions": [{"name": "envoy.bootstrap.internal_listener", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener",
            "buffer_size_kb": 64}}],
        "static_resources": {"listeners": listeners, "clusters": cluster_list},
        "layered_runtime": metrics_runtime(),
    })
}

/// Envoy 1.40 prefixes module metrics with `envoy_<metrics_namespace>_` in Prometheus output
/// unless this runtime flag makes it register the namespace as a custom stat namespace, which
/// the output strips: then the module's counter reads `istio_requests_total{...}`, as Istio's
/// proxies report it (docs/telemetry.md).
pub fn metrics_runtime() -> Value {
    json!({"layers": [{"name": "waypoint", "static_layer": {
        "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix": true}}]})
}

/// The bootstrap as YAML with a header comment.
pub fn render(snapshot: &Snapshot, o: &Options) -> anyhow::Result<String> {
    let body = serde_yaml::to_string(&generate(snapshot, o))?;
    let run_next = match &o.originator {
        Some(addr) => format!(
            "# Mesh endpoints are reached through {}\n",
            originator_command(o, *addr)
        ),
        None => String::new(),
    };
    let loads = match &o.filter {
        PolicyFilter::Module => format!(
            "Envoy loads lib{}.so from $ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
            o.module_name
        ),
        PolicyFilter::Wasm { file, .. } => format!("Envoy runs {file} on its V8 Wasm runtime"),
    };
    Ok(format!(
        "# Generated by `waypoint bootstrap` for waypoint {w}; do not edit.\n\
         # {loads}; certificates: {c}.\n{run_next}{body}",
        w = o.waypoint,
        c = o.cert_files().join(", "),
    ))
}

/// The command that runs the local HBONE originator this bootstrap expects next to Envoy.
pub fn originator_command(o: &Options, addr: SocketAddr) -> String {
    format!(
        "`waypoint originate --listen {addr} {}` (run it next to Envoy).",
        o.certs.flags()
    )
}

/// Everything `waypoint bootstrap` takes; `config` paths are written into the bootstrap as
/// given and read relative to `root`.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub config: Vec<PathBuf>,
    pub root: PathBuf,
    pub namespace: String,
    /// `NS/NAME`; `None` when the config holds exactly one waypoint.
    pub waypoint: Option<String>,
    /// The waypoint's chain, key and roots as Envoy will see them (`xds` reads them relative
    /// to `root` and serves them over SDS).
    pub certs: CertPaths,
    pub module_name: String,
    pub trust_domain: String,
    /// See [`Options::originator`].
    pub originator: Option<SocketAddr>,
    /// Write an access log line per request on the L7 listener (stdout). Off by default, as in
    /// Istio (`meshConfig.accessLogFile` is empty unless set): formatting a line per request
    /// costs CPU on every request.
    pub access_log: bool,
    /// See [`Options::timeouts`].
    pub timeouts: Timeouts,
}

impl Inputs {
    /// The repository's `examples/bookinfo` with the committed test certificates (tests).
    #[cfg(test)]
    pub(crate) fn bookinfo_example() -> Inputs {
        Inputs {
            config: vec![PathBuf::from("examples/bookinfo")],
            root: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."),
            namespace: "default".into(),
            waypoint: None,
            certs: CertPaths {
                cert: "envoy-configs/certs/waypoint.pem".into(),
                key: "envoy-configs/certs/waypoint-key.pem".into(),
                roots: "envoy-configs/certs/ca.pem".into(),
            },
            module_name: "waypoint".into(),
            trust_domain: "cluster.local".into(),
            originator: None,
            access_log: false,
            timeouts: waypoint_hbone::timeouts::Timeouts::default(),
        }
    }
}

/// Load the config, build the snapshot and render the bootstrap. Config errors fail the
/// whole run (each is listed), so a bootstrap is never generated from a partial config.
pub fn from_config(i: &Inputs) -> anyhow::Result<String> {
    let l = load(i)?;
    render(&l.snapshot, &l.options)
}

/// A validated config: the snapshot, the generator options and the files it was read from.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: Snapshot,
    pub options: Options,
    pub files: Vec<PathBuf>,
}

/// Load and validate the config (shared by `waypoint bootstrap` and `waypoint xds`).
pub fn load(i: &Inputs) -> anyhow::Result<Loaded> {
    let waypoint = i
        .waypoint
        .as_deref()
        .map(NamespacedName::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--waypoint {e}"))?;
    let paths: Vec<PathBuf> = i.config.iter().map(|p| i.root.join(p)).collect();
    let loaded = waypoint_loader::load_paths(&paths, &i.namespace);
    let opts = BuildOptions {
        waypoint: waypoint.map(NamespacedName::into_pair),
        ..Default::default()
    };
    let (snapshot, diags) = loaded.build(&opts);
    if !diags.errors.is_empty() {
        let list: Vec<String> = diags.errors.iter().map(|e| e.to_string()).collect();
        bail!("{} config error(s):\n  {}", list.len(), list.join("\n  "));
    }
    let Some(w) = &snapshot.waypoint else {
        bail!("no waypoint Gateway found in the config (use --waypoint NS/NAME)");
    };
    let o = Options {
        waypoint: format!("{}/{}", w.namespace, w.name),
        config_paths: i.config.iter().map(|p| p.display().to_string()).collect(),
        certs: i.certs.clone(),
        module_name: i.module_name.clone(),
        trust_domain: i.trust_domain.clone(),
        originator: i.originator,
        access_log: i.access_log,
        timeouts: i.timeouts,
        filter: PolicyFilter::Module,
    };
    Ok(Loaded {
        snapshot,
        options: o,
        files: loaded.files,
    })
}
