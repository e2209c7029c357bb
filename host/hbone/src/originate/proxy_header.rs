//! PROXY protocol v2 header reader (haproxy proxy-protocol.txt §2.2): the addresses Envoy's
//! upstream `proxy_protocol` transport socket writes, and its TLVs (our pod identity).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The 12-byte v2 signature.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A parsed v2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// `None` for the LOCAL command or an UNSPEC address family.
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
    /// (type, value) in order of appearance.
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

impl ProxyHeader {
    /// The value of the first TLV of `kind`.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|(t, _)| *t == kind)
            .map(|(_, v)| v.as_slice())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("not a PROXY v2 header (bad signature)")]
    Signature,
    #[error("PROXY version {0} (only 2 is supported)")]
    Version(u8),
    #[error("PROXY command {0:#x} unknown")]
    Command(u8),
    #[error("PROXY address block of {len} bytes too short for family {family:#x}")]
    Short { family: u8, len: usize },
    #[error("PROXY TLV truncated at offset {0}")]
    Tlv(usize),
    #[error("reading the PROXY header: {0}")]
    Io(String),
}

/// Read exactly one v2 header from `r` (nothing after it is consumed).
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<ProxyHeader, HeaderError> {
    let mut fixed = [0u8; 16];
    r.read_exact(&mut fixed)
        .await
        .map_err(|e| HeaderError::Io(e.to_string()))?;
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let mut rest = vec![0u8; len];
    r.read_exact(&mut rest)
        .await
        .map_err(|e| HeaderError::Io(e.to_string()))?;
    parse(&fixed, &rest)
}

/// Parse the 16 fixed bytes and the `len` bytes that follow them.
pub fn parse(fixed: &[u8; 16], rest: &[u8]) -> Result<ProxyHeader, HeaderError> {
    if fixed[..12] != SIGNATURE {
        return Err(HeaderError::Signature);
    }
    let version = fixed[12] >> 4;
    if version != 2 {
        return Err(HeaderError::Version(version));
    }
    let command = fixed[12] & 0x0f;
    let family = fixed[13];
    // LOCAL (0x0): the receiver must ignore the address block; PROXY (0x1) carries addresses.
    let local = match command {
        0x0 => true,
        0x1 => false,
        c => return Err(HeaderError::Command(c)),
    };
    let addr_len = match family >> 4 {
        0x1 => 12,
        0x2 => 36,
        0x3 => 216,
        _ => 0,
    };
    if rest.len() < addr_len {
        return Err(HeaderError::Short {
            family,
            len: rest.len(),
        });
    }
    let (source, destination) = match (local, family >> 4) {
        (false, 0x1) => {
            let ip = |o: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    rest[o],
                    rest[o + 1],
                    rest[o + 2],
                    rest[o + 3],
                ))
            };
            let port = |o: usize| u16::from_be_bytes([rest[o], rest[o + 1]]);
            (
                Some(SocketAddr::new(ip(0), port(8))),
                Some(SocketAddr::new(ip(4), port(10))),
            )
        }
        (false, 0x2) => {
            let ip = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&rest[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            let port = |o: usize| u16::from_be_bytes([rest[o], rest[o + 1]]);
            (
                Some(SocketAddr::new(ip(0), port(32))),
                Some(SocketAddr::new(ip(16), port(34))),
            )
        }
        _ => (None, None),
    };
    let mut tlvs = Vec::new();
    let mut i = addr_len;
    while i < rest.len() {
        if i + 3 > rest.len() {
            return Err(HeaderError::Tlv(i));
        }
        let kind = rest[i];
        let n = usize::from(u16::from_be_bytes([rest[i + 1], rest[i + 2]]));
        let end = i + 3 + n;
        if end > rest.len() {
            return Err(HeaderError::Tlv(i));
        }
        tlvs.push((kind, rest[i + 3..end].to_vec()));
        i = end;
    }
    Ok(ProxyHeader {
        source,
        destination,
        tlvs,
    })
}

/// Encode a v2 PROXY header (TCP over IPv4 or IPv6); used by tests and tools.
pub fn encode(source: SocketAddr, destination: SocketAddr, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut addrs = Vec::new();
    let family = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            addrs.extend_from_slice(&s.octets());
            addrs.extend_from_slice(&d.octets());
            0x11
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            addrs.extend_from_slice(&v6(s).octets());
            addrs.extend_from_slice(&v6(d).octets());
            0x21
        }
    };
    addrs.extend_from_slice(&source.port().to_be_bytes());
    addrs.extend_from_slice(&destination.port().to_be_bytes());
    for (kind, value) in tlvs {
        addrs.push(*kind);
        addrs.extend_from_slice(&(value.len() as u16).to_be_bytes());
        addrs.extend_from_slice(value);
    }
    let mut out = SIGNATURE.to_vec();
    out.push(0x21);
    out.push(family);
    out.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    out.extend_from_slice(&addrs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(bytes: &[u8]) -> ([u8; 16], Vec<u8>) {
        let mut fixed = [0u8; 16];
        fixed.copy_from_slice(&bytes[..16]);
        (fixed, bytes[16..].to_vec())
    }

    #[test]
    fn round_trips_and_rejects() {
        let src: SocketAddr = "10.0.0.7:43210".parse().expect("addr");
        let v4: SocketAddr = "10.1.2.3:9080".parse().expect("addr");
        let v6: SocketAddr = "[fd00::5]:8080".parse().expect("addr");
        let id = b"spiffe://cluster.local/ns/default/sa/reviews";
        for (dst, tlvs) in [(v4, vec![(0xE0u8, &id[..])]), (v6, vec![]), (v4, vec![])] {
            let (fixed, rest) = split(&encode(src, dst, &tlvs));
            let h = parse(&fixed, &rest).expect("parse");
            assert_eq!(h.destination, Some(dst));
            assert_eq!(h.tlv(0xE0), tlvs.first().map(|(_, v)| *v));
        }
        // Envoy's LOCAL header (no addresses).
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        let (fixed, rest) = split(&local);
        assert_eq!(parse(&fixed, &rest).expect("local").destination, None);
        // Errors: signature, version, command, short address block, truncated TLV.
        let good = encode(src, v4, &[(0xE0, b"x")]);
        let cases: Vec<(usize, u8, HeaderError)> = vec![
            (0, b'X', HeaderError::Signature),
            (12, 0x11, HeaderError::Version(1)),
            (12, 0x2f, HeaderError::Command(0xf)),
        ];
        for (at, byte, want) in cases {
            let mut b = good.clone();
            b[at] = byte;
            let (fixed, rest) = split(&b);
            assert_eq!(parse(&fixed, &rest), Err(want));
        }
        let (fixed, rest) = split(&good);
        assert!(matches!(
            parse(&fixed, &rest[..8]),
            Err(HeaderError::Short { .. })
        ));
        assert_eq!(
            parse(&fixed, &rest[..rest.len() - 1]),
            Err(HeaderError::Tlv(12))
        );
    }
}
