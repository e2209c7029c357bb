//! The shape of a response the waypoint writes itself, as Envoy sends it: `text/plain` for a
//! body, and for a gRPC request the trailers-only gRPC form (`Http::Utility::sendLocalReply`).

use crate::decision::LocalResponse;

/// Whether a request is gRPC, as Envoy's `Grpc::Common::isGrpcRequestHeaders` decides: its
/// `content-type` is `application/grpc`, or that followed by `+` or `;`.
pub fn is_grpc_request(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let Some(rest) = ct
        .get(..16)
        .filter(|p| p.eq_ignore_ascii_case("application/grpc"))
        .map(|_| &ct[16..])
    else {
        return false;
    };
    rest.is_empty() || rest.starts_with('+') || rest.starts_with(';')
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`: the gRPC status for an HTTP status.
pub fn http_to_grpc_status(http: u16) -> u8 {
    match http {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    }
}

/// A body gets `content-type: text/plain` unless the reply sets one (Envoy's local reply).
pub fn add_text_content_type(l: &mut LocalResponse) {
    if !l.body.is_empty()
        && !l
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        l.headers
            .push(("content-type".to_string(), "text/plain".to_string()));
    }
}

/// Turn a local reply into Envoy's answer to a gRPC request: HTTP 200, `content-type:
/// application/grpc`, `grpc-status` (one already in the headers wins, then the reply's own,
/// else mapped from the HTTP status), the body as a percent-encoded `grpc-message`, and no
/// body: a trailers-only response.
pub fn to_grpc(l: &mut LocalResponse) {
    l.headers.retain(|(k, _)| {
        !k.eq_ignore_ascii_case("content-type") && !k.eq_ignore_ascii_case("content-length")
    });
    l.headers
        .push(("content-type".to_string(), "application/grpc".to_string()));
    if !l
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("grpc-status"))
    {
        let status = l
            .grpc_status
            .clone()
            .unwrap_or_else(|| http_to_grpc_status(l.status).to_string());
        l.headers.push(("grpc-status".to_string(), status));
    }
    if !l.body.is_empty() {
        let message = percent_encode(l.body.trim_end_matches('\n'));
        l.headers.push(("grpc-message".to_string(), message));
    }
    l.status = 200;
    l.body.clear();
}

/// Envoy's `PercentEncoding::encode` for `grpc-message`: bytes outside printable ASCII, and
/// `%`, become `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b' '..=b'~').contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> LocalResponse {
        LocalResponse {
            status,
            body: body.into(),
            headers: Vec::new(),
            grpc_status: None,
        }
    }

    fn header<'a>(l: &'a LocalResponse, name: &str) -> Option<&'a str> {
        l.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn grpc_requests_by_content_type() {
        for (ct, grpc) in [
            (Some("application/grpc"), true),
            (Some("application/grpc+proto"), true),
            (Some("application/grpc;charset=utf-8"), true),
            (Some("Application/GRPC"), true),
            (Some("application/grpc-web"), false),
            (Some("application/grpcx"), false),
            (Some("application/json"), false),
            (Some("app"), false),
            (None, false),
        ] {
            assert_eq!(is_grpc_request(ct), grpc, "{ct:?}");
        }
    }

    #[test]
    fn a_denial_to_a_grpc_request() {
        let mut l = reply(403, "RBAC: access denied");
        add_text_content_type(&mut l);
        to_grpc(&mut l);
        assert_eq!(l.status, 200);
        assert!(l.body.is_empty());
        assert_eq!(header(&l, "content-type"), Some("application/grpc"));
        assert_eq!(header(&l, "grpc-status"), Some("7"));
        assert_eq!(header(&l, "grpc-message"), Some("RBAC: access denied"));
        assert_eq!(l.headers.len(), 3, "{:?}", l.headers);
    }

    #[test]
    fn a_fault_abort_keeps_its_grpc_status() {
        let mut l = reply(200, "fault filter abort");
        l.grpc_status = Some("14".into());
        to_grpc(&mut l);
        assert_eq!(header(&l, "grpc-status"), Some("14"));
        assert_eq!(header(&l, "grpc-message"), Some("fault filter abort"));
        // Unmapped codes are UNKNOWN; messages are percent-encoded.
        let mut l = reply(418, "50% über\n");
        to_grpc(&mut l);
        assert_eq!(header(&l, "grpc-status"), Some("2"));
        assert_eq!(header(&l, "grpc-message"), Some("50%25 %C3%BCber"));
    }

    #[test]
    fn text_plain_only_for_a_body_without_a_type() {
        let mut l = reply(200, "ok");
        add_text_content_type(&mut l);
        assert_eq!(header(&l, "content-type"), Some("text/plain"));
        let mut l = reply(200, "{}");
        l.headers
            .push(("Content-Type".into(), "application/json".into()));
        add_text_content_type(&mut l);
        assert_eq!(l.headers.len(), 1);
        let mut l = reply(204, "");
        add_text_content_type(&mut l);
        assert!(l.headers.is_empty());
    }
}
