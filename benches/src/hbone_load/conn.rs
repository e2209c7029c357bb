//! The load generator's HBONE side: one mutual-TLS HTTP/2 connection per dial (the h2
//! connection driven by its own task), and CONNECT streams carrying HTTP/1.1 exchanges.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use waypoint_hbone::coalesce::Coalesced;
use waypoint_hbone::limits;
use waypoint_hbone::tls::config::client_config;
use waypoint_hbone::tls::{CertStore, Identity};

use super::http1;

/// Aborts the connection's driver task when dropped.
#[derive(Debug)]
pub struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// TCP, TLS 1.3 with our certificate (ALPN h2, no SNI, as ztunnel), then HTTP/2 with
/// ztunnel's windows and frame size.
pub async fn dial(
    addr: SocketAddr,
    store: Arc<CertStore>,
    expected: Vec<Identity>,
) -> anyhow::Result<(SendRequest<Bytes>, Driver)> {
    let cfg = client_config(store, expected)?;
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    tcp.set_nodelay(true)?;
    let tls = TlsConnector::from(cfg)
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .with_context(|| format!("TLS with {addr}"))?;
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(limits::STREAM_WINDOW)
        .initial_connection_window_size(limits::CONNECTION_WINDOW)
        .max_frame_size(limits::MAX_FRAME_SIZE)
        .enable_push(false)
        .handshake::<_, Bytes>(Coalesced::new(tls))
        .await
        .with_context(|| format!("HTTP/2 with {addr}"))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("hbone-load: connection ended: {e}");
        }
    });
    Ok((send, Driver(driver)))
}

/// One CONNECT stream with an HTTP/1.1 keep-alive connection inside.
#[derive(Debug)]
pub struct Tunnel {
    sender: SendRequest<Bytes>,
    authority: String,
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received bytes not yet parsed.
    buf: BytesMut,
}

impl Tunnel {
    /// Open a CONNECT stream to `authority`; a status other than 200 is an error.
    pub async fn open(sender: SendRequest<Bytes>, authority: &str) -> anyhow::Result<Tunnel> {
        let (send, recv) = connect(sender.clone(), authority).await?;
        Ok(Tunnel {
            sender,
            authority: authority.to_string(),
            send,
            recv,
            buf: BytesMut::with_capacity(4096),
        })
    }

    /// Replace a failed stream with a fresh one on the same connection (`false`: cannot).
    pub async fn reopen(&mut self) -> bool {
        match connect(self.sender.clone(), &self.authority).await {
            Ok((send, recv)) => {
                self.send = send;
                self.recv = recv;
                self.buf.clear();
                true
            }
            Err(_) => false,
        }
    }

    /// Send `request` (a whole HTTP/1.1 request without a body) and read one response;
    /// returns its status.
    pub async fn exchange(&mut self, request: &Bytes) -> anyhow::Result<u16> {
        // h2 queues the data and sends it as the windows allow (ours are megabytes).
        self.send
            .send_data(request.clone(), false)
            .context("send request")?;
        loop {
            if let Some((status, used)) = http1::parse_response(&self.buf)? {
                let _ = self.buf.split_to(used);
                return Ok(status);
            }
            match self.recv.data().await {
                Some(Ok(chunk)) => {
                    let _ = self.recv.flow_control().release_capacity(chunk.len());
                    self.buf.extend_from_slice(&chunk);
                }
                Some(Err(e)) => return Err(e).context("receive response"),
                None => bail!("tunnel closed by the waypoint"),
            }
        }
    }
}

async fn connect(
    sender: SendRequest<Bytes>,
    authority: &str,
) -> anyhow::Result<(SendStream<Bytes>, RecvStream)> {
    let req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(authority)
        .version(http::Version::HTTP_2)
        .body(())?;
    let mut sender = sender.ready().await.context("connection not ready")?;
    let (resp, send) = sender.send_request(req, false).context("CONNECT")?;
    let resp = resp.await.context("CONNECT response")?;
    if resp.status() != http::StatusCode::OK {
        bail!("CONNECT {authority} answered {}", resp.status());
    }
    Ok((send, resp.into_body()))
}
