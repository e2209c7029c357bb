//! `waypoint explain`: load config, build one snapshot, decide one request, print the decision
//! as JSON (a stable interface) or as aligned text for people.

mod jwt;
mod text;
pub(crate) mod url;

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use waypoint_core::explain::decision_json;
use waypoint_core::{BuildOptions, NamespacedName, Request, SplitMix64};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Json,
    Text,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Manifest file or directory (repeatable).
    #[arg(long = "config", required = true)]
    pub config: Vec<PathBuf>,
    /// Waypoint Gateway as NS/NAME (optional when the config holds exactly one).
    #[arg(long, value_name = "NS/NAME")]
    pub waypoint: Option<String>,
    /// Namespace for resources without metadata.namespace.
    #[arg(long, value_name = "NS", default_value = "default")]
    pub namespace: String,
    /// The request: 'METHOD URL', e.g. 'GET http://reviews:9080/reviews/1'.
    #[arg(long, value_name = "'METHOD URL'")]
    pub request: String,
    /// Request header 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Source SPIFFE principal, e.g. spiffe://cluster.local/ns/default/sa/bookinfo-productpage.
    #[arg(long, value_name = "SPIFFE_ID")]
    pub source_principal: Option<String>,
    /// Source IP (as ztunnel's `forwarded` header carries it; ipBlocks and remoteIpBlocks).
    #[arg(long, value_name = "IP")]
    pub source_ip: Option<IpAddr>,
    /// Original destination HOST:PORT (default: the URL's host and port).
    #[arg(long, value_name = "HOST:PORT")]
    pub dest: Option<String>,
    /// A JWT sent as `Authorization: Bearer TOKEN`: authenticated with the destination's
    /// RequestAuthentication rules; its verified claims feed authorization and routing.
    #[arg(long, value_name = "TOKEN")]
    pub jwt: Option<String>,
    /// JWKS file to verify `--jwt` with (default: each rule's inline `jwks`; a `jwksUri` is
    /// not fetched).
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<PathBuf>,
    /// Seed for weighted choices and fault percentages (default: random).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// `text` for people; `json` for tools: one object whose fields are always present
    /// (`null` when they do not apply).
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Parsed request parts that the borrowed `Request` points into.
struct Parsed {
    method: String,
    scheme: String,
    authority: String,
    path: String,
    headers: Vec<(String, String)>,
    dest: String,
}

fn parse_request(args: &ExplainArgs) -> anyhow::Result<Parsed> {
    let (method, url) = args
        .request
        .trim()
        .split_once(char::is_whitespace)
        .context("--request must be 'METHOD URL', e.g. 'GET http://reviews:9080/'")?;
    let u = url::parse(url.trim()).with_context(|| format!("--request: bad URL {url:?}"))?;
    let mut headers = Vec::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("-H {h:?}: expected 'Name: value'"))?;
        let k = k.trim();
        if k.is_empty() {
            bail!("-H {h:?}: empty header name");
        }
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    if let Some(t) = &args.jwt {
        headers.push(("authorization".into(), format!("Bearer {}", t.trim())));
    }
    let dest = match &args.dest {
        Some(d) => d.clone(),
        None => format!("{}:{}", u.host_for_authority(), u.port_or_default()),
    };
    Ok(Parsed {
        method: method.to_ascii_uppercase(),
        scheme: u.scheme.clone(),
        authority: u.authority.clone(),
        path: u.path_and_query.clone(),
        headers,
        dest,
    })
}

/// Every field of the JSON output, in docs/cli.md's order: each is present in every answer,
/// `null` when it does not apply (a local reply's `status`/`body`, a route's `backend`).
pub const JSON_FIELDS: &[&str] = &[
    "waypoint",
    "action",
    "status",
    "body",
    "backend",
    "weights",
    "request_headers",
    "response_headers_add",
    "response_headers_remove",
    "path",
    "authority",
    "location",
    "timeout_ms",
    "retries",
    "fault_delay_ms",
    "mirrors",
    "matched_route",
    "matched_rule",
    "policies",
    "jwt",
    "trace",
    "seed",
    "errors",
    "warnings",
];

/// `out` with every [`JSON_FIELDS`] key, `null` where absent.
fn complete(mut out: Value) -> Value {
    if let Value::Object(o) = &mut out {
        for k in JSON_FIELDS {
            o.entry(k.to_string()).or_insert(Value::Null);
        }
    }
    out
}

/// Write `text` to stdout; a reader that went away (`explain … | head`) is not an error.
fn print_out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing stdout: {e}");
        }
    }
}

/// Run the subcommand; returns the process exit code.
pub fn run(args: ExplainArgs) -> i32 {
    match run_inner(&args) {
        Ok(code) => code,
        Err(e) => {
            if args.output == Output::Json {
                print_out(&format!(
                    "{}\n",
                    complete(json!({"errors": [format!("{e:#}")], "warnings": []}))
                ));
            } else {
                eprintln!("error: {e:#}");
            }
            2
        }
    }
}

/// Every `--config` path must exist: a missing one is the only error reported (loading
/// would add a knock-on "no waypoint Gateway" error).
fn check_config_paths(paths: &[PathBuf]) -> anyhow::Result<()> {
    for p in paths {
        if !p.exists() {
            bail!("--config {}: no such file or directory", p.display());
        }
    }
    Ok(())
}

fn run_inner(args: &ExplainArgs) -> anyhow::Result<i32> {
    let (out, errors) = decide(args)?;
    match args.output {
        Output::Json => print_out(&format!("{}\n", complete(out))),
        Output::Text => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            print_out(&text::render(&out));
        }
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

/// The decision as text, for `waypoint curl --explain` (config errors listed first).
pub fn text(args: &ExplainArgs) -> anyhow::Result<String> {
    let (out, errors) = decide(args)?;
    let mut s: String = errors.iter().map(|e| format!("error: {e}\n")).collect();
    s.push_str(&text::render(&out));
    Ok(s)
}

/// Load the config and decide the request: the JSON answer and the config errors.
fn decide(args: &ExplainArgs) -> anyhow::Result<(Value, Vec<String>)> {
    check_config_paths(&args.config)?;
    let parsed = parse_request(args)?;
    let waypoint = args
        .waypoint
        .as_deref()
        .map(NamespacedName::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--waypoint {e}"))?;
    let loaded = waypoint_loader::load_paths(&args.config, &args.namespace);
    let opts = BuildOptions {
        waypoint: waypoint.map(NamespacedName::into_pair),
        ..Default::default()
    };
    let (snapshot, diags) = loaded.build(&opts);
    let header_refs: Vec<(&str, &str)> = parsed
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = Request {
        method: &parsed.method,
        scheme: &parsed.scheme,
        authority: &parsed.authority,
        path: &parsed.path,
        headers: &header_refs,
        source_principal: args.source_principal.as_deref(),
        source_ip: args.source_ip,
        destination: &parsed.dest,
        sni: None,
    };
    let seed = args.seed.unwrap_or_else(random_seed);
    let mut rng = SplitMix64(seed);
    let jwks = args.jwks.as_deref().map(jwt::load_jwks).transpose()?;
    let (auth, jwt_field, refused) = match jwt::run(&snapshot, &req, jwks) {
        jwt::Authn::Passed(auth, v) => (auth, v, None),
        jwt::Authn::Refused { body, jwt } => (None, jwt, Some(body)),
    };
    let mut out = match &refused {
        // Envoy's jwt_authn answers before RBAC and the router.
        Some(body) => json!({
            "action": "deny",
            "status": 401,
            "body": body,
            "trace": jwt_field["trace"].clone(),
            "policies": [],
        }),
        None => {
            let decision = snapshot.decide_authenticated(&req, auth.as_ref(), &mut rng, true);
            let mut out = decision_json(&decision, &req);
            // The JWT stage's lines first: it runs before authorization and routing.
            if let (Some(jt), Some(t)) = (jwt_field["trace"].as_array(), out["trace"].as_array()) {
                let lines: Vec<Value> = jt.iter().chain(t.iter()).cloned().collect();
                out["trace"] = Value::Array(lines);
            }
            out
        }
    };
    if let Value::Object(o) = &mut out {
        if !snapshot.jwt_rules_for(req.destination).is_empty() || args.jwt.is_some() {
            o.insert("jwt".into(), jwt_field);
        }
        o.insert("seed".into(), json!(seed));
        if let Some(w) = &snapshot.waypoint {
            o.insert(
                "waypoint".into(),
                json!(format!("{}/{}", w.namespace, w.name)),
            );
        }
        o.insert(
            "errors".into(),
            json!(diags
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()),
        );
        o.insert(
            "warnings".into(),
            json!(diags
                .warnings
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()),
        );
    }
    Ok((out, diags.errors.iter().map(|e| e.to_string()).collect()))
}

fn random_seed() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}
