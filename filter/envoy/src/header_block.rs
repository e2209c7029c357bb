//! A copy of one Envoy header map in a single buffer: every name and value is a span of one
//! `String`, so reading the request headers costs two allocations, not two per header.

/// Header names and values, in Envoy's order, copied out of a header map.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderBlock {
    buf: String,
    /// End offsets in `buf` of each (name, value).
    ends: Vec<(u32, u32)>,
}

impl HeaderBlock {
    /// An empty block with room for `headers` entries of `bytes` bytes in all.
    pub fn with_capacity(headers: usize, bytes: usize) -> Self {
        HeaderBlock {
            buf: String::with_capacity(bytes),
            ends: Vec::with_capacity(headers),
        }
    }

    /// Append one header. Blocks are bounded by Envoy's header limits (far below 4 GiB).
    pub fn push(&mut self, name: &str, value: &str) {
        self.buf.push_str(name);
        let name_end = self.buf.len() as u32;
        self.buf.push_str(value);
        self.ends.push((name_end, self.buf.len() as u32));
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
    }
}
