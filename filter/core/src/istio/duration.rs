//! Istio duration and percentage values: Go-style durations (`1s`, `0.5s`, `100ms`, `1h30m`) as the
//! CRDs accept them, and the `[0, 100]` percentage ranges Istio validation enforces.

use std::time::Duration;

/// Parse an Istio duration. The CRDs validate with CEL `duration(self)`, which takes Go
/// `time.ParseDuration` syntax: one or more `<decimal><unit>` terms, units `ns`, `us`/`µs`, `ms`,
/// `s`, `m`, `h`; a bare `0` is allowed. Negative durations are rejected (Istio never accepts them).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    if text.starts_with('-') {
        return Err(format!(
            "invalid duration {s:?}: negative durations are not allowed"
        ));
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let bad =
        |why: &str| format!("invalid duration {s:?}: {why} (examples: 1s, 0.5s, 100ms, 1h30m)");
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad("expected a number"));
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => return Err(bad("missing unit")),
            other => return Err(bad(&format!("unknown unit {other:?}"))),
        };
        let int_value: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad("number too large"))?
        };
        let mut nanos = int_value
            .checked_mul(unit_nanos)
            .ok_or_else(|| bad("too large"))?;
        // Fraction: digits beyond nanosecond resolution are dropped, as Go does.
        let mut scale = unit_nanos;
        for d in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(d - b'0') * scale;
        }
        total_nanos = total_nanos
            .checked_add(nanos)
            .ok_or_else(|| bad("too large"))?;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| bad("too large"))?;
    Ok(Duration::new(secs, (total_nanos % 1_000_000_000) as u32))
}

/// Istio's `agent.ValidateDuration`: at least 1ms and whole milliseconds (the CRDs add
/// `duration(self) >= duration('1ms')`).
pub fn check_min_1ms(d: Duration) -> Result<(), String> {
    if d < Duration::from_millis(1) {
        return Err("duration must be at least 1ms".to_string());
    }
    if d.subsec_millis() * 1_000_000 != d.subsec_nanos() {
        return Err("only durations to ms precision are supported".to_string());
    }
    Ok(())
}

/// Istio's `validatePercentage` for `Percent.value`: 0, or within `[0.0001, 100]`.
pub fn check_percentage(value: f64) -> Result<(), String> {
    if !value.is_finite() || !(0.0..=100.0).contains(&value) || (value > 0.0 && value < 0.0001) {
        return Err(format!(
            "percentage {value} is neither 0.0, nor in range [0.0001, 100.0]"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok: Vec<(&str, Duration)> = vec![
            ("1s", Duration::from_secs(1)),
            ("0.5s", Duration::from_millis(500)),
            ("100ms", Duration::from_millis(100)),
            ("1h", Duration::from_secs(3600)),
            ("1m30s", Duration::from_secs(90)),
            ("1h2m3.25s", Duration::from_millis(3_723_250)),
            ("7s", Duration::from_secs(7)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            (".5s", Duration::from_millis(500)),
            ("10us", Duration::from_micros(10)),
            ("3ns", Duration::from_nanos(3)),
        ];
        for (input, want) in ok {
            assert_eq!(parse_duration(input), Ok(want), "{input}");
        }
        for bad in ["", "1", "s", "1x", "-1s", "1.s.", "abc", "1 s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn min_1ms() {
        assert!(check_min_1ms(Duration::from_millis(1)).is_ok());
        assert!(check_min_1ms(Duration::ZERO).is_err());
        assert!(check_min_1ms(Duration::from_micros(1500)).is_err());
    }

    #[test]
    fn percentages() {
        for ok in [0.0, 0.0001, 10.0, 100.0] {
            assert!(check_percentage(ok).is_ok(), "{ok}");
        }
        for bad in [-1.0, 100.5, 0.00001, f64::NAN] {
            assert!(check_percentage(bad).is_err(), "{bad}");
        }
    }
}
