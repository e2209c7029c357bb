//! A tiny HTTP/1.1 echo upstream for the Envoy e2e tests (std only, loopback): answers every
//! request with JSON naming itself and echoing method, path and headers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// (path, body) of one request that had a body.
pub type PathBody = (String, Vec<u8>);

/// One running upstream; stops accepting when dropped.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    bodies: Arc<Mutex<Vec<PathBody>>>,
}

impl Upstream {
    /// Start an upstream named `name` on 127.0.0.1 (port chosen by the OS).
    pub fn start(name: &str) -> std::io::Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (n, st, sn) = (name.to_string(), Arc::clone(&stop), Arc::clone(&seen));
        let bn = Arc::clone(&bodies);
        std::thread::Builder::new()
            .name(format!("upstream-{name}"))
            .spawn(move || {
                for conn in listener.incoming() {
                    if st.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let (n, sn, bn) = (n.clone(), Arc::clone(&sn), Arc::clone(&bn));
                        let _ = std::thread::Builder::new()
                            .name(format!("upstream-{n}-conn"))
                            .spawn(move || serve(conn, &n, &sn, &bn));
                    }
                }
            })?;
        Ok(Upstream {
            name: name.to_string(),
            port,
            stop,
            seen,
            bodies,
        })
    }

    /// `(path, body)` of every request with a body received so far.
    pub fn bodies(&self) -> Vec<PathBody> {
        self.bodies.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// `(path, host)` of every request received so far.
    pub fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock accept().
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serve keep-alive requests on one connection until the peer closes it.
fn serve(
    conn: TcpStream,
    name: &str,
    seen: &Mutex<Vec<(String, String)>>,
    bodies: &Mutex<Vec<PathBody>>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        if len > 0 {
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            if let Ok(mut b) = bodies.lock() {
                b.push((path.clone(), body));
            }
        }
        if let Ok(mut s) = seen.lock() {
            let host = headers
                .iter()
                .find(|(k, _)| k == "host")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            s.push((path.clone(), host));
        }
        let hdrs: Vec<serde_json::Value> = headers
            .iter()
            .map(|(k, v)| serde_json::json!([k, v]))
            .collect();
        let body = serde_json::json!({
            "upstream": name,
            "method": method,
            "path": path,
            "headers": hdrs,
        })
        .to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-upstream: {name}\r\nserver: echo-upstream\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
        let close = headers
            .iter()
            .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"));
        if close {
            return;
        }
    }
}
