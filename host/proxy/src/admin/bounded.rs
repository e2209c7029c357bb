//! Bounded metric families: label values from peer input are escaped and length-capped, and
//! each family keeps at most [`MAX_SERIES`] label sets (later ones count into one overflow set).

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;

use prometheus_client::metrics::family::{Family, MetricConstructor};

/// Longest label value kept, in bytes (a DNS name is at most 253); longer ones are cut.
pub const MAX_LABEL_LEN: usize = 256;

/// Label sets one family keeps. A namespace waypoint's legitimate sets (sources × services ×
/// response codes) number in the hundreds; past the cap, new sets are counted in one overflow
/// set whose peer-derived labels read `other`, so a peer varying its baggage or destinations
/// cannot grow `/stats/prometheus` without bound. (Istio has no such cap; its destination
/// labels come from the registry, never from the peer.)
pub const MAX_SERIES: usize = 1000;

/// The value peer-derived labels take in the overflow set.
pub const OVERFLOW: &str = "other";

/// A label set that can be made safe for exposition.
pub trait BoundedLabels: Clone + Hash + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// Whether [`BoundedLabels::sanitize`] would change anything (the common answer is no,
    /// and it is cheaper than a copy).
    fn needs_sanitizing(&self) -> bool;
    /// Escape and cap every value; map peer-chosen destinations to `unknown` (as Istio).
    fn sanitize(&mut self);
    /// The overflow set for this one: bounded-domain labels (reporter, response code, flags)
    /// kept, every other one [`OVERFLOW`].
    fn overflow(&self) -> Self;
}

/// A value that is unsafe in the text exposition: too long, or with a character the
/// encoder would not escape (`prometheus_client` writes label values verbatim).
pub fn is_dirty(v: &str) -> bool {
    v.len() > MAX_LABEL_LEN
        || v.bytes()
            .any(|b| b == b'"' || b == b'\\' || b.is_ascii_control())
}

/// Replace quotes, backslashes and control characters with `_`, then cut to
/// [`MAX_LABEL_LEN`] bytes on a character boundary.
pub fn clean(v: &mut String) {
    if !is_dirty(v) {
        return;
    }
    let mut out: String = v
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if out.len() > MAX_LABEL_LEN {
        let mut cut = MAX_LABEL_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    *v = out;
}

/// A metric family whose label sets are sanitized and capped.
pub struct BoundedFamily<L, M, C = fn() -> M> {
    family: Family<L, M, C>,
    /// Hashes of the admitted label sets (random keys: collisions cannot be chosen).
    admitted: Mutex<HashSet<u64>>,
    hasher: RandomState,
    cap: usize,
}

impl<L, M, C> std::fmt::Debug for BoundedFamily<L, M, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedFamily")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl<L: BoundedLabels, M: Default> Default for BoundedFamily<L, M> {
    fn default() -> Self {
        Self::from_family(Family::default(), MAX_SERIES)
    }
}

impl<L: BoundedLabels, M, C: MetricConstructor<M>> BoundedFamily<L, M, C> {
    /// A family whose metrics `constructor` builds (histograms with buckets).
    pub fn new_with_constructor(constructor: C) -> Self {
        Self::from_family(Family::new_with_constructor(constructor), MAX_SERIES)
    }

    fn from_family(family: Family<L, M, C>, cap: usize) -> Self {
        BoundedFamily {
            family,
            admitted: Mutex::new(HashSet::new()),
            hasher: RandomState::new(),
            cap,
        }
    }

    /// The same family with another cap (tests).
    pub fn with_cap(self, cap: usize) -> Self {
        BoundedFamily { cap, ..self }
    }

    /// The metric of `labels` (sanitized; the overflow set's once the family is full).
    pub fn get_or_create(&self, labels: &L) -> M
    where
        M: Clone,
    {
        let labels: Cow<'_, L> = if labels.needs_sanitizing() {
            let mut l = labels.clone();
            l.sanitize();
            Cow::Owned(l)
        } else {
            Cow::Borrowed(labels)
        };
        let h = self.hasher.hash_one(&*labels);
        let admitted = {
            let mut set = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
            set.contains(&h) || (set.len() < self.cap && set.insert(h))
        };
        if admitted {
            self.family.get_or_create(&labels).clone()
        } else {
            self.family.get_or_create(&labels.overflow()).clone()
        }
    }

    /// The underlying family, for registration.
    pub fn family(&self) -> &Family<L, M, C> {
        &self.family
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_escapes_and_caps() {
        let mut v = "a\"b\\c\nd".to_string();
        assert!(is_dirty(&v));
        clean(&mut v);
        assert_eq!(v, "a_b_c_d");
        let mut long = "é".repeat(MAX_LABEL_LEN);
        clean(&mut long);
        assert!(long.len() <= MAX_LABEL_LEN && !long.is_empty());
        assert!(!is_dirty(&long));
        let mut fine = "reviews.default.svc.cluster.local".to_string();
        clean(&mut fine);
        assert_eq!(fine, "reviews.default.svc.cluster.local");
    }
}
