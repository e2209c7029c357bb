//! Start the standalone waypoint in-process: certificates, config (watched), the HBONE
//! listener, and the admin listeners; the handle drains ([`Running::shutdown`]) or, dropped,
//! stops everything at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use waypoint_hbone::server::ServeOptions;
use waypoint_hbone::tls::{certs, config::server_config, CertPaths, CertStore};
use waypoint_hbone::HboneClient;
use waypoint_sources::watch;

use crate::admin::{self, Admin, Role};
use crate::config::{ConfigSource, ConfigStore};
use crate::connect::handler::WaypointHandler;
use crate::policy::options::PolicyOptions;
use crate::telemetry::metrics::Metrics;
use crate::upstream::Upstreams;
use crate::Shared;

/// Istio's default `terminationDrainDuration`: how long in-flight streams may run on after
/// SIGTERM.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// Everything `waypoint run` needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Manifest files or directories. Empty: the config comes from elsewhere (the Kubernetes
    /// API server) through `ConfigStore::reload_resources` with [`Running::policy_options`];
    /// no files are read or watched.
    pub config_paths: Vec<PathBuf>,
    /// Namespace for resources without one.
    pub default_namespace: String,
    /// `namespace/name` of the waypoint Gateway this host serves.
    pub waypoint: Option<String>,
    pub certs: CertSource,
    /// HBONE listener (`0.0.0.0:15008` in a cluster).
    pub hbone_addr: SocketAddr,
    /// Readiness listener (`:15021`), stats (`:15020`), admin (`:15000`); `None` disables.
    pub ready_addr: Option<SocketAddr>,
    pub stats_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    /// Port mesh endpoints accept HBONE on.
    pub hbone_upstream_port: u16,
    /// How often config and certificate files are checked for changes.
    pub watch_interval: Duration,
    /// Listener, stream and relay timeouts.
    pub timeouts: waypoint_hbone::timeouts::Timeouts,
    /// `Upgrade` types forwarded inside tunnels (default `websocket`, as Istio configures).
    pub upgrades: Vec<String>,
    /// How often a `jwksUri` key set is fetched again (Istio's
    /// `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`, 20 min).
    pub jwks_refresh: Duration,
    /// Access log when neither the Telemetry API nor MeshConfig `accessLogFile` decides.
    pub access_log: bool,
}

/// Where the waypoint's certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// Files, polled every `watch_interval` and reloaded on change.
    Files(CertPaths),
    /// A live store kept fresh by its owner (Istio's CA client); used as is.
    Store(Arc<CertStore>),
}

impl From<CertPaths> for CertSource {
    fn from(paths: CertPaths) -> Self {
        CertSource::Files(paths)
    }
}

impl RunOptions {
    /// Defaults for a cluster: Istio's ports on all interfaces, the admin (`/config_dump`) on
    /// loopback only (as Envoy's admin in an Istio proxy).
    pub fn new(config_paths: Vec<PathBuf>, certs: impl Into<CertSource>) -> Self {
        let any = |p| SocketAddr::from(([0, 0, 0, 0], p));
        let lo = |p| SocketAddr::from(([127, 0, 0, 1], p));
        RunOptions {
            config_paths,
            default_namespace: "default".into(),
            waypoint: None,
            certs: certs.into(),
            hbone_addr: any(15008),
            ready_addr: Some(any(15021)),
            stats_addr: Some(any(15020)),
            admin_addr: Some(lo(15000)),
            hbone_upstream_port: 15008,
            watch_interval: Duration::from_secs(1),
            timeouts: Default::default(),
            upgrades: vec!["websocket".to_string()],
            jwks_refresh: Duration::from_secs(20 * 60),
            access_log: false,
        }
    }

    /// Ephemeral ports on 127.0.0.1 for every listener (tests).
    pub fn loopback(mut self) -> Self {
        let lo = SocketAddr::from(([127, 0, 0, 1], 0));
        self.hbone_addr = lo;
        self.ready_addr = Some(lo);
        self.stats_addr = Some(lo);
        self.admin_addr = Some(lo);
        self
    }
}

/// A running waypoint; dropping it stops every task at once, [`Running::shutdown`] drains.
#[derive(Debug)]
pub struct Running {
    pub hbone_addr: SocketAddr,
    pub ready_addr: Option<SocketAddr>,
    pub stats_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub admin: Arc<Admin>,
    pub config: Arc<ConfigStore>,
    pub certs: Arc<CertStore>,
    /// How config is compiled (the waypoint, trust domain, HBONE port): what a config source
    /// other than files passes to `ConfigStore::reload_resources`.
    pub policy_options: PolicyOptions,
    shutdown: signal::Sender<bool>,
    shared: Arc<Shared>,
    hbone: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in self.tasks.iter().chain(&self.hbone) {
            t.abort();
        }
    }
}

impl Running {
    /// Graceful stop, as an Istio proxy on SIGTERM: readiness turns 503, the HBONE listener
    /// closes (new connections are refused), every HTTP/2 connection gets a GOAWAY, and
    /// in-flight streams may finish for up to `drain`; then everything stops. Returns whether
    /// every connection had closed by itself within `drain`.
    pub async fn shutdown(mut self, drain: Duration) -> bool {
        info!(?drain, "shutdown: draining");
        self.admin.start_draining();
        self.shared.proxy.drain.start();
        let _ = self.shutdown.send(true);
        let drained = match self.hbone.take() {
            Some(task) => {
                let abort = task.abort_handle();
                let done = tokio::time::timeout(drain, task).await.is_ok();
                abort.abort();
                done
            }
            None => true,
        };
        if drained {
            info!("shutdown: every connection closed");
        } else {
            warn!(
                ?drain,
                "shutdown: drain period over; closing the remaining connections"
            );
        }
        drained
    }

    /// Whether shutdown has started.
    pub fn draining(&self) -> bool {
        *self.shutdown.borrow()
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} listener on {addr}"))
}

/// Start the waypoint on the current tokio runtime.
pub async fn start(opts: RunOptions) -> anyhow::Result<Running> {
    if let Some(w) = &opts.waypoint {
        waypoint_core::NamespacedName::parse(w).map_err(|e| anyhow::anyhow!("waypoint {e}"))?;
    }
    // Baselines for the watchers, taken before the first read so no change is missed.
    let cert_files = match &opts.certs {
        CertSource::Files(paths) => {
            let watched: Vec<_> = paths.all().iter().map(|p| p.to_path_buf()).collect();
            Some((paths.clone(), watch::fingerprint(&watched), watched))
        }
        CertSource::Store(_) => None,
    };
    let config_seen = watch::fingerprint(&opts.config_paths);
    let store = match &opts.certs {
        CertSource::Files(paths) => {
            let store = CertStore::new(certs::load(paths)?)?;
            info!(identity = %store.identity(), "certificates loaded");
            store
        }
        CertSource::Store(store) => store.clone(),
    };
    let identity = store.identity();

    let config = ConfigStore::new();
    let source = ConfigSource {
        paths: opts.config_paths.clone(),
        default_namespace: opts.default_namespace.clone(),
        options: PolicyOptions {
            waypoint: opts.waypoint.clone(),
            trust_domain: identity.trust_domain.clone(),
            hbone_port: opts.hbone_upstream_port,
        },
    };
    let external = opts.config_paths.is_empty();
    if external {
        info!("no config files: waiting for config from the API server");
    } else if !config.reload(&source) {
        warn!("initial config rejected; not ready until a valid config is written");
    }

    let metrics = Arc::new(Metrics::new());
    let admin = Arc::new(Admin::new(config.clone(), store.clone(), metrics.clone()));
    let shared = Arc::new(Shared {
        jwks: Arc::new(crate::jwks::JwksCache::new(opts.jwks_refresh)),
        config: config.clone(),
        upstreams: {
            let u = Upstreams::with_idle_timeout(
                HboneClient::new(store.clone()),
                waypoint_hbone::timeouts::Timeouts::enabled(opts.timeouts.upstream_idle),
            );
            u.spawn_idle_sweeper();
            u
        },
        metrics,
        request_metrics: Default::default(),
        outliers: crate::upstream::outlier::Outliers::new(),
        active: Default::default(),
        timeouts: opts.timeouts,
        proxy: crate::connect::guard::ProxyOptions {
            upgrades: opts
                .upgrades
                .iter()
                .map(|u| u.to_ascii_lowercase())
                .collect(),
            ..Default::default()
        },
        ratelimit: Default::default(),
        tracer: Default::default(),
        access_log: opts.access_log,
    });

    let mut tasks = Vec::new();
    let (shutdown, shutdown_rx) = signal::channel(false);
    let hbone_listener = bind(opts.hbone_addr, "HBONE").await?;
    let hbone_addr = hbone_listener.local_addr()?;
    let handler = Arc::new(WaypointHandler {
        shared: shared.clone(),
    });
    let hbone_task = tokio::spawn(waypoint_hbone::server::serve_with(
        hbone_listener,
        server_config(store.clone())?,
        handler,
        ServeOptions {
            timeouts: opts.timeouts,
            shutdown: shutdown_rx,
        },
    ));
    info!(addr = %hbone_addr, "HBONE listener up");

    // Each admin port has its own router (see `admin::Role`); they stay up while draining so
    // readiness can report 503.
    let header_timeout = opts.timeouts.request_headers;
    let admin_listener = |addr: Option<SocketAddr>, role: Role| {
        let admin = admin.clone();
        async move {
            match addr {
                None => Ok::<_, anyhow::Error>((None, None)),
                Some(a) => {
                    let what = match role {
                        Role::Ready => "readiness",
                        Role::Stats => "stats",
                        Role::Admin => "admin",
                    };
                    let l = bind(a, what).await?;
                    let local = l.local_addr()?;
                    info!(addr = %local, what, "admin listener up");
                    let task = tokio::spawn(admin::serve(l, admin, role, header_timeout));
                    Ok((Some(local), Some(task)))
                }
            }
        }
    };
    let (ready_addr, t1) = admin_listener(opts.ready_addr, Role::Ready).await?;
    let (stats_addr, t2) = admin_listener(opts.stats_addr, Role::Stats).await?;
    let (admin_addr, t3) = admin_listener(opts.admin_addr, Role::Admin).await?;
    tasks.extend([t1, t2, t3].into_iter().flatten());
    // Tunnels to the waypoint's own listeners are refused (HBONE first: see proxy::guard).
    shared.proxy.set_listeners(
        std::iter::once(hbone_addr)
            .chain([ready_addr, stats_addr, admin_addr].into_iter().flatten())
            .collect(),
    );

    // Watchers. The reload closures read files, parse and compile: `watch::poll` runs them
    // on the blocking pool, so traffic keeps flowing during a reload even with `--threads 1`.
    let cfg = config.clone();
    let policy_options = source.options.clone();
    if !external {
        tasks.push(tokio::spawn(watch::poll(
            opts.config_paths.clone(),
            config_seen,
            opts.watch_interval,
            move || {
                info!("config files changed; reloading");
                cfg.reload(&source);
            },
        )));
    }
    if let Some((cert_files, certs_seen, watched)) = cert_files {
        let cert_store = store.clone();
        tasks.push(tokio::spawn(watch::poll(
            watched,
            certs_seen,
            opts.watch_interval,
            move || match certs::load(&cert_files).and_then(|m| cert_store.replace(m)) {
                Ok(()) => info!(identity = %cert_store.identity(), "certificates reloaded"),
                Err(e) => warn!(error = %format!("{e:#}"), "certificate reload failed; keeping the previous ones"),
            },
        )));
    }

    Ok(Running {
        hbone_addr,
        ready_addr,
        stats_addr,
        admin_addr,
        admin,
        config,
        certs: store,
        policy_options,
        shutdown,
        shared,
        hbone: Some(hbone_task),
        tasks,
    })
}
