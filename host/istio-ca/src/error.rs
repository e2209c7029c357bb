//! What can go wrong obtaining a certificate from the CA, and which failures are worth
//! retrying (transport, CA unavailable) versus fatal at start-up (bad token, bad files).

use std::path::PathBuf;

/// A failed certificate request.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    // `error`, not `source`: the I/O error is part of this message, not a separate cause
    // (anyhow's `{:#}` would print it twice).
    #[error("reading the CA token {}: {error}", path.display())]
    Token {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the CA token file {} is empty", .0.display())]
    EmptyToken(PathBuf),
    #[error("reading the CA root certificate {}: {error}", path.display())]
    Root {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("bad CA address {address}: {reason}")]
    Address { address: String, reason: String },
    #[error("connecting to the CA at {address}: {detail}")]
    Connect { address: String, detail: String },
    #[error("the CA rejected our credentials (UNAUTHENTICATED; check --ca-token, its audience `istio-ca`, and --cluster-id): {0}")]
    Unauthenticated(String),
    #[error("the CA refused the request ({code:?}): {message}")]
    Rpc { code: tonic::Code, message: String },
    #[error("building the certificate request: {0}")]
    Csr(rcgen::Error),
    #[error("{0} is not a valid gRPC metadata value")]
    Metadata(&'static str),
    #[error("the CA's certificate chain: {0}")]
    Chain(String),
    #[error("installing the certificate: {0}")]
    Install(String),
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        CaError::Csr(e)
    }
}

impl CaError {
    /// Failures that may go away by themselves (the CA restarting, a network blip): retried
    /// at start-up. Everything is retried during rotation (a token may be fixed or rotated).
    pub fn is_retryable(&self) -> bool {
        match self {
            CaError::Connect { .. } => true,
            CaError::Rpc { code, .. } => matches!(
                code,
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Aborted
                    | tonic::Code::Internal
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
            ),
            _ => false,
        }
    }

    pub(crate) fn from_status(status: tonic::Status) -> Self {
        match status.code() {
            tonic::Code::Unauthenticated => CaError::Unauthenticated(status.message().to_string()),
            code => CaError::Rpc {
                code,
                message: status.message().to_string(),
            },
        }
    }
}

/// An error and its sources on one line (tonic's transport errors say little at the top).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
