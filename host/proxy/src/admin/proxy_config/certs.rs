//! Certificates as `proxy-config secrets` shows them: identity (SPIFFE URI SAN), serial and
//! validity of the chain the waypoint presents and of each root it trusts. Keys never appear.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::view::SecretView;

/// The host's certificate view: the leaf of `chain` as `default` (Istio's SDS name for the
/// workload certificate) and each root as `ROOTCA`. Unparseable certificates are reported in
/// the returned warnings, never skipped silently.
pub fn secrets(chain: &[&[u8]], roots: &[&[u8]]) -> (Vec<SecretView>, Vec<String>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    if let Some(leaf) = chain.first() {
        match secret(leaf, "default", "cert_chain", chain.len()) {
            Ok(s) => out.push(s),
            Err(e) => warnings.push(format!("workload certificate: {e}")),
        }
    }
    for (i, r) in roots.iter().enumerate() {
        match secret(r, "ROOTCA", "root", 1) {
            Ok(s) => out.push(s),
            Err(e) => warnings.push(format!("root certificate {i}: {e}")),
        }
    }
    (out, warnings)
}

/// One certificate (DER) as a secret row.
pub fn secret(
    der: &[u8],
    name: &str,
    kind: &str,
    chain_length: usize,
) -> Result<SecretView, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let mut sans = Vec::new();
    let mut identity = None;
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::URI(u) => {
                    if identity.is_none() && u.starts_with("spiffe://") {
                        identity = Some(u.to_string());
                    }
                    sans.push(u.to_string());
                }
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                other => sans.push(other.to_string()),
            }
        }
    }
    let validity = cert.validity();
    Ok(SecretView {
        name: name.to_string(),
        kind: kind.to_string(),
        identity,
        sans,
        serial: serial_hex(cert.raw_serial()),
        not_before: rfc3339(validity.not_before.timestamp()),
        not_after: rfc3339(validity.not_after.timestamp()),
        chain_length,
    })
}

/// Lower-case hex without leading zero bytes (as Envoy's `/certs` prints serials).
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    raw[start..].iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the Unix epoch as RFC 3339 UTC (`2026-12-07T19:12:52Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_670_772), "2026-12-07T19:12:52Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn serials_drop_leading_zero_bytes() {
        assert_eq!(serial_hex(&[0, 0x1c, 0x0a]), "1c0a");
        assert_eq!(serial_hex(&[0]), "00");
        assert_eq!(serial_hex(&[0xff]), "ff");
    }

    #[test]
    fn garbage_is_an_error_not_a_row() {
        let (rows, warnings) = secrets(&[b"nope"], &[]);
        assert!(rows.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("workload certificate: "));
    }
}
