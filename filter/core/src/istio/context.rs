//! Compile context shared by the VirtualService and DestinationRule compilers: the resource
//! identity plus the diagnostics collected so far, with field-path helpers.

use std::time::Duration;

use crate::error::{Diagnostics, ResourceId};

use super::duration::{check_min_1ms, parse_duration};

/// Resource identity and diagnostics for one compile pass.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub id: ResourceId,
    pub diags: Diagnostics,
}

impl Ctx {
    pub fn new(id: ResourceId) -> Self {
        Ctx {
            id,
            diags: Diagnostics::default(),
        }
    }

    /// Record an error about `field`.
    pub fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let e = self.id.error(field, message);
        self.diags.error(e);
    }

    /// Record a warning about `field`.
    pub fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let w = self.id.error(field, message);
        self.diags.warn(w);
    }

    /// Parse a duration field that Istio requires to be >= 1ms; records an error on failure.
    pub fn duration_min_1ms(&mut self, field: &str, value: &str) -> Option<Duration> {
        match parse_duration(value).and_then(|d| check_min_1ms(d).map(|()| d)) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(field, e);
                None
            }
        }
    }

    /// Parse a duration field where `0s` is allowed (it disables the setting).
    pub fn duration_any(&mut self, field: &str, value: &str) -> Option<Duration> {
        match parse_duration(value) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(field, e);
                None
            }
        }
    }

    /// Warn that a valid Istio field is accepted but has no effect on the waypoint.
    pub fn ignored(&mut self, field: &str) {
        self.warn(field, "accepted but ignored by the waypoint");
    }
}
