//! `waypoint bootstrap`: load the config, build the snapshot, print a static Envoy bootstrap.
//! Config errors are reported on stderr and fail the command (no half-right bootstrap).
//! RequestAuthentication `jwksUri` sets stay `remote_jwks` here (Envoy fetches them, cached
//! 20 min); `waypoint xds` fetches and inlines them as istiod does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use waypoint_envoy_config::bootstrap::{
    from_config, inline_manifests, load, render, Inputs, PolicyFilter,
};
use waypoint_hbone::tls::CertPaths;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Manifest file or directory (repeatable); passed to the module as given.
    #[arg(long = "config", required = true)]
    pub config: Vec<PathBuf>,
    /// Waypoint Gateway as NS/NAME (optional when the config holds exactly one).
    #[arg(long, value_name = "NS/NAME", value_parser = super::args::waypoint_name)]
    pub waypoint: Option<String>,
    /// The waypoint's certificate files, checked to exist (not needed with `--xds`: the
    /// certificates then come from `waypoint xds` over SDS).
    #[command(flatten)]
    pub certs: super::args::CertArgs,
    /// The certificate files exist only where Envoy runs (a container mount): write the
    /// `--cert`/`--key`/`--roots` paths, else Istio's names in `--certs`, without checking.
    #[arg(long)]
    pub unchecked_certs: bool,
    #[command(flatten)]
    pub generator: GeneratorArgs,
    /// Write the minimal bootstrap that gets everything from `waypoint xds` at ADDR.
    #[arg(long, value_name = "ADDR")]
    pub xds: Option<SocketAddr>,
    /// With --xds: use delta ADS (DELTA_GRPC) instead of state-of-the-world.
    #[arg(long, requires = "xds")]
    pub delta: bool,
    /// The filter that runs the policy core: `module` (libwaypoint.so) or `wasm` (the
    /// proxy-wasm filter on Envoy's V8 runtime, with the manifests inline).
    #[arg(long, value_enum, default_value = "module", conflicts_with = "xds")]
    pub filter: FilterKind,
    /// With --filter wasm: the waypoint_wasm.wasm file as Envoy will see it.
    #[arg(long, value_name = "FILE", default_value = "waypoint_wasm.wasm")]
    pub wasm: PathBuf,
}

/// `--filter`: which filter runs the policy core.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterKind {
    Module,
    Wasm,
}

/// Generator options shared by `waypoint bootstrap` and `waypoint xds`.
#[derive(ClapArgs, Debug)]
pub struct GeneratorArgs {
    /// Path of the module (lib<name>.so); only its name is used, its directory must be on
    /// $ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
    #[arg(long)]
    pub module: Option<PathBuf>,
    /// SPIFFE trust domain.
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
    /// Namespace for resources without metadata.namespace.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Reach mesh endpoints through the local HBONE originator at this address
    /// (`waypoint originate --listen ADDR`, run next to Envoy) instead of Envoy's own HTTP/2
    /// tunnelling, which resets upstream streams with `Connection: close` backends.
    #[arg(long, value_name = "ADDR")]
    pub originator: Option<SocketAddr>,
    /// Write an Envoy access log line per request (stdout): off by default, as in Istio.
    #[arg(long)]
    pub access_log: bool,
    #[command(flatten)]
    pub timeouts: waypoint_hbone::timeouts::Timeouts,
}

impl GeneratorArgs {
    /// The generator's inputs for these options and the command's config, waypoint and certs.
    pub fn inputs(
        self,
        config: Vec<PathBuf>,
        waypoint: Option<String>,
        certs: CertPaths,
    ) -> anyhow::Result<Inputs> {
        Ok(Inputs {
            config,
            root: PathBuf::from("."),
            namespace: self.namespace,
            waypoint,
            certs,
            module_name: module_name(self.module.as_ref())?,
            trust_domain: self.trust_domain,
            originator: self.originator,
            access_log: self.access_log,
            timeouts: self.timeouts,
        })
    }
}

pub fn module_name(path: Option<&PathBuf>) -> anyhow::Result<String> {
    let Some(p) = path else {
        return Ok("waypoint".to_string());
    };
    let file = p
        .file_name()
        .and_then(|f| f.to_str())
        .with_context(|| format!("--module {}: no file name", p.display()))?;
    match file.strip_prefix("lib").and_then(|f| f.strip_suffix(".so")) {
        Some(n) if !n.is_empty() => Ok(n.to_string()),
        _ => bail!("--module {}: expected lib<name>.so", p.display()),
    }
}

/// The certificate files the bootstrap names: checked unless `--unchecked-certs`; with `--xds`
/// none are written, so none are needed.
fn cert_paths(args: &Args) -> anyhow::Result<CertPaths> {
    if args.xds.is_some() && !args.certs.given() {
        return Ok(CertPaths::from_dir(Path::new("/etc/waypoint/certs")));
    }
    let paths = match args.unchecked_certs || args.xds.is_some() {
        true => args.certs.unchecked()?,
        false => args.certs.resolve()?,
    };
    Ok(paths)
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let certs = cert_paths(&args)?;
    let inputs = args.generator.inputs(args.config, args.waypoint, certs)?;
    match args.xds {
        Some(addr) => print!(
            "{}",
            waypoint_envoy_config::xds::render_bootstrap(&inputs, addr, args.delta)?
        ),
        None if args.filter == FilterKind::Wasm => {
            let mut l = load(&inputs)?;
            l.options.filter = PolicyFilter::Wasm {
                file: args.wasm.display().to_string(),
                manifests: inline_manifests(&l.files)?,
                default_namespace: inputs.namespace.clone(),
            };
            print!("{}", render(&l.snapshot, &l.options)?)
        }
        None => print!("{}", from_config(&inputs)?),
    }
    if let Some(addr) = inputs.originator {
        eprintln!(
            "waypoint bootstrap: run the originator next to Envoy: waypoint originate --listen {addr} {}",
            inputs.certs.flags()
        );
    }
    Ok(())
}
