//! Suppressed messages, as istioctl: `--suppress CODE=RESOURCE` (with `*` wildcards) and the
//! `galley.istio.io/analyze-suppress: CODE[,CODE...]|*` annotation on a resource.

use std::collections::BTreeMap;

use crate::message::{Message, ResourceRef};

/// The annotation naming codes not to report on its resource (`*` = all).
pub const ANNOTATION: &str = "galley.istio.io/analyze-suppress";

/// One `--suppress` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub code: String,
    /// `Kind namespace/name` (ours) or `Kind name.namespace` (istioctl's), `*` anywhere.
    pub resource: String,
}

impl Suppression {
    /// Parse `CODE=RESOURCE`.
    pub fn parse(s: &str) -> Result<Suppression, String> {
        match s.split_once('=') {
            Some((code, resource)) if !code.is_empty() && !resource.is_empty() && !resource.contains('=') => {
                Ok(Suppression {
                    code: code.to_string(),
                    resource: resource.to_string(),
                })
            }
            _ => Err(format!(
                "{s:?} is not a valid suppression: expected CODE=RESOURCE, e.g. \"IST0101=VirtualService default/reviews\""
            )),
        }
    }

    fn matches(&self, m: &Message) -> bool {
        let Some(r) = &m.resource else {
            return false;
        };
        let istioctl = if r.namespace.is_empty() {
            format!("{} {}", r.kind, r.name)
        } else {
            format!("{} {}.{}", r.kind, r.name, r.namespace)
        };
        self.code == m.code()
            && (glob(&self.resource, &r.to_string()) || glob(&self.resource, &istioctl))
    }
}

/// Does `pattern` (with `*` for any run of characters) match all of `text`?
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The messages neither a suppression nor their resource's annotation silences.
pub fn apply(
    messages: Vec<Message>,
    suppressions: &[Suppression],
    annotations: &BTreeMap<ResourceRef, String>,
) -> Vec<Message> {
    messages
        .into_iter()
        .filter(|m| {
            let by_annotation = m
                .resource
                .as_ref()
                .and_then(|r| annotations.get(r))
                .is_some_and(|codes| {
                    codes
                        .split(',')
                        .map(str::trim)
                        .any(|c| c == "*" || c == m.code())
                });
            !by_annotation && !suppressions.iter().any(|s| s.matches(m))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{REFERENCED_RESOURCE_NOT_FOUND, SCHEMA_WARNING};

    fn msg(kind: &str, ns: &str, name: &str) -> Message {
        Message::new(
            REFERENCED_RESOURCE_NOT_FOUND,
            Some(ResourceRef::new(kind, ns, name)),
            "x",
        )
    }

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("a", "a", true),
            ("a", "ab", false),
            ("*", "", true),
            (
                "DestinationRule *.default",
                "DestinationRule x.default",
                true,
            ),
            (
                "DestinationRule *.default",
                "DestinationRule x.other",
                false,
            ),
            ("*/re*ws", "VirtualService default/reviews", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(glob(p, t), want, "{p} vs {t}");
        }
    }

    #[test]
    fn suppressions_and_annotations() {
        let all = vec![
            msg("VirtualService", "default", "reviews"),
            msg("VirtualService", "default", "ratings"),
            msg("DestinationRule", "shop", "a"),
            Message::new(
                SCHEMA_WARNING,
                Some(ResourceRef::new("DestinationRule", "shop", "b")),
                "w",
            ),
            Message::new(REFERENCED_RESOURCE_NOT_FOUND, None, "no resource"),
        ];
        let s = |v: &str| Suppression::parse(v).expect("valid");
        let kept = apply(
            all.clone(),
            &[
                s("IST0101=VirtualService default/reviews"),
                s("IST0101=DestinationRule *.shop"),
            ],
            &BTreeMap::new(),
        );
        let names: Vec<_> = kept
            .iter()
            .map(|m| {
                m.resource
                    .as_ref()
                    .map(|r| r.name.clone())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(names, ["ratings", "b", ""]);
        let mut ann = BTreeMap::new();
        ann.insert(
            ResourceRef::new("DestinationRule", "shop", "b"),
            "IST0101, IST0133".to_string(),
        );
        ann.insert(
            ResourceRef::new("VirtualService", "default", "ratings"),
            "*".to_string(),
        );
        assert_eq!(apply(all, &[], &ann).len(), 3);
        assert!(Suppression::parse("IST0101").is_err());
        assert!(Suppression::parse("=x").is_err());
        assert!(Suppression::parse("a=b=c").is_err());
    }
}
