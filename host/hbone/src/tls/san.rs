//! SPIFFE identities read from a certificate's URI SANs: all of them, or the one a mesh
//! certificate must carry (X.509-SVID).

use rustls::pki_types::CertificateDer;

use super::identity::Identity;

/// Every SPIFFE identity in the URI SANs of `cert` (unparseable certificates give none).
pub fn spiffe_sans(cert: &CertificateDer<'_>) -> Vec<Identity> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => u.parse::<Identity>().ok(),
            _ => None,
        })
        .collect()
}

/// The one SPIFFE identity of `cert`. As SPIFFE's X.509-SVID spec (and ztunnel) require, the
/// certificate carries exactly one URI SAN and it is a SPIFFE ID: a second URI SAN makes it
/// ambiguous which identity policy should see, so it is rejected rather than "first wins".
pub fn spiffe_id(cert: &CertificateDer<'_>) -> Result<Identity, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("unparseable certificate: {e}"))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName: {e}"))?
        .ok_or("no subjectAltName")?;
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [] => Err("no SPIFFE URI SAN".into()),
        [one] => one
            .parse::<Identity>()
            .map_err(|e| format!("URI SAN is not a SPIFFE identity: {e}")),
        many => Err(format!(
            "{} URI SANs; a SPIFFE certificate carries exactly one",
            many.len()
        )),
    }
}
