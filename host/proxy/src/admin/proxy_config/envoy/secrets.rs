//! Certificates Envoy serves with: SDS secrets from the config dump (their certificates only;
//! Envoy redacts keys and none is read) and file-based ones from `/certs`.

use serde_json::Value;

use super::dump_configs;
use crate::admin::proxy_config::view::SecretView;

/// Bytes of an Envoy `DataSource` given inline (files are read by Envoy; `/certs` has them).
fn inline_data(ds: &Value) -> Option<Vec<u8>> {
    use base64::Engine as _;
    if let Some(s) = ds["inline_string"].as_str() {
        return Some(s.as_bytes().to_vec());
    }
    ds["inline_bytes"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
}

/// DER of every `CERTIFICATE` block of a PEM text.
fn pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

/// SDS secrets (what `waypoint xds` sends: `default`, `ROOTCA`), from their certificates only:
/// the private key is never read (Envoy shows it redacted anyway).
pub(super) fn sds_secrets(dump: &Value, warnings: &mut Vec<String>) -> Vec<SecretView> {
    let mut out = Vec::new();
    for d in dump_configs(dump, ".SecretsConfigDump") {
        for key in ["static_secrets", "dynamic_active_secrets"] {
            for x in d[key].as_array().into_iter().flatten() {
                let name = x["name"].as_str().unwrap_or("?");
                let secret = &x["secret"];
                let mut push = |der: &[u8], kind: &str, len: usize| {
                    match crate::admin::proxy_config::certs::secret(der, name, kind, len) {
                        Ok(s) => out.push(s),
                        Err(e) => warnings.push(format!("secret {name}: {e}")),
                    }
                };
                if let Some(pem) = inline_data(&secret["tls_certificate"]["certificate_chain"]) {
                    let chain = pem_certs(&pem);
                    if let Some(leaf) = chain.first() {
                        push(leaf, "cert_chain", chain.len());
                    }
                }
                if let Some(pem) = inline_data(&secret["validation_context"]["trusted_ca"]) {
                    for der in pem_certs(&pem) {
                        push(&der, "root", 1);
                    }
                }
            }
        }
    }
    out
}

/// Envoy's `/certs`: each distinct certificate once (many TLS contexts share the files).
pub(super) fn file_secrets(certs: &Value) -> Vec<SecretView> {
    let mut out: Vec<SecretView> = Vec::new();
    for entry in certs["certificates"].as_array().into_iter().flatten() {
        for (key, kind) in [("cert_chain", "cert_chain"), ("ca_cert", "root")] {
            let list = entry[key].as_array().map(Vec::as_slice).unwrap_or(&[]);
            for c in list {
                let sans: Vec<String> = c["subject_alt_names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| {
                        s.as_object()
                            .and_then(|o| o.values().next())
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect();
                let s = SecretView {
                    name: c["path"].as_str().unwrap_or("?").to_string(),
                    kind: kind.into(),
                    identity: sans.iter().find(|s| s.starts_with("spiffe://")).cloned(),
                    sans,
                    serial: c["serial_number"]
                        .as_str()
                        .unwrap_or("")
                        .to_ascii_lowercase(),
                    not_before: c["valid_from"].as_str().unwrap_or("").to_string(),
                    not_after: c["expiration_time"].as_str().unwrap_or("").to_string(),
                    chain_length: if kind == "root" { 1 } else { list.len() },
                };
                if !out
                    .iter()
                    .any(|o| o.name == s.name && o.serial == s.serial && o.kind == s.kind)
                {
                    out.push(s);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn certs_deduplicated_and_never_more_than_envoy_said() {
        let c = json!({"path": "/c/waypoint.pem", "serial_number": "1C0A",
            "subject_alt_names": [{"uri": "spiffe://cluster.local/ns/default/sa/waypoint"}],
            "valid_from": "2026-12-07T00:00:00Z", "expiration_time": "2026-12-08T00:00:00Z"});
        let r = json!({"path": "/c/ca.pem", "serial_number": "01", "subject_alt_names": [],
            "valid_from": "2026-01-01T00:00:00Z", "expiration_time": "2036-01-01T00:00:00Z"});
        let certs = json!({"certificates": [
            {"cert_chain": [c.clone()], "ca_cert": [r.clone()]},
            {"cert_chain": [c], "ca_cert": [r]},
        ]});
        let s = file_secrets(&certs);
        assert_eq!(s.len(), 2, "{s:#?}");
        assert_eq!(s[0].kind, "cert_chain");
        assert_eq!(s[0].serial, "1c0a");
        assert_eq!(
            s[0].identity.as_deref(),
            Some("spiffe://cluster.local/ns/default/sa/waypoint")
        );
        assert_eq!(s[1].kind, "root");
        assert_eq!(s[1].not_after, "2036-01-01T00:00:00Z");
    }
}
