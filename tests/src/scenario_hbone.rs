//! The shared scenario suite over HBONE, for any waypoint (standalone host or Envoy): pods
//! remapped to loopback (echo servers, HBONE servers for mesh pods) and a case runner that
//! sends each case with its identity and destination and compares with the core's decision.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use waypoint_core::decision::Action;
use waypoint_core::explain::decision_json;
use waypoint_core::{Request, Snapshot, SplitMix64};
use waypoint_hbone::tls::{CertStore, Identity};
use waypoint_hbone::HboneClient;

use crate::echo::{http_echo, EchoServer};
use crate::hbone_client::{collect, http1_over};
use crate::hbone_server::HboneServer;
use crate::pki::{Pki, TempDir};
use crate::scenario::{split_url, write_config, Case};

/// Endpoint IPs the core may pick for `case` (union over seeds, covering weighted splits).
pub fn allowed_ips(snap: &Snapshot, req: &Request<'_>) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for seed in 0..64 {
        let d = snap.decide(req, &mut SplitMix64(seed), false);
        if let Some(f) = &d.forward {
            out.extend(f.endpoints.iter().map(|e| e.ip));
        }
    }
    out
}

/// The pods of a scenario config on loopback, and the remapped config.
#[derive(Debug)]
pub struct Pods {
    pub servers: Vec<EchoServer>,
    pub hbone: Vec<HboneServer>,
    /// Original endpoint IP → its loopback stand-in.
    pub map: BTreeMap<IpAddr, IpAddr>,
    /// Port every mesh pod's HBONE server listens on.
    pub hbone_port: u16,
    /// The config with pod IPs remapped.
    pub config_dir: TempDir,
}

/// Map each endpoint IP to 127.`base`.`file`.n (one /16 per runner, one /24 per scenario
/// file, so runners in parallel never share an address); start an echo server per pod and target port
/// (named after the original IP) and an HBONE server per mesh pod presenting its identity.
pub async fn start_pods(pki: &Pki, snap: &Snapshot, config: &[String], base: u8, file: u8) -> Pods {
    // Map each endpoint IP to 127.<base>.<file>.<n>.
    let mut map = BTreeMap::new();
    let mut mesh = BTreeSet::new();
    let mut ports: HashMap<IpAddr, BTreeSet<u16>> = HashMap::new();
    for svc in &snap.registry.services {
        for ep in &svc.endpoints {
            let n = map.len() as u8 + 2;
            let new = *map
                .entry(ep.ip)
                .or_insert(IpAddr::from([127, base, file, n]));
            if ep.mesh {
                mesh.insert(new);
            }
            for p in &svc.ports {
                ports
                    .entry(new)
                    .or_default()
                    .insert(svc.target_port(p.port, ep));
            }
        }
    }
    let reverse: HashMap<IpAddr, IpAddr> = map.iter().map(|(o, n)| (*n, *o)).collect();
    let mut servers = Vec::new();
    for (ip, ps) in &ports {
        for p in ps {
            servers.push(http_echo(SocketAddr::new(*ip, *p), &reverse[ip].to_string()).await);
        }
    }
    // HBONE "ztunnels" for mesh pods, all on one port number.
    let probe =
        std::net::TcpListener::bind((IpAddr::from([127, base, file, 1]), 0)).expect("probe");
    let hbone_port = probe.local_addr().expect("addr").port();
    drop(probe);
    let mut hbone = Vec::new();
    for ip in &mesh {
        // Every pod's ztunnel presents the pod's identity; the waypoint checks it.
        let svc_ep = snap
            .registry
            .services
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .find(|e| map.get(&e.ip) == Some(ip))
            .expect("endpoint");
        let store = pki.store(
            &svc_ep.namespace,
            svc_ep.service_account.as_deref().unwrap_or("default"),
        );
        hbone.push(HboneServer::start(SocketAddr::new(*ip, hbone_port), store).await);
    }
    let config_dir = TempDir::new("scenario-config");
    write_config(config, &map, config_dir.path());
    Pods {
        servers,
        hbone,
        map,
        hbone_port,
        config_dir,
    }
}

/// Run one case through the waypoint at `waypoint` (HBONE); compare with the core. Returns a
/// difference, if any.
pub async fn run_case(
    waypoint: SocketAddr,
    snap: &Snapshot,
    map: &BTreeMap<IpAddr, IpAddr>,
    clients: &mut HashMap<String, Arc<HboneClient>>,
    pki: &Pki,
    case: &Case,
) -> Result<(), String> {
    let r = &case.request;
    let (scheme, authority, path) = split_url(&r.url).map_err(|e| e.to_string())?;
    let dest = match &r.dest {
        Some(d) => d.clone(),
        None if authority.contains(':') => authority.clone(),
        None => format!("{authority}:80"),
    };
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let source_ip: Option<IpAddr> = r.source_ip.as_deref().and_then(|s| s.parse().ok());
    // HBONE always carries a client identity: cases without one use a neutral identity, for
    // the core decision too (the inputs of both sides are identical).
    let principal = r
        .source_principal
        .clone()
        .unwrap_or_else(|| "spiffe://cluster.local/ns/scenario/sa/client".to_string());
    let req = Request {
        method: &r.method,
        scheme: &scheme,
        authority: &authority,
        path: &path,
        headers: &headers,
        source_principal: Some(&principal),
        source_ip,
        destination: &dest,
        sni: None,
    };
    let d = snap.decide(&req, &mut SplitMix64(r.seed), false);
    let core = decision_json(&d, &req);
    let id: Identity = principal.parse().map_err(|e| format!("{e}"))?;
    let client = clients
        .entry(principal.clone())
        .or_insert_with(|| {
            let store: Arc<CertStore> = pki.store_for(&id, None);
            HboneClient::new(store)
        })
        .clone();
    let mut connect_headers = http::HeaderMap::new();
    let src = source_ip.unwrap_or(IpAddr::from([10, 0, 0, 7]));
    if let Ok(v) = format!("for=\"{}\"", SocketAddr::new(src, 40000)).parse() {
        connect_headers.insert("forwarded", v);
    }
    // The host's config has the pod IPs remapped to loopback; so does its destination.
    let host_dest = match dest.parse::<SocketAddr>() {
        Ok(a) => match map.get(&a.ip()) {
            Some(ip) => SocketAddr::new(*ip, a.port()).to_string(),
            None => dest.clone(),
        },
        Err(_) => dest.clone(),
    };
    let stream = client
        .connect(waypoint, &[], &host_dest, connect_headers)
        .await;
    let stream = match stream {
        Ok(s) => s,
        Err(e) => return Err(format!("CONNECT failed: {e}; core: {core}")),
    };
    let mut send = http1_over(stream).await.map_err(|e| e.to_string())?;
    let mut hreq = http::Request::builder()
        .method(r.method.as_str())
        .uri(&path)
        .header("host", &authority);
    for (k, v) in &r.headers {
        hreq = hreq.header(k, v);
    }
    let hreq = hreq.body(crate::echo::empty()).map_err(|e| e.to_string())?;
    let resp = send.send_request(hreq).await.map_err(|e| e.to_string())?;
    let got = collect(resp).await.map_err(|e| e.to_string())?;
    if d.action == Action::Route && d.ext_authz.is_none() {
        let allowed = allowed_ips(snap, &req);
        if allowed.is_empty() {
            // The core routes, but the backend has no endpoints: Envoy's 503 (UH).
            if got.status != 503 || got.text() != "no healthy upstream" {
                return Err(format!(
                    "backend without endpoints: want 503, got {} {:?}",
                    got.status,
                    got.text()
                ));
            }
            return Ok(());
        }
        let served = got.header("x-served-by").ok_or_else(|| {
            format!(
                "not forwarded: status {} body {:?}; core: {core}",
                got.status,
                got.text()
            )
        })?;
        let served: IpAddr = served
            .parse()
            .map_err(|_| format!("bad served-by {served}"))?;
        if !allowed.contains(&served) {
            return Err(format!("served by {served}, core allows {allowed:?}"));
        }
        let want_path = core["path"].as_str().unwrap_or(&path).to_string();
        if got.header("x-echo-pathq") != Some(want_path.as_str()) {
            return Err(format!(
                "upstream path: want {want_path}, saw {:?}",
                got.header("x-echo-pathq")
            ));
        }
        if let Some(hs) = core["request_headers"].as_object() {
            for (k, v) in hs {
                let seen: Vec<&str> = got
                    .headers
                    .get_all(format!("x-echo-h-{k}").as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                let want = v.as_str().unwrap_or("");
                if seen.join(",") != want {
                    return Err(format!("header {k}: want {want:?}, upstream saw {seen:?}"));
                }
            }
        }
    } else if let (Action::Passthrough, Some(addr)) = (d.action, d.passthrough) {
        // Workload-addressed: that very pod and port, the request as sent.
        let served = got.header("x-served-by");
        if served != Some(addr.ip().to_string().as_str()) {
            return Err(format!(
                "pass-through to {addr}: served by {served:?}, status {} body {:?}",
                got.status,
                got.text()
            ));
        }
        if got.header("x-echo-pathq") != Some(path.as_str()) {
            return Err(format!(
                "pass-through path: want {path}, upstream saw {:?}",
                got.header("x-echo-pathq")
            ));
        }
        for (k, v) in &r.headers {
            if got.header(&format!("x-echo-h-{k}")) != Some(v.as_str()) {
                return Err(format!("pass-through header {k}: want {v:?} unchanged"));
            }
        }
    } else if let Some(l) = &d.local {
        if got.status != l.status {
            return Err(format!(
                "status {} != core {}; body {:?}; headers {:?}",
                got.status,
                l.status,
                got.text(),
                got.headers
            ));
        }
        if got.text() != l.body {
            return Err(format!("body {:?} != core {:?}", got.text(), l.body));
        }
        // Every header of the core's reply, with the same value(s).
        let mut want: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (k, v) in &l.headers {
            want.entry(k.to_ascii_lowercase()).or_default().push(v);
        }
        for (k, v) in &want {
            let seen: Vec<&str> = got
                .headers
                .get_all(k.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if seen != *v {
                return Err(format!("reply header {k}: core {v:?}, host {seen:?}"));
            }
        }
        if let Some((_, loc)) = l
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("location"))
        {
            if got.header("location") != Some(loc.as_str()) {
                return Err(format!(
                    "location {:?} != core {loc:?}",
                    got.header("location")
                ));
            }
        }
    }
    Ok(())
}
