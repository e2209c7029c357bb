//! Just enough HTTP/1.1 to read keep-alive responses: the head (httparse), then a body
//! delimited by `content-length` or chunked encoding.

use anyhow::{bail, Context};

/// A complete response at the start of `buf`: its status and length in bytes; `None` when
/// more bytes are needed.
pub fn parse_response(buf: &[u8]) -> anyhow::Result<Option<(u16, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf).context("malformed response head")? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = resp.code.unwrap_or(0);
    let mut length = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).context("content-length")?;
            length = Some(v.trim().parse::<usize>().context("content-length")?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.eq_ignore_ascii_case(b"chunked");
        }
    }
    let body = &buf[head..];
    let used = if (100..200).contains(&status) || status == 204 || status == 304 {
        Some(0)
    } else if chunked {
        chunked_length(body)?
    } else if let Some(n) = length {
        (body.len() >= n).then_some(n)
    } else {
        bail!("response {status} has neither content-length nor chunked encoding");
    };
    Ok(used.map(|n| (status, head + n)))
}

/// Bytes of a complete chunked body at the start of `b` (trailers included), if complete.
fn chunked_length(b: &[u8]) -> anyhow::Result<Option<usize>> {
    let mut at = 0;
    loop {
        let Some(eol) = find_crlf(&b[at..]) else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&b[at..at + eol]).context("chunk size")?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).context("chunk size")?;
        at += eol + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = find_crlf(&b[at..]) else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if b.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_and_partial() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabcHTTP/1.1";
        assert_eq!(parse_response(r).expect("ok"), Some((200, r.len() - 8)));
        assert_eq!(parse_response(&r[..40]).expect("ok"), None);
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-le").expect("ok"),
            None
        );
    }

    #[test]
    fn chunked() {
        let r =
            b"HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(parse_response(r).expect("ok"), Some((403, r.len())));
        assert_eq!(parse_response(&r[..r.len() - 1]).expect("ok"), None);
    }

    #[test]
    fn no_framing_is_an_error() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\nabc").is_err());
    }
}
