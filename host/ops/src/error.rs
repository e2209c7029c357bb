//! Why a verb failed, naming the resource: a bad name, an existing waypoint or binding, a
//! waypoint not found or not a waypoint, a wait that timed out, or the API server's answer.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("waypoint name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error(
        "Gateway {key} already exists (class {class}); pass --overwrite to replace it with the waypoint"
    )]
    AlreadyExists { key: String, class: String },
    #[error(
        "Namespace {namespace} already uses waypoint {current} (label istio.io/use-waypoint); \
         pass --overwrite to point it at {wanted}"
    )]
    NamespaceBound {
        namespace: String,
        current: String,
        wanted: String,
    },
    #[error("Namespace {0} not found")]
    NamespaceNotFound(String),
    #[error("Gateway {key} is not a waypoint (class {class}); left as it is")]
    NotAWaypoint { key: String, class: String },
    #[error("waypoint {} not found", .0.join(", "))]
    NotFound(Vec<String>),
    #[error("the Gateway API CRDs are not installed (Gateways are not served): {what}")]
    NoGatewayApi { what: String },
    #[error(
        "waypoint {key} not Programmed after {}s: {last}",
        .after.as_secs_f64()
    )]
    Timeout {
        key: String,
        after: Duration,
        /// The last Programmed condition seen (or that there was none).
        last: String,
    },
    /// The API server refused (its `Status`: forbidden, invalid, conflict...).
    #[error("{what}: {message} ({code} {reason})")]
    Api {
        what: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// The API server could not be asked (connection, TLS, decoding).
    #[error("{what}")]
    Kube {
        what: String,
        /// Boxed: kube's error is large, and this enum is every verb's `Err`.
        #[source]
        source: Box<kube::Error>,
    },
    #[error("encoding {what}: {reason}")]
    Encode { what: String, reason: String },
}

impl Error {
    /// A kube error, with what was being done (`creating Gateway ns/name`). The API server's
    /// own answer is kept as its message, code and reason (kube's display of it repeats them).
    pub fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let what = what.into();
        move |source| match source {
            kube::Error::Api(s) => Error::Api {
                what,
                code: s.code,
                reason: s.reason,
                message: s.message.trim().to_string(),
            },
            other => Error::Kube {
                what,
                source: Box::new(other),
            },
        }
    }
}

/// Whether `e` is the API server's 404 for an object or for a kind it does not serve.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

/// Whether `e` is a 404 for a kind the API server does not serve (its mux answers
/// `404 page not found` as text, not a `Status` object: the CRD is not installed).
pub fn is_unserved(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 && s.reason != "NotFound")
}
