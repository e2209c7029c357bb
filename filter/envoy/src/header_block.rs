//! Header maps as the filter reads them: `HeaderView`, borrowed slices of Envoy's own header
//! memory (no byte copied), and `HeaderBlock`, an owned copy in a single buffer.

use smallvec::SmallVec;

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
        classify(name, at, &mut self.known, &mut self.control);
        self.buf.push_str(name);
        let name_end = self.buf.len() as u32;
        self.buf.push_str(value);
        self.ends.push((name_end, self.buf.len() as u32));
    }

    /// A borrowed view of every header (indexes shared, nothing copied).
    pub fn view(&self) -> HeaderView<'_> {
        HeaderView {
            pairs: self.iter().collect(),
            known: self.known,
            control: self.control,
        }
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

/// Borrowed (name, value) pairs of a header map that does not change while the view lives,
/// with the `Known` headers indexed as they are added. Twenty-four pairs fit inline.
#[derive(Debug, Clone)]
pub struct HeaderView<'a> {
    pairs: SmallVec<[(&'a str, &'a str); 24]>,
    known: [u32; 5],
    control: bool,
}

impl Default for HeaderView<'_> {
    fn default() -> Self {
        HeaderView::with_capacity(0)
    }
}

impl<'a> HeaderView<'a> {
    /// An empty view with room for `headers` pairs.
    pub fn with_capacity(headers: usize) -> Self {
        HeaderView {
            pairs: SmallVec::with_capacity(headers),
            known: [ABSENT; 5],
            control: false,
        }
    }

    /// Append one header.
    pub fn push(&mut self, name: &'a str, value: &'a str) {
        let at = self.pairs.len() as u32;
        classify(name, at, &mut self.known, &mut self.control);
        self.pairs.push((name, value));
    }

    /// First value of a header indexed while adding.
    pub fn known(&self, which: Known) -> Option<&'a str> {
        let at = self.known[which as usize];
        self.pairs.get(at as usize).map(|(_, v)| *v)
    }

    /// First value of `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// Every (name, value), in order.
    pub fn pairs(&self) -> &[(&'a str, &'a str)] {
        &self.pairs
    }

    /// Whether a header named `x-envoy-*` or `x-waypoint-*` may be present; when false,
    /// none is.
    pub fn has_control_headers(&self) -> bool {
        self.control
    }

    /// An owned copy, for what must outlive the header map as it is now.
    pub fn to_block(&self) -> HeaderBlock {
        let bytes = self.pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
        let mut b = HeaderBlock::with_capacity(self.pairs.len(), bytes);
        for (k, v) in &self.pairs {
            b.push(k, v);
        }
        b
    }
}

/// Index header number `at` if it is the first of a `Known` kind, and note a control header.
#[inline]
fn classify(name: &str, at: u32, known: &mut [u32; 5], control: &mut bool) {
    match name.as_bytes() {
        [b':' | b'h' | b'H', ..] => {
            if let Some(k) = known_kind(name) {
                let slot = &mut known[k as usize];
                if *slot == ABSENT {
                    *slot = at;
                }
            }
        }
        [b'x' | b'X', b'-', rest @ ..]
            if starts_with_ignore_case(rest, b"envoy-")
                || starts_with_ignore_case(rest, b"waypoint-") =>
        {
            *control = true;
        }
        _ => {}
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

    /// A view indexes exactly as an owned block does, and copies back to the same block.
    #[test]
    fn views_index_like_blocks_and_copy_back() {
        let headers = [
            (":method", "GET"),
            ("Host", "a"),
            (":path", "/x"),
            ("x-envoy-retry-on", "5xx"),
            ("x-dup", "1"),
            ("X-Dup", "2"),
        ];
        let block: HeaderBlock = headers.into_iter().collect();
        let mut view = HeaderView::with_capacity(2);
        for (k, v) in headers {
            view.push(k, v);
        }
        for v in [&view, &block.view()] {
            assert_eq!(v.pairs(), &headers[..]);
            assert_eq!(v.known(Known::Method), Some("GET"));
            assert_eq!(v.known(Known::Host), Some("a"));
            assert_eq!(v.known(Known::Authority), None);
            assert_eq!(v.get("X-DUP"), Some("1"));
            assert!(v.has_control_headers());
        }
        assert_eq!(view.to_block(), block);
        let empty = HeaderView::default();
        assert_eq!(empty.known(Known::Path), None);
        assert!(!empty.has_control_headers());
        assert!(empty.to_block().is_empty());
    }
}
