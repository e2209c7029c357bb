//! Config errors: every one names the resource (kind, namespace/name) and the field path.
//! Errors are collected, never fatal for other resources.

use std::fmt;

/// One problem with one resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Resource kind, e.g. `VirtualService`.
    pub kind: String,
    /// Namespace of the resource.
    pub namespace: String,
    /// Name of the resource.
    pub name: String,
    /// Field path inside the resource, e.g. `spec.http[0].route[1].weight`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)?;
        if !self.field.is_empty() {
            write!(f, ": field {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A list of config errors (what one compile pass found).
pub type ConfigErrors = Vec<ConfigError>;

/// Identity of a resource, used to stamp errors and decisions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceId {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        ResourceId {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// Build an error about `field` of this resource.
    pub fn error(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::new(
            self.kind.clone(),
            self.namespace.clone(),
            self.name.clone(),
            field,
            message,
        )
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// What compiling one resource found: errors (the resource, or part of it, is rejected) and
/// warnings (accepted, but something is ignored, e.g. `sourceLabels` on a waypoint).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl Diagnostics {
    pub fn error(&mut self, e: ConfigError) {
        self.errors.push(e);
    }
    pub fn warn(&mut self, w: ConfigError) {
        self.warnings.push(w);
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}
