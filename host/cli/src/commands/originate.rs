//! `waypoint originate`: the local HBONE originator for `bootstrap --originator` bootstraps
//! (PROXY v2 in from Envoy, HBONE to the pod out), with its certificate files watched.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use waypoint_hbone::tls::{certs, CertStore};
use waypoint_sources::watch;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address Envoy connects to (the bootstrap's `--originator`).
    #[arg(long, default_value = "127.0.0.1:15009")]
    listen: SocketAddr,
    /// The waypoint's certificate files, as given to `waypoint bootstrap`.
    #[command(flatten)]
    certs: super::args::CertArgs,
    /// Port mesh endpoints accept HBONE on.
    #[arg(long, default_value_t = 15008)]
    hbone_port: u16,
    /// How often the certificate files are checked for changes (new connections use new
    /// ones): a duration (`500ms`, `2s`) or plain seconds.
    #[arg(long, value_name = "DURATION", value_parser = super::args::interval, default_value = "1s")]
    watch_interval: Duration,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let paths = args.certs.resolve()?;
    let files: Vec<_> = paths.all().iter().map(|p| p.to_path_buf()).collect();
    // Taken before the first read, so a change in between is still seen.
    let seen = watch::fingerprint(&files);
    let material = certs::load(&paths)?;
    let store = CertStore::new(material)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let o = waypoint_hbone::originate::start(args.listen, store.clone(), args.hbone_port)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        tracing::info!(listen = %o.addr, identity = %store.identity(), "originator running");
        let interval = args.watch_interval;
        let reload = tokio::spawn(watch::poll(files, seen, interval, move || {
            match certs::load(&paths).and_then(|m| store.replace(m)) {
                Ok(()) => tracing::info!(identity = %store.identity(), "certificates reloaded"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "certificate reload failed; keeping the previous ones"),
            }
        }));
        super::run::wait_for_signal().await;
        reload.abort();
        Ok(())
    })
}
