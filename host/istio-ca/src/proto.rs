//! The two messages of Istio's CA service, declared with prost's derive instead of generated
//! from the .proto (two messages do not justify a protoc build step).

/// `IstioCertificateService`'s fully qualified name (package kept as `istio.v1.auth`).
pub const SERVICE: &str = "istio.v1.auth.IstioCertificateService";

/// gRPC path of the one RPC.
pub const CREATE_CERTIFICATE: &str = "/istio.v1.auth.IstioCertificateService/CreateCertificate";

// Field numbers as in istio/api `security/v1alpha1/ca.proto` (HEAD b8f8791d, 2026-07):
// `csr = 1`, `validity_duration = 3` (tag 2 was the removed `subject_id`), `metadata = 4`
// (a `google.protobuf.Struct` istiod reads only for ztunnel's `ImpersonatedIdentity`; we do not
// send it, and an absent field is what an empty one encodes to).

/// `istio.v1.auth.IstioCertificateRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateRequest {
    /// PEM-encoded PKCS#10 certificate request.
    #[prost(string, tag = "1")]
    pub csr: String,
    /// Requested lifetime in seconds (istiod: `<= 0` means its default, 24 h).
    #[prost(int64, tag = "3")]
    pub validity_duration: i64,
}

/// `istio.v1.auth.IstioCertificateResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateResponse {
    /// PEM certificates: the leaf first, the root last (the last element may hold several
    /// concatenated roots).
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn wire_tags_match_istio() {
        let req = IstioCertificateRequest {
            csr: "x".into(),
            validity_duration: 5,
        };
        // tag 1 length-delimited "x", tag 3 varint 5.
        assert_eq!(req.encode_to_vec(), vec![0x0a, 1, b'x', 0x18, 5]);
        let resp = IstioCertificateResponse {
            cert_chain: vec!["a".into(), "b".into()],
        };
        let bytes = resp.encode_to_vec();
        assert_eq!(bytes, vec![0x0a, 1, b'a', 0x0a, 1, b'b']);
        assert_eq!(
            IstioCertificateResponse::decode(bytes.as_slice()).expect("decode"),
            resp
        );
    }
}
