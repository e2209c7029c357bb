//! The fake API server's HTTP side: path and query parsing, LIST (paged by `limit` and
//! `continue`), WATCH streams (newline-delimited JSON events), bookmarks, 404 and 410 answers;
//! requests for one object go to `write.rs`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use super::{Change, Drop, Gone, Shared};

type Body = BoxBody<Bytes, std::io::Error>;

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(req, &shared).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

pub(super) fn full(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(v.to_string()))
            .map_err(|n: Infallible| match n {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

pub(super) fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// A resource the API server does not serve: like the real one (its mux's NotFound), a
/// `text/plain` body, not a Status object — kube cannot read it as a watch event.
pub(super) fn not_found() -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(b"404 page not found\n"))
            .map_err(|n: Infallible| match n {})
            .boxed(),
    );
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// RBAC's answer: 403 with a `Forbidden` Status naming the verb, resource and scope.
fn forbidden(t: &Target, method: &http::Method) -> Response<Body> {
    let (group, plural) = match t.collection.split('/').collect::<Vec<_>>().as_slice() {
        [g, _, p] => (g.to_string(), p.to_string()),
        [_, p] => (String::new(), p.to_string()),
        _ => (String::new(), t.collection.clone()),
    };
    let verb = match (method.as_str(), t.object.is_some(), t.watch) {
        ("GET", false, true) => "watch",
        ("GET", false, false) => "list",
        ("GET", true, _) => "get",
        ("POST", ..) => "create",
        ("PATCH", ..) => "patch",
        ("DELETE", ..) => "delete",
        (m, ..) => m,
    }
    .to_string();
    let scope = match &t.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let resource = if group.is_empty() {
        plural.clone()
    } else {
        format!("{plural}.{group}")
    };
    let message = format!(
        "{resource} is forbidden: User \"test\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}"
    );
    full(StatusCode::FORBIDDEN, &status(403, "Forbidden", &message))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a request asks for.
#[derive(Debug)]
pub(super) struct Target {
    pub collection: String,
    pub namespace: Option<String>,
    /// One object (`.../plural/NAME`) rather than the collection.
    pub object: Option<String>,
    /// Its subresource (`.../NAME/status`).
    pub subresource: Option<String>,
    /// Query parameters other than those below (`fieldManager`, `force`...).
    pub query: Vec<(String, String)>,
    /// `metadata.name=X` from a field selector.
    name: Option<String>,
    watch: bool,
    resource_version: u64,
    bookmarks: bool,
    /// Page size of a list (`limit`) and where the page starts (`continue`).
    limit: Option<usize>,
    offset: usize,
}

fn parse(req: &Request<Incoming>) -> Option<Target> {
    let path = req.uri().path();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    // `namespaces/NAME/status` is a Namespace's subresource, `namespaces/NS/PLURAL` a
    // namespaced collection.
    let (namespace, plural, object, subresource) = match rest {
        [p] => (None, *p, None, None),
        ["namespaces", n, sub @ ("status" | "finalize")] => {
            (None, "namespaces", Some(*n), Some(*sub))
        }
        [p, name] => (None, *p, Some(*name), None),
        [p, name, sub] if *p != "namespaces" => (None, *p, Some(*name), Some(*sub)),
        ["namespaces", ns, p] => (Some(ns.to_string()), *p, None, None),
        ["namespaces", ns, p, name] => (Some(ns.to_string()), *p, Some(*name), None),
        ["namespaces", ns, p, name, sub] => (Some(ns.to_string()), *p, Some(*name), Some(*sub)),
        _ => return None,
    };
    let mut t = Target {
        collection: format!("{prefix}/{plural}"),
        namespace,
        object: object.map(percent_decode),
        subresource: subresource.map(str::to_string),
        query: Vec::new(),
        name: None,
        watch: false,
        resource_version: 0,
        bookmarks: false,
        limit: None,
        offset: 0,
    };
    for pair in req.uri().query().unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "watch" => t.watch = v == "true" || v == "1",
            "resourceVersion" => t.resource_version = v.parse().unwrap_or(0),
            "allowWatchBookmarks" => t.bookmarks = v == "true",
            "limit" => t.limit = v.parse().ok().filter(|n| *n > 0),
            "continue" => t.offset = v.parse().unwrap_or(0),
            "fieldSelector" => {
                t.name = v.strip_prefix("metadata.name=").map(str::to_string);
            }
            _ => t.query.push((k.to_string(), v)),
        }
    }
    Some(t)
}

fn matches(t: &Target, obj: &Value) -> bool {
    let meta = &obj["metadata"];
    t.namespace
        .as_deref()
        .is_none_or(|ns| meta["namespace"].as_str() == Some(ns))
        && t.name
            .as_deref()
            .is_none_or(|n| meta["name"].as_str() == Some(n))
}

async fn handle(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Body> {
    let Some(t) = parse(&req) else {
        return not_found();
    };
    if shared.lock().forbidden.contains(&t.collection) {
        return forbidden(&t, req.method());
    }
    if t.object.is_some() || req.method() != http::Method::GET {
        return super::write::handle(req, t, shared).await;
    }
    let mut st = shared.lock();
    st.requests
        .push((if t.watch { "watch" } else { "list" }, t.collection.clone()));
    if st.missing.contains(&t.collection) {
        return not_found();
    }
    if !t.watch {
        let all: Vec<&Value> = st
            .objects
            .get(&t.collection)
            .map(|m| m.values().filter(|o| matches(&t, o)).collect())
            .unwrap_or_default();
        // Pages in (namespace, name) order; the continue token is the next offset. (The API
        // server serves later pages from the first page's snapshot; this fake from the
        // current state.)
        let end = t.limit.map_or(all.len(), |l| (t.offset + l).min(all.len()));
        let items: Vec<&Value> = all.get(t.offset..end).unwrap_or_default().to_vec();
        let mut meta = json!({"resourceVersion": st.rv.to_string()});
        if end < all.len() {
            meta["continue"] = json!(end.to_string());
        }
        return full(
            StatusCode::OK,
            &json!({"apiVersion": "v1", "kind": "List", "metadata": meta, "items": items}),
        );
    }
    let gone = t.resource_version < st.compacted;
    if gone && st.gone == Some(Gone::Http) {
        return full(
            StatusCode::GONE,
            &status(410, "Expired", "too old resource version"),
        );
    }
    // Subscribed under the lock: nothing between the backlog and the live events is lost.
    let live = shared.events.subscribe();
    let drops = shared.drops.subscribe();
    let backlog: Vec<Change> = st
        .history
        .iter()
        .filter(|c| c.rv > t.resource_version && c.collection == t.collection)
        .cloned()
        .collect();
    let api_version = t
        .collection
        .rsplit_once('/')
        .map(|(av, _)| av.to_string())
        .unwrap_or_default();
    drop(st);
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(256);
    let shared = shared.clone();
    tokio::spawn(async move {
        stream_watch(t, gone, backlog, live, drops, tx, &shared, api_version).await;
    });
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
    let mut r = Response::new(body);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn line(kind: &str, object: &Value) -> Frame<Bytes> {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Frame::data(Bytes::from(s))
}

#[allow(clippy::too_many_arguments)]
async fn stream_watch(
    t: Target,
    gone: bool,
    backlog: Vec<Change>,
    mut live: broadcast::Receiver<Change>,
    mut drops: tokio::sync::watch::Receiver<(u64, Drop)>,
    tx: mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
    shared: &Shared,
    api_version: String,
) {
    if gone {
        let _ = tx
            .send(Ok(line(
                "ERROR",
                &status(410, "Expired", "too old resource version"),
            )))
            .await;
        return;
    }
    let mut last = t.resource_version;
    for c in backlog.iter().filter(|c| matches(&t, &c.object)) {
        last = c.rv;
        if tx.send(Ok(line(c.kind, &c.object))).await.is_err() {
            return;
        }
    }
    let mut tick = tokio::time::interval(shared.bookmark_every);
    tick.tick().await;
    loop {
        tokio::select! {
            // A drop wins over events sent after it.
            biased;
            changed = drops.changed() => {
                if changed.is_ok() && drops.borrow().1 == Drop::Abort {
                    let _ = tx.send(Err(std::io::Error::other("watch stream cut"))).await;
                }
                return;
            }
            ev = live.recv() => match ev {
                Ok(c) => {
                    if c.rv <= last || c.collection != t.collection || !matches(&t, &c.object) {
                        continue;
                    }
                    last = c.rv;
                    if tx.send(Ok(line(c.kind, &c.object))).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(Ok(line("ERROR", &status(410, "Expired", "watch lagged")))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick(), if t.bookmarks => {
                let rv = shared.lock().rv;
                let kind = "Bookmark";
                let bm = json!({"apiVersion": api_version, "kind": kind,
                                "metadata": {"resourceVersion": rv.to_string()}});
                if tx.send(Ok(line("BOOKMARK", &bm))).await.is_err() {
                    return;
                }
            }
        }
    }
}
