//! A copy of one Envoy header map in a single buffer: every name and value is a span of one
//! `String`, so reading the request headers costs two allocations, not two per header.

/// Headers looked up on every request, indexed while copying so a look-up is one array read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Authority = 0,
    Method = 1,
    Scheme = 2,
    Path = 3,
    Host = 4,
}

const KNOWN: [(&str, Known); 5] = [
    (":authority", Known::Authority),
    (":method", Known::Method),
    (":scheme", Known::Scheme),
    (":path", Known::Path),
    ("host", Known::Host),
];

/// No header of that kind.
const ABSENT: u32 = u32::MAX;

/// Header names and values, in Envoy's order, copied out of a header map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderBlock {
    buf: String,
    /// End offsets in `buf` of each (name, value).
    ends: Vec<(u32, u32)>,
    /// Position in `ends` of the first header of each `Known` kind.
    known: [u32; 5],
    /// Some name starts with `x-envoy-` or `x-waypoint-` (router control headers and ours,
    /// which the filter must strip when a client sends them; usually none is present).
    control: bool,
}

impl Default for HeaderBlock {
    fn default() -> Self {
        HeaderBlock {
            buf: String::new(),
            ends: Vec::new(),
            known: [ABSENT; 5],
            control: false,
        }
    }
}

impl HeaderBlock {
    /// An empty block with room for `headers` entries of `bytes` bytes in all.
    pub fn with_capacity(headers: usize, bytes: usize) -> Self {
        HeaderBlock {
            buf: String::with_capacity(bytes),
            ends: Vec::with_capacity(headers),
            ..HeaderBlock::default()
        }
    }

    /// Append one header. Blocks are bounded by Envoy's header limits (far below 4 GiB).
    pub fn push(&mut self, name: &str, value: &str) {
        let at = self.ends.len() as u32;
        match name.as_bytes() {
            [b':' | b'h' | b'H', ..] => {
                if let Some(k) = known_kind(name) {
                    let slot = &mut self.known[k as usize];
                    if *slot == ABSENT {
                        *slot = at;
                    }
                }
            }
            [b'x' | b'X', b'-', rest @ ..]
                if starts_with_ignore_case(rest, b"envoy-")
                    || starts_with_ignore_case(rest, b"waypoint-") =>
            {
                self.control = true;
            }
            _ => {}
        }
        self.buf.push_str(name);
        let name_end = self.buf.len() as u32;
        self.buf.push_str(value);
        self.ends.push((name_end, self.buf.len() as u32));
    }

    /// First value of a header indexed while copying.
    pub fn known(&self, which: Known) -> Option<&str> {
        let at = self.known[which as usize];
        (at != ABSENT).then(|| self.value_at(at as usize))
    }

    /// Whether a header named `x-envoy-*` or `x-waypoint-*` may be present; when false,
    /// none is.
    pub fn has_control_headers(&self) -> bool {
        self.control
    }

    fn value_at(&self, i: usize) -> &str {
        let (name_end, value_end) = self.ends[i];
        &self.buf[name_end as usize..value_end as usize]
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Every (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut start = 0usize;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let (n, v) = (name_end as usize, value_end as usize);
            let pair = (&self.buf[start..n], &self.buf[n..v]);
            start = v;
            pair
        })
    }

    /// First value of `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Owned pairs (tests, mirrors).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Which `Known` header `name` is. Envoy hands names over lowercased (HTTP/2 requires it, its
/// HTTP/1 codec lowercases), so the exact comparison nearly always decides; other casings
/// (tests, future codecs) still match.
fn known_kind(name: &str) -> Option<Known> {
    let exact = KNOWN.iter().find(|(n, _)| *n == name);
    exact
        .or_else(|| {
            name.bytes()
                .any(|c| c.is_ascii_uppercase())
                .then(|| KNOWN.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
                .flatten()
        })
        .map(|(_, k)| *k)
}

impl<'a> FromIterator<(&'a str, &'a str)> for HeaderBlock {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        let mut b = HeaderBlock::default();
        for (k, v) in iter {
            b.push(k, v);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_round_trip_in_order_with_empty_parts() {
        let b: HeaderBlock = [
            (":path", "/a"),
            ("x-empty", ""),
            ("", "v"),
            ("X-Dup", "1"),
            ("x-dup", "2"),
        ]
        .into_iter()
        .collect();
        assert_eq!(b.len(), 5);
        let all: Vec<_> = b.iter().collect();
        assert_eq!(
            all,
            vec![
                (":path", "/a"),
                ("x-empty", ""),
                ("", "v"),
                ("X-Dup", "1"),
                ("x-dup", "2")
            ]
        );
        assert_eq!(b.get("x-dup"), Some("1"));
        assert_eq!(b.get("x-empty"), Some(""));
        assert_eq!(b.get("absent"), None);
        assert!(HeaderBlock::default().is_empty());
        assert!(!b.has_control_headers());
    }

    #[test]
    fn known_headers_are_indexed_first_wins_any_case() {
        let b: HeaderBlock = [
            (":method", "GET"),
            ("Host", "a"),
            ("host", "b"),
            (":path", "/x"),
            ("x-other", "1"),
        ]
        .into_iter()
        .collect();
        assert_eq!(b.known(Known::Method), Some("GET"));
        assert_eq!(b.known(Known::Host), Some("a"));
        assert_eq!(b.known(Known::Path), Some("/x"));
        assert_eq!(b.known(Known::Authority), None);
        assert_eq!(b.known(Known::Scheme), None);
        assert!(!b.has_control_headers());
        for name in ["X-Envoy-Retry-On", "x-waypoint-cluster"] {
            let b: HeaderBlock = [(name, "1")].into_iter().collect();
            assert!(b.has_control_headers(), "{name}");
        }
        let b: HeaderBlock = [("x-envoyx", "1"), ("x-way", "1")].into_iter().collect();
        assert!(!b.has_control_headers());
    }
}
