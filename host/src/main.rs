//! `waypoint`: the command-line entry point; one module per subcommand.
//! `explain` shows the decision the policy core makes for one request.

mod explain;

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
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Explain(args) => explain::run(args),
    };
    std::process::exit(code);
}
