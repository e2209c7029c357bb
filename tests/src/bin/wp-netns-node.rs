//! One node of the multi-host tests, run inside a network namespace: `server` (HTTP echo plus
//! its HBONE "ztunnel"), `waypoint` (the host on Istio's ports), `client` (HBONE requests),
//! `app` (an HTTP/1.1 echo closing after every response), `call` (plain HTTP requests),
//! `tcp-app` (a server-first TCP download) or `tcp-get` (reads that download).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use waypoint_hbone::tls::CertPaths;
use waypoint_hbone::HboneClient;
use waypoint_proxy::run::{start, RunOptions};
use waypoint_tests::echo::{http_echo, http_echo_closing, pattern, tcp_download};
use waypoint_tests::hbone_client::http1_get;
use waypoint_tests::hbone_server::HboneServer;
use waypoint_tests::pki::store_from;
use waypoint_tests::ztunnel::client::{send_keepalive, Call};

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
    match mode.as_str() {
        "app" => return app(&args).await,
        "call" => return call(&args).await,
        "tcp-app" => return tcp_app(&args).await,
        "tcp-get" => return tcp_get(&args).await,
        _ => {}
    }
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
            waypoint_proxy::logging::init(true);
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
        other => {
            anyhow::bail!(
                "unknown mode {other:?}: server | waypoint | client | app | call | tcp-app | tcp-get"
            )
        }
    }
    Ok(())
}

/// `app --http IP:PORT --name NAME`: serve until killed (at most 10 minutes).
async fn app(args: &[String]) -> anyhow::Result<()> {
    let http: SocketAddr = arg(args, "--http")?.parse()?;
    let _app = http_echo_closing(http, &arg(args, "--name")?).await;
    println!("ready");
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}

/// `call --to ADDR --host H --path P [--header k:v]... [--upload N] [--count N]
/// [--parallel N] [--keepalive N]`: `count` rounds of `parallel` concurrent connections, each
/// sending `keepalive` (default 1) requests in turn; one reply line per request
/// (`reply STATUS SERVED_BY LEN PATTERN_OK CLOSE`, or `fail ERROR`).
async fn call(args: &[String]) -> anyhow::Result<()> {
    let num = |name: &str, default: u64| -> anyhow::Result<u64> {
        match arg(args, name) {
            Ok(v) => Ok(v.parse()?),
            Err(_) => Ok(default),
        }
    };
    let headers = args
        .windows(2)
        .filter(|w| w[0] == "--header")
        .filter_map(|w| w[1].split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let c = Call {
        to: arg(args, "--to")?.parse()?,
        host: arg(args, "--host")?,
        path: arg(args, "--path")?,
        headers,
        upload: num("--upload", 0)?,
        timeout: Duration::from_secs(num("--timeout", 60)?),
    };
    let keepalive = usize::try_from(num("--keepalive", 1)?)?;
    for _ in 0..num("--count", 1)? {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..num("--parallel", 1)? {
            let c = c.clone();
            set.spawn(async move { send_keepalive(&c, keepalive).await });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(replies)) => {
                    for reply in replies {
                        println!("{}", reply.line());
                    }
                }
                Ok(Err(e)) => println!("fail {}", format!("{e:#}").replace('\n', " ")),
                Err(e) => println!("fail {e}"),
            }
        }
    }
    Ok(())
}

/// `tcp-app --bind IP:PORT --len N`: after one byte from the client, send N pattern bytes,
/// half-close first and wait for the client to close (at most 10 minutes).
async fn tcp_app(args: &[String]) -> anyhow::Result<()> {
    let bind: SocketAddr = arg(args, "--bind")?.parse()?;
    let _app = tcp_download(bind, arg(args, "--len")?.parse()?).await;
    println!("ready");
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}

/// `tcp-get --to ADDR`: send one byte, read to EOF, then close; prints
/// `tcp LEN PATTERN_OK` (or `fail ERROR`).
async fn tcp_get(args: &[String]) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let to: SocketAddr = arg(args, "--to")?.parse()?;
    let run = async {
        let mut tcp = tokio::net::TcpStream::connect(to).await?;
        tcp.write_all(b"g").await?;
        let (mut len, mut ok) = (0u64, true);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = tcp.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            ok &= buf[..n]
                .iter()
                .enumerate()
                .all(|(i, b)| *b == pattern(len + i as u64));
            len += n as u64;
        }
        tcp.shutdown().await?;
        anyhow::Ok((len, ok))
    };
    match tokio::time::timeout(Duration::from_secs(180), run).await {
        Ok(Ok((len, ok))) => println!("tcp {len} {ok}"),
        Ok(Err(e)) => println!("fail {e:#}"),
        Err(_) => println!("fail timed out"),
    }
    Ok(())
}
