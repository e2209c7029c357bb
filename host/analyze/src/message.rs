//! One analyzer finding as `istioctl analyze` prints it: level, code, the resource it is about
//! and a sentence; plus the message types (code, name, level) of the catalogue.

use std::fmt;

use serde::Serialize;

/// Severity, worst first (as istioctl's `diag.Level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl Level {
    /// Is `self` at least as bad as `threshold` (`Error` is worse than `Warning`)?
    pub fn at_least(self, threshold: Level) -> bool {
        self <= threshold
    }

    /// Parse `Error`, `Warning` or `Info` (any case), as istioctl's `--failure-threshold`.
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warning" => Some(Level::Warning),
            "info" => Some(Level::Info),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "Error",
            Level::Warning => "Warning",
            Level::Info => "Info",
        })
    }
}

/// A kind of finding: its code, name and level (one entry of [`crate::catalogue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// `IST0101` (Istio's catalogue) or `WPA0001` (ours).
    pub code: &'static str,
    /// `ReferencedResourceNotFound`.
    pub name: &'static str,
    pub level: Level,
}

/// The resource a message is about, printed `Kind namespace/name` (`Kind name` when
/// cluster-scoped), as istioctl's origin.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceRef {
    pub fn new(kind: &str, namespace: &str, name: &str) -> ResourceRef {
        ResourceRef {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    pub kind: MessageType,
    /// The resource, or `None` for a finding about the config as a whole.
    pub resource: Option<ResourceRef>,
    /// Where the resource was read (`file#document`, `kube:Kind/ns/name`), if known.
    pub origin: Option<String>,
    pub text: String,
}

impl Message {
    pub fn new(kind: MessageType, resource: Option<ResourceRef>, text: impl Into<String>) -> Self {
        Message {
            kind,
            resource,
            origin: None,
            text: text.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        self.kind.code
    }

    pub fn level(&self) -> Level {
        self.kind.level
    }

    /// Istio's documentation page for its own codes; ours are described in docs/cli.md.
    pub fn documentation_url(&self) -> Option<String> {
        self.kind.code.starts_with("IST").then(|| {
            format!(
                "https://istio.io/latest/docs/reference/config/analysis/{}/",
                self.kind.code.to_ascii_lowercase()
            )
        })
    }
}

/// The istioctl log line: `Error [IST0101] (VirtualService default/reviews) Referenced host
/// not found: "reviews2"`.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.kind.level, self.kind.code)?;
        if let Some(r) = &self.resource {
            write!(f, " ({r})")?;
        }
        write!(f, " {}", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::REFERENCED_RESOURCE_NOT_FOUND;

    #[test]
    fn log_line_is_istioctls() {
        let m = Message::new(
            REFERENCED_RESOURCE_NOT_FOUND,
            Some(ResourceRef::new("VirtualService", "default", "reviews")),
            "Referenced host not found: \"reviews2\"",
        );
        assert_eq!(
            m.to_string(),
            "Error [IST0101] (VirtualService default/reviews) Referenced host not found: \"reviews2\""
        );
        let cluster = Message::new(
            REFERENCED_RESOURCE_NOT_FOUND,
            Some(ResourceRef::new("Namespace", "", "shop")),
            "x",
        );
        assert_eq!(cluster.to_string(), "Error [IST0101] (Namespace shop) x");
        assert_eq!(
            m.documentation_url().as_deref(),
            Some("https://istio.io/latest/docs/reference/config/analysis/ist0101/")
        );
    }

    #[test]
    fn levels_order_and_parse() {
        assert!(Level::Error.at_least(Level::Warning));
        assert!(Level::Warning.at_least(Level::Warning));
        assert!(!Level::Info.at_least(Level::Warning));
        assert_eq!(Level::parse("warning"), Some(Level::Warning));
        assert_eq!(Level::parse("ERROR"), Some(Level::Error));
        assert_eq!(Level::parse("fatal"), None);
    }
}
