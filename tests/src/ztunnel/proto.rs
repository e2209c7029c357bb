//! The two protobuf messages of `istio.v1.auth.IstioCertificateService` (citadel.proto), hand
//! coded: a reader for `IstioCertificateRequest.csr` and a writer for the response's chain.

/// Read a base-128 varint at `*pos`.
fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `IstioCertificateRequest.csr` (field 1, string); other fields (validity_duration = 3,
/// metadata = 4) are skipped. `None` when the message is malformed or has no CSR.
pub fn request_csr(buf: &[u8]) -> Option<String> {
    let mut pos = 0;
    let mut csr = None;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(buf, &mut pos)?;
            }
            1 => pos = pos.checked_add(8)?,
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len)?;
                let bytes = buf.get(pos..end)?;
                if field == 1 {
                    csr = Some(String::from_utf8(bytes.to_vec()).ok()?);
                }
                pos = end;
            }
            5 => pos = pos.checked_add(4)?,
            _ => return None,
        }
    }
    if pos != buf.len() {
        return None;
    }
    csr
}

/// `IstioCertificateResponse { repeated string cert_chain = 1 }`.
pub fn response(chain: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chain {
        out.push(0x0a);
        put_varint(&mut out, c.len() as u64);
        out.extend_from_slice(c.as_bytes());
    }
    out
}

/// A gRPC length-prefixed message (uncompressed).
pub fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 5);
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// The message of one uncompressed gRPC frame (the whole unary request body).
pub fn grpc_unframe(body: &[u8]) -> Option<&[u8]> {
    let (head, rest) = body.split_at_checked(5)?;
    if head[0] != 0 {
        return None;
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    (rest.len() == len).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_fields() {
        // csr = "abc", validity_duration = 86400, metadata = {} (empty Struct).
        let mut req = vec![0x0a, 3, b'a', b'b', b'c', 0x18];
        put_varint(&mut req, 86400);
        req.extend_from_slice(&[0x22, 0]);
        for (buf, want) in [
            (req.clone(), Some("abc")),
            (vec![0x18, 0x01], None),
            (vec![0x0a, 5, b'a'], None),
            (vec![0x0a, 2, 0xff, 0xfe], None),
            (vec![], None),
        ] {
            assert_eq!(request_csr(&buf).as_deref(), want, "{buf:?}");
        }
    }

    #[test]
    fn response_and_frames() {
        let long = "x".repeat(300);
        let r = response(&["ab".into(), long.clone()]);
        assert_eq!(&r[..4], &[0x0a, 2, b'a', b'b']);
        assert_eq!(&r[4..7], &[0x0a, 0xac, 0x02]);
        assert_eq!(r.len(), 7 + 300);
        let f = grpc_frame(&r);
        assert_eq!(grpc_unframe(&f), Some(&r[..]));
        assert_eq!(grpc_unframe(&f[..f.len() - 1]), None);
        assert_eq!(grpc_unframe(&[1, 0, 0, 0, 0]), None);
    }
}
