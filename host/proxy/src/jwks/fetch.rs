//! One JWKS (or OpenID configuration) GET over HTTP or HTTPS (the system's trust roots),
//! bounded by the rule's `timeout` and a 1 MiB body.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The fetch client.
pub(crate) type Client =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

const MAX_BODY: usize = 1 << 20;

pub(crate) fn client() -> Client {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "reading system trust roots for JWKS fetches");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(roots = added, "trust roots for https JWKS fetches");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => builder.with_tls_config(b.with_root_certificates(roots).with_no_client_auth()),
        // ring supports the default versions; kept as a fallback rather than a panic.
        Err(_) => builder.with_tls_config(
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        ),
    };
    let https = builder.https_or_http().enable_http1().build();
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https)
}

/// GET `uri`; the body as text, or why not.
pub(crate) async fn get(client: &Client, uri: &str, timeout: Duration) -> Result<String, String> {
    let parsed: http::Uri = uri.parse().map_err(|e| format!("bad URI {uri:?}: {e}"))?;
    let fut = async {
        let resp = client
            .get(parsed)
            .await
            .map_err(|e| format!("GET {uri}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {uri}: status {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("GET {uri}: body: {e}"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| format!("GET {uri}: body is not UTF-8"))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("GET {uri}: no answer within {timeout:?}"))?
}

/// OpenID discovery: the configuration at `config_uri`, then its `jwks_uri`.
pub(crate) async fn discover(
    client: &Client,
    config_uri: &str,
    timeout: Duration,
) -> Result<String, String> {
    let text = get(client, config_uri, timeout).await?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{config_uri}: not JSON: {e}"))?;
    let jwks_uri = v
        .get("jwks_uri")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("{config_uri}: no `jwks_uri`"))?;
    get(client, jwks_uri, timeout).await
}
