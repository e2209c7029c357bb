//! The waypoint's certificate as its admin reports it (`/config_dump`, `certificates`):
//! identity and expiry (`not_after`, RFC 3339), described against an injected "now".

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// What is known of a waypoint's certificate.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum CertStatus {
    /// Not known, and why (no admin address given, admin unreachable, no expiry reported).
    Unknown { why: String },
    Known {
        identity: Option<String>,
        /// RFC 3339.
        not_after: String,
        /// Seconds left (negative: expired).
        remaining_secs: i64,
    },
}

impl CertStatus {
    pub fn unknown(why: impl Into<String>) -> CertStatus {
        CertStatus::Unknown { why: why.into() }
    }

    /// One line: `expires 2026-12-08T19:00:00Z (in 23h 59m), spiffe://...`.
    pub fn describe(&self) -> String {
        match self {
            CertStatus::Unknown { why } => format!("unknown ({why})"),
            CertStatus::Known {
                identity,
                not_after,
                remaining_secs,
            } => {
                let when = if *remaining_secs >= 0 {
                    format!("expires {not_after} (in {})", span(*remaining_secs))
                } else {
                    format!(
                        "EXPIRED at {not_after} ({} ago)",
                        span(remaining_secs.saturating_neg())
                    )
                };
                match identity {
                    Some(id) => format!("{when}, {id}"),
                    None => when,
                }
            }
        }
    }
}

/// `1d 2h`, `3h 4m`, `5m 6s`.
fn span(secs: i64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m {s}s")
    }
}

/// The certificate in a `/config_dump` document, at `now`.
pub fn from_config_dump(doc: &Value, now: Timestamp) -> CertStatus {
    let certs = &doc["certificates"];
    if !certs.is_object() {
        return CertStatus::unknown("the waypoint has no certificate loaded");
    }
    let Some(text) = certs["not_after"].as_str() else {
        return CertStatus::unknown("the admin's /config_dump reports no certificates.not_after");
    };
    let Ok(not_after) = text.parse::<Timestamp>() else {
        return CertStatus::unknown(format!(
            "the admin's certificates.not_after {text:?} is not an RFC 3339 time"
        ));
    };
    CertStatus::Known {
        identity: certs["identity"].as_str().map(str::to_string),
        not_after: not_after.to_string(),
        remaining_secs: now.duration_until(not_after).as_secs(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-12-07T12:00:00Z".parse().expect("time")
    }

    #[test]
    fn expiry_is_read_and_described_from_now() {
        let doc = json!({"certificates": {"identity": "spiffe://cluster.local/ns/shop/sa/wp",
            "not_after": "2026-12-08T13:30:00Z"}});
        let c = from_config_dump(&doc, now());
        assert_eq!(
            c.describe(),
            "expires 2026-12-08T13:30:00Z (in 1d 1h), spiffe://cluster.local/ns/shop/sa/wp"
        );
        let soon = json!({"certificates": {"not_after": "2026-12-07T12:05:09Z"}});
        assert_eq!(
            from_config_dump(&soon, now()).describe(),
            "expires 2026-12-07T12:05:09Z (in 5m 9s)"
        );
        let old = json!({"certificates": {"not_after": "2026-12-07T09:00:00Z"}});
        assert_eq!(
            from_config_dump(&old, now()).describe(),
            "EXPIRED at 2026-12-07T09:00:00Z (3h 0m ago)"
        );
    }

    #[test]
    fn missing_or_bad_expiry_is_unknown_with_the_reason() {
        let none = from_config_dump(&json!({"certificates": null}), now()).describe();
        assert!(none.contains("no certificate loaded"), "{none}");
        let today = json!({"certificates": {"identity": "x", "chain_length": 1}});
        let d = from_config_dump(&today, now()).describe();
        assert!(d.starts_with("unknown (") && d.contains("not_after"), "{d}");
        let bad = json!({"certificates": {"not_after": "tomorrow"}});
        let d = from_config_dump(&bad, now()).describe();
        assert!(d.contains("\"tomorrow\""), "{d}");
    }
}
