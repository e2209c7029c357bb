//! Trace context on the wire: W3C `traceparent`/`tracestate` and B3 `x-b3-*` read from the
//! request, the sampling decision, and the child context written back for the upstream.

use http::{HeaderMap, HeaderName, HeaderValue};
use waypoint_core::RandomSource;

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub static B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// The waypoint's span for one request, as propagated upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The caller's span, when the request carried one.
    pub parent_span_id: Option<[u8; 8]>,
    pub sampled: bool,
    /// `tracestate` as received (propagated unchanged).
    pub trace_state: String,
}

fn hex_into(s: &str, out: &mut [u8]) -> bool {
    if s.len() != out.len() * 2 {
        return false;
    }
    for (i, o) in out.iter_mut().enumerate() {
        match u8::from_str_radix(s.get(2 * i..2 * i + 2).unwrap_or("zz"), 16) {
            Ok(b) => *o = b,
            Err(_) => return false,
        }
    }
    true
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(HEX[usize::from(x >> 4)]));
        s.push(char::from(HEX[usize::from(x & 0x0f)]));
    }
    s
}

/// Parse a W3C `traceparent` (version 00, or a later version's first four fields): trace id,
/// parent id, sampled flag. Invalid (all-zero ids, version `ff`, bad hex) is `None`, and the
/// request then starts a new trace, as the spec asks.
pub fn parse_traceparent(v: &str) -> Option<([u8; 16], [u8; 8], bool)> {
    let mut parts = v.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let mut ver = [0u8; 1];
    if !hex_into(version, &mut ver) || ver[0] == 0xff || (ver[0] == 0 && parts.next().is_some()) {
        return None;
    }
    let (mut t, mut s, mut f) = ([0u8; 16], [0u8; 8], [0u8; 1]);
    if !hex_into(trace, &mut t) || !hex_into(span, &mut s) || !hex_into(flags, &mut f) {
        return None;
    }
    if t == [0; 16] || s == [0; 8] {
        return None;
    }
    Some((t, s, f[0] & 1 == 1))
}

/// B3 multi-header context: a 64- or 128-bit trace id, the span id, and the sampling state
/// (`x-b3-flags: 1` = debug, which samples).
fn parse_b3(h: &HeaderMap) -> Option<([u8; 16], [u8; 8], Option<bool>)> {
    let get = |n: &HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let trace = get(&B3_TRACE_ID)?;
    let mut t = [0u8; 16];
    let ok = if trace.len() == 16 {
        hex_into(trace, &mut t[8..])
    } else {
        hex_into(trace, &mut t)
    };
    let mut s = [0u8; 8];
    if !ok || !hex_into(get(&B3_SPAN_ID)?, &mut s) || t == [0; 16] {
        return None;
    }
    let sampled = if get(&B3_FLAGS) == Some("1") {
        Some(true)
    } else {
        match get(&B3_SAMPLED) {
            Some("1" | "true" | "d") => Some(true),
            Some("0" | "false") => Some(false),
            _ => None,
        }
    };
    Some((t, s, sampled))
}

fn nonzero<const N: usize>(rng: &mut dyn RandomSource) -> [u8; N] {
    loop {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let r = rng.next_u64().to_be_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        if out.iter().any(|b| *b != 0) {
            return out;
        }
    }
}

/// A draw in [0, 100) against `percent` (Envoy's `random_sampling`, 0.01 % resolution).
fn draw(rng: &mut dyn RandomSource, percent: f64) -> bool {
    let bucket = rng.next_u64() % 10_000;
    (bucket as f64) < percent * 100.0
}

/// Start the waypoint's span: continue the request's trace (`traceparent`, else B3) keeping
/// its sampling decision, as Envoy does for a decision already made upstream; otherwise a new
/// trace sampled at `percent`. The headers then carry the child context to the upstream:
/// `traceparent` with the new span id, `tracestate` untouched, and the B3 headers when the
/// request used B3.
pub fn start(headers: &mut HeaderMap, percent: f64, rng: &mut dyn RandomSource) -> SpanContext {
    let w3c = headers
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    let b3 = parse_b3(headers);
    let (trace_id, parent, incoming_sampled) = match (w3c, b3) {
        (Some((t, s, sampled)), _) => (t, Some(s), Some(sampled)),
        (None, Some((t, s, sampled))) => (t, Some(s), sampled),
        (None, None) => (nonzero::<16>(rng), None, None),
    };
    let sampled = incoming_sampled.unwrap_or_else(|| draw(rng, percent));
    let span_id = nonzero::<8>(rng);
    let trace_state = headers
        .get(&TRACESTATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let ctx = SpanContext {
        trace_id,
        span_id,
        parent_span_id: parent,
        sampled,
        trace_state,
    };
    inject(headers, &ctx, b3.is_some());
    ctx
}

fn set(headers: &mut HeaderMap, name: &HeaderName, v: String) {
    if let Ok(v) = HeaderValue::try_from(v) {
        headers.insert(name.clone(), v);
    }
}

/// Write the child context for the upstream.
fn inject(headers: &mut HeaderMap, ctx: &SpanContext, b3: bool) {
    let flags = if ctx.sampled { "01" } else { "00" };
    set(
        headers,
        &TRACEPARENT,
        format!("00-{}-{}-{flags}", hex(&ctx.trace_id), hex(&ctx.span_id)),
    );
    if b3 {
        if let Some(p) = ctx.parent_span_id {
            set(headers, &B3_PARENT_SPAN_ID, hex(&p));
        }
        set(headers, &B3_SPAN_ID, hex(&ctx.span_id));
        set(
            headers,
            &B3_SAMPLED,
            if ctx.sampled { "1" } else { "0" }.into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waypoint_core::SplitMix64;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// A source that returns the same value every time.
    struct Fixed(u64);
    impl RandomSource for Fixed {
        fn next_u64(&mut self) -> u64 {
            self.0
        }
    }

    #[test]
    fn a_sampled_traceparent_is_continued_with_a_child_span() {
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static(TP));
        h.insert(&TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        // 0 % sampling: the incoming decision wins.
        let ctx = start(&mut h, 0.0, &mut SplitMix64(1));
        assert!(ctx.sampled);
        assert_eq!(hex(&ctx.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            ctx.parent_span_id.map(|p| hex(&p)),
            Some("00f067aa0ba902b7".into())
        );
        let out = h
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(
            out,
            format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
                hex(&ctx.span_id)
            )
        );
        assert_ne!(
            ctx.span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(
            h.get(&TRACESTATE).map(|v| v.as_bytes()),
            Some(&b"congo=t61rcWkgMzE"[..])
        );
    }

    #[test]
    fn an_unsampled_traceparent_stays_unsampled_at_100_percent() {
        let mut h = HeaderMap::new();
        h.insert(
            &TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        );
        let ctx = start(&mut h, 100.0, &mut SplitMix64(1));
        assert!(!ctx.sampled);
        assert!(h
            .get(&TRACEPARENT)
            .is_some_and(|v| v.as_bytes().ends_with(b"-00")));
    }

    #[test]
    fn without_context_the_percentage_decides() {
        // Draw 4_999 of 10_000 is under 50 %; 5_000 is not.
        let mut h = HeaderMap::new();
        assert!(start(&mut h, 50.0, &mut Fixed(4_999)).sampled);
        let mut h = HeaderMap::new();
        assert!(!start(&mut h, 50.0, &mut Fixed(5_000)).sampled);
        let mut h = HeaderMap::new();
        let ctx = start(&mut h, 0.0, &mut Fixed(1));
        assert!(!ctx.sampled);
        assert_eq!(ctx.parent_span_id, None);
        assert!(h.get(&TRACEPARENT).is_some());
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "zz",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
                .is_some()
        );
    }

    #[test]
    fn b3_headers_are_continued_and_rewritten() {
        let mut h = HeaderMap::new();
        h.insert(&B3_TRACE_ID, HeaderValue::from_static("a3ce929d0e0e4736"));
        h.insert(&B3_SPAN_ID, HeaderValue::from_static("00f067aa0ba902b7"));
        h.insert(&B3_SAMPLED, HeaderValue::from_static("1"));
        let ctx = start(&mut h, 0.0, &mut SplitMix64(3));
        assert!(ctx.sampled);
        assert_eq!(hex(&ctx.trace_id), "0000000000000000a3ce929d0e0e4736");
        let get = |n: &HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(get(&B3_PARENT_SPAN_ID).as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(get(&B3_SPAN_ID), Some(hex(&ctx.span_id)));
        assert_eq!(get(&B3_SAMPLED).as_deref(), Some("1"));
        // The W3C header is added for the upstream too, on the same trace.
        assert!(get(&TRACEPARENT).is_some_and(|t| t.contains("a3ce929d0e0e4736")));
    }
}
