//! One unary gRPC call over the upstream pool (HTTP/2, a length-prefixed protobuf message,
//! the status in trailers or a trailers-only answer): what the ext_authz and RLS clients share.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Request, Version};
use http_body_util::{BodyExt, Full};
use prost::Message;

use super::{Target, Upstreams, Wire};

/// Why a call produced no message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnaryError {
    /// The request could not be sent or the answer not read.
    Transport(String),
    /// A gRPC status other than OK (an HTTP status other than 200 is UNKNOWN, 2).
    Grpc(i32, String),
    /// OK with no message, a compressed one, or one that does not decode.
    BadResponse(String),
}

/// POST `request` to `uri` (`http://<authority><path>`) at `target` and decode the answer.
pub async fn call<Resp: Message + Default>(
    upstreams: &Upstreams,
    target: &Target,
    uri: &str,
    request: &impl Message,
) -> Result<Resp, UnaryError> {
    let msg = request.encode_to_vec();
    let mut framed = BytesMut::with_capacity(5 + msg.len());
    framed.put_u8(0);
    framed.put_u32(msg.len() as u32);
    framed.put_slice(&msg);
    let body = Full::new(framed.freeze()).map_err(|e| match e {}).boxed();
    let mut req = Request::builder()
        .method("POST")
        .uri(uri)
        .version(Version::HTTP_2)
        .body(body)
        .map_err(|e| UnaryError::Transport(e.to_string()))?;
    let h = req.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(http::header::TE, HeaderValue::from_static("trailers"));
    let resp = upstreams
        .send(target, Wire::Http2, req)
        .await
        .map_err(|e| UnaryError::Transport(e.to_string()))?;
    if resp.status() != http::StatusCode::OK {
        return Err(UnaryError::Grpc(
            2,
            format!("HTTP status {}", resp.status()),
        ));
    }
    let (parts, body) = resp.into_parts();
    let collected = body
        .collect()
        .await
        .map_err(|e| UnaryError::Transport(e.to_string()))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let grpc_status = |m: &http::HeaderMap| {
        m.get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
    };
    let status = grpc_status(&trailers).or_else(|| grpc_status(&parts.headers));
    if status != Some(0) {
        let msg = trailers
            .get("grpc-message")
            .or_else(|| parts.headers.get("grpc-message"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        return Err(UnaryError::Grpc(status.unwrap_or(2), msg));
    }
    let bytes: Bytes = collected.to_bytes();
    if bytes.len() < 5 || bytes[0] != 0 {
        return Err(UnaryError::BadResponse(
            "missing or compressed gRPC message".into(),
        ));
    }
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    let msg = bytes
        .get(5..5 + len)
        .ok_or_else(|| UnaryError::BadResponse("truncated gRPC message".into()))?;
    Resp::decode(msg).map_err(|e| UnaryError::BadResponse(e.to_string()))
}
