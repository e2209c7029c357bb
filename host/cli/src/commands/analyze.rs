//! `waypoint analyze`: read the config (manifest files, or the Kubernetes API server once),
//! run `waypoint-analyze`, print its messages as `istioctl analyze` does, exit with its codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args as ClapArgs;
use waypoint_analyze::catalogue::ALL;
use waypoint_analyze::format::{at_least, exit_code, render, Format};
use waypoint_analyze::{
    analyze, analyzer_names, is_parse_error, suppress, Input, Level, Suppression,
};
use waypoint_core::resource::RawResource;
use waypoint_core::ConfigError;

fn level(s: &str) -> Result<Level, String> {
    Level::parse(s).ok_or_else(|| format!("{s:?}: expected one of Info, Warning, Error"))
}

fn duration(s: &str) -> Result<Duration, String> {
    waypoint_core::istio::parse_duration(s)
}

fn format(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("{s:?}: expected one of log, json, yaml"))
}

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Manifest file or directory (repeatable). Exactly one of `--config` and `--kube`.
    #[arg(
        long = "config",
        required_unless_present_any = ["kube", "list_analyzers"],
        conflicts_with = "kube"
    )]
    pub config: Vec<PathBuf>,
    /// Analyze what the Kubernetes API server holds (the kinds `run --kube` watches, listed once).
    #[arg(long)]
    pub kube: bool,
    /// Kubeconfig file for `--kube` (default: in-cluster config, then `KUBECONFIG`).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub kubeconfig: Option<PathBuf>,
    /// Istio's root namespace: mesh-wide policies, and the mesh config ConfigMap `istio` with `--kube`.
    #[arg(long, value_name = "NS", default_value = "istio-system")]
    pub mesh_namespace: String,
    /// Namespace for file resources without metadata.namespace.
    #[arg(long, value_name = "NS", default_value = "default")]
    pub namespace: String,
    /// Output format: log (one line per message), json or yaml.
    #[arg(short = 'o', long = "output", default_value = "log", value_parser = format)]
    pub output: Format,
    /// The level at which messages make the exit code 79: Info, Warning or Error.
    #[arg(long, default_value = "Error", value_parser = level)]
    pub failure_threshold: Level,
    /// The lowest level of the messages printed: Info, Warning or Error.
    #[arg(long, default_value = "Info", value_parser = level)]
    pub output_threshold: Level,
    /// How long `--kube` waits for every kind's list (Go duration).
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub timeout: Duration,
    /// Do not report CODE on RESOURCE (repeatable): `Kind namespace/name` or istioctl's
    /// `Kind name.namespace`, `*` matching anything, e.g. "IST0101=VirtualService default/*".
    #[arg(short = 'S', long = "suppress", value_name = "CODE=RESOURCE", value_parser = Suppression::parse)]
    pub suppress: Vec<Suppression>,
    /// List the analyzers and exit.
    #[arg(short = 'L', long)]
    pub list_analyzers: bool,
}

/// List every watched kind once through the same watchers as `run --kube`.
fn from_kube(args: &Args) -> anyhow::Result<Vec<RawResource>> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let client = waypoint_kube::client(args.kubeconfig.as_deref()).await?;
        let options = waypoint_kube::KubeOptions {
            mesh_namespace: args.mesh_namespace.clone(),
            debounce: Duration::from_millis(20),
            ..Default::default()
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let source = waypoint_kube::KubeSource::start(client, options, move |set| {
            let _ = tx.send(set);
        });
        match tokio::time::timeout(args.timeout, rx.recv()).await {
            Ok(Some(set)) => Ok(set),
            Ok(None) => anyhow::bail!("the Kubernetes source stopped before its first list"),
            Err(_) => anyhow::bail!(
                "no full list from the Kubernetes API server within {:?}; still waiting for: {}",
                args.timeout,
                source.pending().join(", ")
            ),
        }
    })
}

/// Print the load errors of unparsable files on stderr.
fn report_parse_errors(errors: &[ConfigError]) {
    for e in errors.iter().filter(|e| is_parse_error(e)) {
        // `name` is the file (and document index for a bad document).
        let field = if e.field.is_empty() {
            String::new()
        } else {
            format!(" (field {})", e.field)
        };
        eprintln!("Error: cannot parse {}{field}: {}", e.name, e.message);
    }
}

/// Run the command: istioctl's exit codes (0, 79 issues found, 65 parse errors), 1 when the
/// config cannot be read at all (e.g. the API server does not answer).
pub fn run(args: Args) -> ExitCode {
    match main(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("waypoint: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main(args: Args) -> anyhow::Result<u8> {
    if args.list_analyzers {
        println!("Available analyzers:");
        for n in analyzer_names() {
            println!("* {n}");
        }
        return Ok(0);
    }
    let (resources, load_errors, parse_errors, target) = if args.kube {
        if std::env::var_os("RUST_LOG").is_none() {
            std::env::set_var("RUST_LOG", "warn");
        }
        waypoint_proxy::logging::init(false);
        let set = from_kube(&args).context("--kube")?;
        (set, Vec::new(), 0, "the Kubernetes API server".to_string())
    } else {
        if let Some(p) = args.config.iter().find(|p| !p.exists()) {
            anyhow::bail!("--config {}: no such file or directory", p.display());
        }
        let loaded = waypoint_loader::load_paths(&args.config, &args.namespace);
        report_parse_errors(&loaded.errors);
        // Files (or given paths) not wholly read: istioctl's "files could not be parsed".
        let parse_errors = loaded.rejected.len();
        let names: Vec<String> = args
            .config
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        (
            loaded.resources,
            loaded.errors,
            parse_errors,
            names.join(", "),
        )
    };
    for s in &args.suppress {
        if !ALL.iter().any(|t| t.code == s.code) {
            eprintln!(
                "Warning: Supplied message code '{}' is an unknown message code and will not have any effect.",
                s.code
            );
        }
    }
    let messages = analyze(&Input {
        resources: &resources,
        load_errors: &load_errors,
        root_namespace: &args.mesh_namespace,
    });
    let messages = suppress::apply(messages, &args.suppress, &Default::default());
    let shown = at_least(&messages, args.output_threshold);
    let text = render(&shown, args.output);
    match args.output {
        Format::Log if shown.is_empty() => {}
        _ => println!("{text}"),
    }
    if shown.is_empty() {
        if parse_errors == 0 {
            eprintln!("\u{2714} No validation issues found when analyzing {target}.");
        } else {
            let files = if parse_errors == 1 { "file" } else { "files" };
            eprintln!(
                "No validation issues found when analyzing {target} (but {parse_errors} {files} could not be parsed)."
            );
        }
    }
    let code = exit_code(&messages, args.failure_threshold, parse_errors);
    if code == waypoint_analyze::format::EXIT_ANALYZER_FOUND_ISSUES {
        eprintln!(
            "Error: Analyzers found issues when analyzing {target}.\nSee docs/cli.md (`analyze`) and https://istio.io/latest/docs/reference/config/analysis for more information about causes and resolutions."
        );
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        analyze: Args,
    }

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("analyze").chain(args.iter().copied()))
            .map(|c| c.analyze)
    }

    #[test]
    fn flags() {
        let a = parse(&[
            "--config",
            "a",
            "-o",
            "json",
            "--failure-threshold",
            "warning",
        ])
        .expect("parse");
        assert_eq!(a.output, Format::Json);
        assert_eq!(a.failure_threshold, Level::Warning);
        assert_eq!(a.output_threshold, Level::Info);
        assert_eq!(a.timeout, Duration::from_secs(30));
        assert!(parse(&["--kube", "--kubeconfig", "kc", "--timeout", "5s"]).is_ok());
        assert!(parse(&["--kube", "--config", "a"]).is_err(), "both");
        assert!(parse(&[]).is_err(), "neither");
        assert!(parse(&["-L"]).is_ok());
        let s = parse(&[
            "--config",
            "a",
            "-S",
            "IST0101=VirtualService default/*",
            "--suppress",
            "WPA0004=x",
        ])
        .expect("suppressions");
        assert_eq!(s.suppress.len(), 2);
        assert_eq!(s.suppress[0].resource, "VirtualService default/*");
        assert!(parse(&["--config", "a", "-S", "IST0101"]).is_err());
        assert!(parse(&["--config", "a", "-o", "xml"]).is_err());
        assert!(parse(&["--config", "a", "--failure-threshold", "fatal"]).is_err());
    }
}
