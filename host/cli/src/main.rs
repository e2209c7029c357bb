//! `waypoint`: the command-line entry point, commands only; each subcommand parses its flags
//! and calls the crate that does the work (proxy, envoy-config, devtools).

mod explain;

mod commands {
    pub mod analyze;
    pub mod args;
    pub mod bootstrap;
    pub mod ca_args;
    pub mod controller;
    pub mod curl;
    pub mod dev_ca;
    pub mod originate;
    pub mod proxy_config;
    pub mod run;
    pub mod waypoint;
    pub mod xds;
}

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: a proxy allocates and frees small buffers on every
/// request, and glibc's allocator was ~20% of the host's instructions per request
/// (callgrind, `benches/waypoint-bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "waypoint", version, about = "Istio ambient L7 waypoint")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the decision for one request under a config.
    Explain(explain::ExplainArgs),
    /// Create a local mesh CA and workload certificates with SPIFFE URI SANs.
    DevCa(commands::dev_ca::Args),
    /// Run the standalone HBONE waypoint.
    Run(Box<commands::run::Args>),
    /// Send one HTTP request through a waypoint over HBONE as a mesh workload.
    Curl(commands::curl::Args),
    /// Run bookinfo on loopback through the waypoint and summarise what happened.
    Demo(waypoint_devtools::demo::Args),
    /// Print a static Envoy bootstrap for the waypoint (HBONE in and out, our module).
    Bootstrap(commands::bootstrap::Args),
    /// Local HBONE originator for an Envoy bootstrap made with `bootstrap --originator`.
    Originate(commands::originate::Args),
    /// Serve the Envoy resources over ADS (SotW and delta xDS), pushing config changes.
    Xds(Box<commands::xds::Args>),
    /// Check a config for mistakes (istioctl analyze's messages and exit codes).
    Analyze(commands::analyze::Args),
    /// Deploy waypoints for Gateways of our GatewayClass and write their status (in-cluster).
    Controller(commands::controller::Args),
    /// Show the routes, clusters, endpoints, policies or certificates a running waypoint serves.
    ProxyConfig(commands::proxy_config::Args),
    /// Create a waypoint Gateway of our class (as `istioctl waypoint apply`).
    Apply(commands::waypoint::apply::Args),
    /// Delete waypoints and unlabel the namespaces that used them.
    Delete(commands::waypoint::delete::Args),
    /// List waypoints (our class and Istio's) with their Programmed status.
    List(commands::waypoint::list::Args),
    /// Readiness, bound services, attached routes and policies, certificate expiry.
    Status(commands::waypoint::status::Args),
}

/// Report a subcommand's error and map it to an exit code.
fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("waypoint: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Explain(args) => ExitCode::from(explain::run(args).clamp(0, 255) as u8),
        Command::Analyze(args) => commands::analyze::run(args),
        Command::DevCa(args) => exit(commands::dev_ca::main(args)),
        Command::Curl(args) => exit(commands::curl::main(args)),
        Command::Demo(args) => exit(waypoint_devtools::demo::main(args)),
        Command::Bootstrap(args) => exit(commands::bootstrap::main(args)),
        Command::Originate(args) => {
            waypoint_proxy::logging::init(false);
            exit(commands::originate::main(args))
        }
        Command::Xds(args) => {
            waypoint_proxy::logging::init(false);
            exit(commands::xds::main(*args))
        }
        Command::Controller(args) => {
            waypoint_proxy::logging::init(false);
            exit(commands::controller::main(args))
        }
        Command::ProxyConfig(args) => exit(commands::proxy_config::main(args)),
        Command::Apply(args) => exit(commands::waypoint::apply::main(args)),
        Command::Delete(args) => exit(commands::waypoint::delete::main(args)),
        Command::List(args) => exit(commands::waypoint::list::main(args)),
        Command::Status(args) => exit(commands::waypoint::status::main(args)),
        Command::Run(args) => {
            // The `access` target passes the filter: whether a request is logged is decided
            // per config generation (Telemetry API, `accessLogFile`, `--access-log`).
            waypoint_proxy::logging::init(true);
            exit(commands::run::main(*args))
        }
    }
}
