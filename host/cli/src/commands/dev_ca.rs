//! `waypoint dev-ca`: create (or reuse) a local mesh CA in DIR and issue workload
//! certificates into `DIR/<ns>.<sa>/` (layout in `waypoint_hbone::tls::dev_ca`).

use std::path::PathBuf;

use anyhow::Context;
use waypoint_devtools::dev_ca::DevCa;
use waypoint_hbone::tls::Identity;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output directory: `ca.pem`, `ca-key.pem` (reused by later runs) and one directory per
    /// workload, `<ns>.<sa>/` with `cert-chain.pem`, `key.pem`, `root-cert.pem`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// SPIFFE trust domain of the CA and its certificates.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    trust_domain: String,
    /// Workload identities to issue, as `namespace/serviceaccount` (repeatable).
    #[arg(long = "workload", value_name = "NS/SA")]
    workloads: Vec<String>,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let ca = DevCa::load_or_generate(&args.out, &args.trust_domain)
        .with_context(|| format!("CA in {}", args.out.display()))?;
    println!("ca: {}", args.out.join("ca.pem").display());
    if args.workloads.is_empty() {
        println!("no --workload NS/SA given: no workload certificate issued");
    }
    for w in &args.workloads {
        let id = Identity::from_ns_sa(&args.trust_domain, w)
            .with_context(|| format!("--workload {w}"))?;
        let dir = ca.write_workload(&args.out, &id)?;
        println!("{id}: {}", dir.display());
    }
    Ok(())
}
