//! `waypoint originate`: the local HBONE originator Envoy hands mesh upstream connections to
//! (PROXY v2 in, HBONE to the pod out), for bootstraps made with `bootstrap --originator`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use waypoint::tls::{certs, CertPaths, CertStore};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address Envoy connects to (the bootstrap's `--originator`).
    #[arg(long, default_value = "127.0.0.1:15009")]
    listen: SocketAddr,
    /// The waypoint's certificate directory, as given to `waypoint bootstrap --certs`
    /// (`waypoint.pem`, `waypoint-key.pem`, `ca.pem`).
    #[arg(long, value_name = "DIR")]
    certs: PathBuf,
    /// Port mesh endpoints accept HBONE on.
    #[arg(long, default_value_t = 15008)]
    hbone_port: u16,
}

/// The certificate files of a bootstrap certificate directory.
pub fn bootstrap_cert_paths(dir: &std::path::Path) -> CertPaths {
    CertPaths {
        cert: dir.join("waypoint.pem"),
        key: dir.join("waypoint-key.pem"),
        roots: dir.join("ca.pem"),
    }
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let paths = bootstrap_cert_paths(&args.certs);
    let material = certs::load(&paths)
        .with_context(|| format!("loading certificates from {}", args.certs.display()))?;
    let store = CertStore::new(material)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let o = waypoint::originate::start(args.listen, store, args.hbone_port)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        tracing::info!(listen = %o.addr, "originator running");
        super::run::wait_for_signal().await;
        Ok(())
    })
}
