//! `waypoint`: the command-line entry point, one module per subcommand under `commands/`.
//! Subcommands: `dev-ca` (local mesh CA), `run` (the standalone HBONE waypoint).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands {
    pub mod dev_ca;
    pub mod run;
}

#[derive(Parser, Debug)]
#[command(name = "waypoint", version, about = "Istio ambient L7 waypoint")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a local mesh CA and workload certificates with SPIFFE URI SANs.
    DevCa(commands::dev_ca::Args),
    /// Run the standalone HBONE waypoint.
    Run(commands::run::Args),
}

fn main() -> ExitCode {
    waypoint::logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::DevCa(args) => commands::dev_ca::main(args),
        Command::Run(args) => commands::run::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("waypoint: {e:#}");
            ExitCode::FAILURE
        }
    }
}
