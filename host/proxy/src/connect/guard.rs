//! Which CONNECT destinations the waypoint refuses before relaying a byte: malformed
//! authorities, its own host (loopback, unspecified, link-local) and its own listeners.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use http::StatusCode;

/// What the proxy accepts inside tunnels, beyond the policy config.
#[derive(Debug)]
pub struct ProxyOptions {
    /// `Upgrade` types forwarded (Envoy HCM `upgrade_configs`; Istio configures `websocket`
    /// only), lowercase. Any other type is refused with 403; `h2c` is always stripped instead.
    pub upgrades: Vec<String>,
    /// Forward `CONNECT` requests made inside a tunnel (Envoy `allow_connect` / a `CONNECT`
    /// upgrade config); off, as on Istio's waypoint HTTP chains: refused with 403.
    pub allow_connect: bool,
    /// The waypoint's own listener addresses, filled once they are bound; a tunnel to any of
    /// them is refused.
    pub listeners: OnceLock<Vec<SocketAddr>>,
    /// Set when the waypoint starts draining: HTTP/1 responses inside tunnels carry
    /// `connection: close` and HTTP/2 connections inside tunnels get a GOAWAY (Envoy's drain).
    pub drain: Drain,
}

/// The drain signal for connections inside tunnels.
#[derive(Debug, Default)]
pub struct Drain {
    on: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Drain {
    /// Start draining (idempotent).
    pub fn start(&self) {
        if !self.on.swap(true, std::sync::atomic::Ordering::Release) {
            self.notify.notify_waiters();
        }
    }

    pub fn is_draining(&self) -> bool {
        self.on.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Resolves once draining has started.
    pub async fn started(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_draining() {
            return;
        }
        notified.await;
    }
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            upgrades: vec!["websocket".to_string()],
            allow_connect: false,
            listeners: OnceLock::new(),
            drain: Drain::default(),
        }
    }
}

impl ProxyOptions {
    /// Record the bound listener addresses (HBONE first). Later calls are ignored.
    pub fn set_listeners(&self, addrs: Vec<SocketAddr>) {
        let _ = self.listeners.set(addrs);
    }

    /// Is this upgrade type forwarded?
    pub fn upgrade_allowed(&self, kind: &str) -> bool {
        self.upgrades.iter().any(|u| u.eq_ignore_ascii_case(kind))
    }

    /// Check a CONNECT destination. `authority` is the `:authority` (`host:port`), `addr` its
    /// parse as a socket address. `Err(400)`: no usable port (Envoy and ztunnel reject a
    /// CONNECT authority without a valid port as a bad request). `Err(403)`: the waypoint's
    /// own host or listeners (ztunnel refuses a tunnel to itself, `Error::SelfCall`, and never
    /// connects; Istio's waypoint has no filter chain for such an address).
    pub fn check_destination(
        &self,
        authority: &str,
        addr: Option<SocketAddr>,
    ) -> Result<(), StatusCode> {
        let port = match addr {
            Some(a) => Some(a.port()),
            None => waypoint_core::request::split_host_port(authority).1,
        };
        if port.is_none_or(|p| p == 0) {
            return Err(StatusCode::BAD_REQUEST);
        }
        let Some(addr) = addr else {
            // A hostname: only ever resolved through the config's services, never by DNS.
            return Ok(());
        };
        let listeners = self.listeners.get().map(Vec::as_slice).unwrap_or(&[]);
        if refused(addr, listeners) {
            return Err(StatusCode::FORBIDDEN);
        }
        Ok(())
    }
}

/// The address is the waypoint's own host or one of its listeners. Loopback destinations are
/// refused unless the HBONE listener (first of `listeners`) itself is on loopback: then every
/// client is already on this host (a local test set-up), and only the listeners stay off-limits.
fn refused(addr: SocketAddr, listeners: &[SocketAddr]) -> bool {
    let ip = canonical(addr.ip());
    if ip.is_unspecified() || is_link_local(ip) {
        return true;
    }
    let local_only = listeners.first().is_some_and(|l| l.ip().is_loopback());
    if ip.is_loopback() && !local_only {
        return true;
    }
    listeners.iter().any(|l| {
        l.port() == addr.port()
            && (canonical(l.ip()) == ip || l.ip().is_unspecified() || ip.is_loopback())
    })
}

/// IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// 169.254.0.0/16 and fe80::/10.
fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(o: &ProxyOptions, authority: &str) -> Result<(), StatusCode> {
        o.check_destination(authority, authority.parse().ok())
    }

    #[test]
    fn destinations() {
        let cluster = ProxyOptions::default();
        cluster.set_listeners(vec![
            "0.0.0.0:15008".parse().expect("addr"),
            "127.0.0.1:15000".parse().expect("addr"),
        ]);
        for (authority, want) in [
            ("10.1.2.3:9080", Ok(())),
            ("reviews:9080", Ok(())),
            ("[fd00::1]:80", Ok(())),
            ("10.1.2.3:0", Err(StatusCode::BAD_REQUEST)),
            ("reviews:0", Err(StatusCode::BAD_REQUEST)),
            ("reviews", Err(StatusCode::BAD_REQUEST)),
            ("10.1.2.3", Err(StatusCode::BAD_REQUEST)),
            ("127.0.0.1:15000", Err(StatusCode::FORBIDDEN)),
            ("127.0.0.1:8080", Err(StatusCode::FORBIDDEN)),
            ("127.9.9.9:80", Err(StatusCode::FORBIDDEN)),
            ("[::1]:80", Err(StatusCode::FORBIDDEN)),
            ("[::ffff:127.0.0.1]:80", Err(StatusCode::FORBIDDEN)),
            ("0.0.0.0:80", Err(StatusCode::FORBIDDEN)),
            ("[::]:80", Err(StatusCode::FORBIDDEN)),
            ("169.254.169.254:80", Err(StatusCode::FORBIDDEN)),
            ("[fe80::1]:80", Err(StatusCode::FORBIDDEN)),
            // A listener on all interfaces: its port on any address may be this host (Istio
            // reserves 15000-15090 for itself anyway).
            ("10.1.2.3:15008", Err(StatusCode::FORBIDDEN)),
            ("10.1.2.3:15000", Ok(())),
        ] {
            assert_eq!(check(&cluster, authority), want, "{authority}");
        }
        // A waypoint whose HBONE listener is on loopback (tests): loopback is reachable, its
        // own listeners are not.
        let local = ProxyOptions::default();
        local.set_listeners(vec![
            "127.0.0.1:40001".parse().expect("addr"),
            "127.0.0.1:40002".parse().expect("addr"),
        ]);
        for (authority, want) in [
            ("127.0.0.1:8080", Ok(())),
            ("127.0.0.5:40001", Err(StatusCode::FORBIDDEN)),
            ("127.0.0.1:40002", Err(StatusCode::FORBIDDEN)),
            ("0.0.0.0:40002", Err(StatusCode::FORBIDDEN)),
            ("169.254.1.1:80", Err(StatusCode::FORBIDDEN)),
        ] {
            assert_eq!(check(&local, authority), want, "{authority}");
        }
    }

    #[test]
    fn upgrades() {
        let o = ProxyOptions::default();
        assert!(o.upgrade_allowed("WebSocket"));
        assert!(!o.upgrade_allowed("h2c"));
        assert!(!o.upgrade_allowed("foo"));
    }
}
