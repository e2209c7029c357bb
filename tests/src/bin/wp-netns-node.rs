//! One node of the multi-host test, run inside a network namespace: `server` (HTTP echo plus
//! its HBONE "ztunnel"), `waypoint` (the host on Istio's ports), or `client` (HBONE requests).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use waypoint::hbone::HboneClient;
use waypoint::run::{start, RunOptions};
use waypoint::tls::CertPaths;
use waypoint_tests::echo::http_echo;
use waypoint_tests::hbone_client::http1_get;
use waypoint_tests::hbone_server::HboneServer;
use waypoint_tests::pki::store_from;

fn arg(args: &[String], name: &str) -> anyhow::Result<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("missing {name}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).cloned().unwrap_or_default();
    let certs = CertPaths::from_dir(&PathBuf::from(arg(&args, "--certs")?));
    match mode.as_str() {
        "server" => {
            let http: SocketAddr = arg(&args, "--http")?.parse()?;
            let hbone: SocketAddr = arg(&args, "--hbone")?.parse()?;
            let _echo = http_echo(http, &arg(&args, "--name")?).await;
            let _hbone = HboneServer::start(hbone, store_from(&certs)).await;
            println!("ready");
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        "waypoint" => {
            waypoint::logging::init();
            let ip: std::net::IpAddr = arg(&args, "--ip")?.parse()?;
            let mut opts = RunOptions::new(vec![PathBuf::from(arg(&args, "--config")?)], certs);
            opts.hbone_addr = SocketAddr::new(ip, 15008);
            opts.ready_addr = Some(SocketAddr::new(ip, 15021));
            opts.stats_addr = Some(SocketAddr::new(ip, 15020));
            opts.admin_addr = Some(SocketAddr::new(ip, 15000));
            let _running = start(opts).await?;
            println!("ready");
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        "client" => {
            let wp: SocketAddr = arg(&args, "--waypoint")?.parse()?;
            let authority = arg(&args, "--authority")?;
            let count: usize = arg(&args, "--count")?.parse()?;
            let client = HboneClient::new(store_from(&certs));
            for i in 0..count {
                let r = http1_get(&client, wp, &authority, &format!("/n/{i}")).await?;
                println!("{} {}", r.status, r.header("x-served-by").unwrap_or("-"));
            }
        }
        other => anyhow::bail!("unknown mode {other:?}: server | waypoint | client"),
    }
    Ok(())
}
