//! `waypoint curl`: one HTTP request through a waypoint over HBONE as a mesh workload (a dev-ca
//! identity or given certificate files), printing the response head and body.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use waypoint_devtools::curl::{self, Outgoing};
use waypoint_hbone::tls::{certs, CertStore, Identity};
use waypoint_hbone::HboneClient;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The request URL, `http://HOST[:PORT]/PATH`; HOST:PORT is the original destination the
    /// tunnel asks for (a service name, VIP or pod IP, as in `explain --dest`).
    #[arg(value_name = "URL")]
    url: String,
    /// Request method (default GET, or POST with `--data`).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,
    /// Request header 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Request body; `@FILE` reads it from FILE.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    data: Option<String>,
    /// Send as this workload: its certificate is `<--dev-ca>/<ns>.<sa>/`, issued there by the
    /// dev CA when missing [default: default/curl]. Not with certificate flags.
    #[arg(long = "as", value_name = "NS/SA", conflicts_with_all = ["certs", "cert", "key", "roots"])]
    as_workload: Option<String>,
    /// The `waypoint dev-ca --out` directory `--as` reads (and issues) certificates in.
    #[arg(long, value_name = "DIR", default_value = "/tmp/mesh")]
    dev_ca: PathBuf,
    /// Trust domain of the `--as` identity.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    trust_domain: String,
    /// Send with these certificate files instead of a dev-ca identity.
    #[command(flatten)]
    certs: super::args::CertArgs,
    /// The waypoint's HBONE address (`waypoint run --hbone-addr`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15008")]
    waypoint: SocketAddr,
    /// The tunnel's destination (CONNECT authority) instead of the URL's HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    dest: Option<String>,
    /// Also print the tunnel and the request head (on stderr).
    #[arg(short, long)]
    verbose: bool,
    /// Also print (on stderr) why the waypoint decides as it does: `explain` of the same
    /// request, source and destination under this config (the one `waypoint run` serves).
    /// Weighted picks and fault percentages are drawn apart from the waypoint's.
    #[arg(long, value_name = "PATH")]
    explain: Vec<PathBuf>,
    /// Give up after this long (tunnel, request and response): a duration, `30s`, `500ms`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    max_time: Duration,
}

fn duration(s: &str) -> Result<Duration, String> {
    waypoint_core::istio::parse_duration(s)
}

/// The request `args` describe.
fn outgoing(args: &Args) -> anyhow::Result<Outgoing> {
    let u = crate::explain::url::parse(&args.url).with_context(|| format!("URL {:?}", args.url))?;
    if u.scheme != "http" {
        bail!(
            "URL {:?}: only http:// (the waypoint sees the request in clear inside the tunnel)",
            args.url
        );
    }
    let mut headers = Vec::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("-H {h:?}: expected 'Name: value'"))?;
        let name = HeaderName::try_from(k.trim()).with_context(|| format!("-H {h:?}: bad name"))?;
        let value =
            HeaderValue::try_from(v.trim()).with_context(|| format!("-H {h:?}: bad value"))?;
        headers.push((name, value));
    }
    let body = match args.data.as_deref() {
        None => Bytes::new(),
        Some(d) => match d.strip_prefix('@') {
            Some(file) => std::fs::read(file)
                .with_context(|| format!("--data @{file}: reading the file"))?
                .into(),
            None => Bytes::copy_from_slice(d.as_bytes()),
        },
    };
    let method = match (&args.method, &args.data) {
        (Some(m), _) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("-X {m:?}: not a method"))?,
        (None, Some(_)) => Method::POST,
        (None, None) => Method::GET,
    };
    Ok(Outgoing {
        waypoint: args.waypoint,
        expected: Vec::new(),
        authority: args
            .dest
            .clone()
            .unwrap_or_else(|| format!("{}:{}", u.host_for_authority(), u.port_or_default())),
        method,
        path: u.path_and_query.clone(),
        host: u.authority.clone(),
        headers,
        body,
        timeout: args.max_time,
    })
}

/// The identity to send as and where its certificate came from.
fn identity(args: &Args) -> anyhow::Result<(String, Arc<CertStore>)> {
    if args.certs.given() {
        let paths = args.certs.resolve()?;
        let store = CertStore::new(certs::load(&paths)?)?;
        return Ok((paths.flags(), store));
    }
    let ns_sa = args.as_workload.as_deref().unwrap_or("default/curl");
    let id = Identity::from_ns_sa(&args.trust_domain, ns_sa).context("--as")?;
    let (dir, store) = curl::dev_identity(&args.dev_ca, &id)?;
    Ok((format!("--certs {}", dir.display()), store))
}

/// `explain`'s text for the request `out` sent as `id`, under `--explain`.
fn explained(args: &Args, out: &Outgoing, id: &Identity) -> anyhow::Result<String> {
    let explain = crate::explain::ExplainArgs {
        config: args.explain.clone(),
        waypoint: None,
        namespace: "default".into(),
        request: format!("{} {}", out.method, args.url),
        headers: args.headers.clone(),
        source_principal: Some(id.to_string()),
        source_ip: None,
        dest: Some(out.authority.clone()),
        jwt: None,
        jwks: None,
        seed: None,
        output: crate::explain::Output::Text,
    };
    let text = crate::explain::text(&explain).context("--explain")?;
    Ok(format!(
        "* explain under {}:\n{}",
        args.explain
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        text.lines()
            .map(|l| format!("*   {l}\n"))
            .collect::<String>()
    ))
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let out = outgoing(&args)?;
    let (source, store) = identity(&args)?;
    if args.verbose {
        eprintln!(
            "* as {} ({source}), CONNECT {} via {}",
            store.identity(),
            out.authority,
            out.waypoint
        );
        if let Ok(req) = curl::request(&out) {
            eprintln!("> {} {} HTTP/1.1", req.method(), req.uri());
            for (k, v) in req.headers() {
                eprintln!("> {k}: {}", String::from_utf8_lossy(v.as_bytes()));
            }
            if !out.body.is_empty() {
                eprintln!("> ({} bytes of body)", out.body.len());
            }
        }
    }
    if !args.explain.is_empty() {
        eprint!("{}", explained(&args, &out, &store.identity())?);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let answer = rt.block_on(async {
        let client = HboneClient::new(store);
        curl::send(&client, &out).await
    })?;
    let mut stdout = std::io::stdout().lock();
    let printed = stdout
        .write_all(curl::head(&answer).as_bytes())
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.write_all(&answer.body))
        .and_then(
            |()| match answer.body.ends_with(b"\n") || answer.body.is_empty() {
                true => Ok(()),
                false => stdout.write_all(b"\n"),
            },
        )
        .and_then(|()| stdout.flush());
    match printed {
        // `waypoint curl … | head`: the reader left; not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing stdout"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        curl: super::Args,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("curl").chain(args.iter().copied()))
    }

    #[test]
    fn request_from_flags() {
        let c = parse(&[
            "http://productpage:9080/productpage?u=1",
            "-H",
            "end-user: jason",
            "-d",
            "x=1",
        ])
        .expect("parse");
        let out = super::outgoing(&c.curl).expect("outgoing");
        assert_eq!(out.authority, "productpage:9080");
        assert_eq!(out.host, "productpage:9080");
        assert_eq!(out.path, "/productpage?u=1");
        assert_eq!(out.method, http::Method::POST, "-d without -X posts");
        assert_eq!(out.headers[0].1, "jason");
        assert_eq!(out.waypoint.to_string(), "127.0.0.1:15008");
        let c = parse(&[
            "http://10.96.0.9/",
            "-X",
            "delete",
            "--dest",
            "10.96.0.9:9080",
        ])
        .expect("parse");
        let out = super::outgoing(&c.curl).expect("outgoing");
        assert_eq!(
            (out.method, out.authority.as_str()),
            (http::Method::DELETE, "10.96.0.9:9080")
        );
    }

    #[test]
    fn bad_input_is_refused_with_the_flag_named() {
        assert!(parse(&["http://a/", "--as", "default/curl", "--certs", "/x"]).is_err());
        let c = parse(&["https://a/"]).expect("parse");
        let e = super::outgoing(&c.curl).expect_err("https");
        assert!(e.to_string().contains("only http://"), "{e}");
        let c = parse(&["http://a/", "-H", "no colon"]).expect("parse");
        let e = super::outgoing(&c.curl).expect_err("header");
        assert!(e.to_string().contains("-H \"no colon\""), "{e}");
    }
}
