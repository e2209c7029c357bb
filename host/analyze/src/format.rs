//! Messages printed as `istioctl analyze` prints them (`log` lines, `json`, `yaml`), the
//! thresholds that filter them and decide the exit code, and those exit codes.

use serde::Serialize;

use crate::message::{Level, Message};

/// Analyzers found messages at or above `--failure-threshold` (istioctl's
/// `ExitAnalyzerFoundIssues`).
pub const EXIT_ANALYZER_FOUND_ISSUES: u8 = 79;
/// Some input could not be parsed, and nothing reached the threshold (istioctl's
/// `ExitDataError`).
pub const EXIT_DATA_ERROR: u8 = 65;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Log,
    Json,
    Yaml,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "log" => Some(Format::Log),
            "json" => Some(Format::Json),
            "yaml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// One message as istioctl's JSON / YAML output has it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    code: &'a str,
    level: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    documentation_url: Option<String>,
}

fn records(messages: &[Message]) -> Vec<Record<'_>> {
    messages
        .iter()
        .map(|m| Record {
            code: m.kind.code,
            level: m.kind.level.to_string(),
            origin: m.resource.as_ref().map(ToString::to_string),
            reference: m.origin.as_deref(),
            message: &m.text,
            documentation_url: m.documentation_url(),
        })
        .collect()
}

/// The messages in `format`: one line each for `log` (nothing for none), a JSON array or a
/// YAML list otherwise.
pub fn render(messages: &[Message], format: Format) -> String {
    match format {
        Format::Log => messages
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Json => serde_json::to_string_pretty(&records(messages))
            .unwrap_or_else(|e| format!("[] # cannot encode: {e}")),
        Format::Yaml => serde_yaml::to_string(&records(messages))
            .unwrap_or_else(|e| format!("# cannot encode: {e}")),
    }
}

/// The messages at or above `threshold` (`--output-threshold`).
pub fn at_least(messages: &[Message], threshold: Level) -> Vec<Message> {
    messages
        .iter()
        .filter(|m| m.level().at_least(threshold))
        .cloned()
        .collect()
}

/// The exit code: 79 when a message is at or above `failure`, else 65 when some input could
/// not be parsed, else 0.
pub fn exit_code(messages: &[Message], failure: Level, parse_errors: usize) -> u8 {
    if messages.iter().any(|m| m.level().at_least(failure)) {
        EXIT_ANALYZER_FOUND_ISSUES
    } else if parse_errors > 0 {
        EXIT_DATA_ERROR
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{KIND_NOT_USED, REFERENCED_RESOURCE_NOT_FOUND, SCHEMA_WARNING};
    use crate::message::ResourceRef;

    fn sample() -> Vec<Message> {
        let mut e = Message::new(
            REFERENCED_RESOURCE_NOT_FOUND,
            Some(ResourceRef::new("VirtualService", "default", "reviews")),
            "Referenced host not found: \"reviews2\"",
        );
        e.origin = Some("vs.yaml#0".into());
        vec![
            e,
            Message::new(SCHEMA_WARNING, None, "w"),
            Message::new(
                KIND_NOT_USED,
                Some(ResourceRef::new("ConfigMap", "default", "x")),
                "i",
            ),
        ]
    }

    #[test]
    fn json_has_istioctls_fields() {
        let v: serde_json::Value =
            serde_json::from_str(&render(&sample(), Format::Json)).expect("json");
        assert_eq!(v[0]["code"], "IST0101");
        assert_eq!(v[0]["level"], "Error");
        assert_eq!(v[0]["origin"], "VirtualService default/reviews");
        assert_eq!(v[0]["reference"], "vs.yaml#0");
        assert_eq!(v[0]["message"], "Referenced host not found: \"reviews2\"");
        assert_eq!(
            v[0]["documentationUrl"],
            "https://istio.io/latest/docs/reference/config/analysis/ist0101/"
        );
        assert!(v[1].get("origin").is_none());
        assert!(v[2].get("documentationUrl").is_none(), "WPA codes");
        let y: serde_json::Value =
            serde_yaml::from_str(&render(&sample(), Format::Yaml)).expect("yaml");
        assert_eq!(y, v);
        assert_eq!(render(&[], Format::Json), "[]");
        assert_eq!(render(&[], Format::Log), "");
    }

    #[test]
    fn thresholds_and_exit_codes() {
        let all = sample();
        assert_eq!(at_least(&all, Level::Warning).len(), 2);
        assert_eq!(at_least(&all, Level::Info).len(), 3);
        assert_eq!(exit_code(&all, Level::Error, 0), 79);
        assert_eq!(exit_code(&all[1..], Level::Error, 0), 0);
        assert_eq!(exit_code(&all[1..], Level::Error, 2), 65);
        assert_eq!(exit_code(&all[1..], Level::Warning, 2), 79);
        assert_eq!(exit_code(&all[2..], Level::Warning, 0), 0);
        assert_eq!(exit_code(&all[2..], Level::Info, 0), 79);
    }
}
