//! Compiled string matchers shared by routes and policies.
//! Regexes are compiled once, anchored for full-match (RE2 semantics as Envoy's safe_regex).

use regex::Regex;

/// How one string is matched.
#[derive(Debug, Clone)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// Full-match regex (anchored at compile time).
    Regex(Regex),
    /// Gateway API `PathPrefix`: element-wise prefix of a `/`-separated path
    /// (`/foo` matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`).
    PathPrefix(String),
    /// Anything, including empty (header/param presence).
    Any,
}

impl StringMatch {
    /// Compile a full-match regex. `^(?:...)$` anchoring gives RE2 full-match semantics.
    pub fn regex(pattern: &str) -> Result<StringMatch, regex::Error> {
        Ok(StringMatch::Regex(Regex::new(&format!("^(?:{pattern})$"))?))
    }

    /// Build a Gateway API PathPrefix matcher; a trailing `/` is ignored as the spec says.
    pub fn path_prefix(prefix: &str) -> StringMatch {
        let trimmed = prefix.trim_end_matches('/');
        StringMatch::PathPrefix(trimmed.to_string())
    }

    /// Does `value` match?
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(e) => value == e,
            StringMatch::Prefix(p) => value.starts_with(p.as_str()),
            StringMatch::Suffix(s) => value.ends_with(s.as_str()),
            StringMatch::Regex(r) => r.is_match(value),
            StringMatch::PathPrefix(p) => {
                p.is_empty()
                    || (value.starts_with(p.as_str())
                        && matches!(value.as_bytes().get(p.len()), None | Some(b'/')))
            }
            StringMatch::Any => true,
        }
    }

    /// Case-insensitive match (VirtualService `ignoreUriCase`). Exact and prefix compare
    /// ASCII case-insensitively; a regex built with `(?i)` should be used for regex.
    pub fn matches_ignore_case(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(e) => value.eq_ignore_ascii_case(e),
            StringMatch::Prefix(p) => value
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p)),
            StringMatch::Suffix(s) => {
                value.len() >= s.len()
                    && value
                        .get(value.len() - s.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(s))
            }
            other => other.matches(value),
        }
    }

    /// Short human description, for traces.
    pub fn describe(&self) -> String {
        match self {
            StringMatch::Exact(e) => format!("exact {e:?}"),
            StringMatch::Prefix(p) => format!("prefix {p:?}"),
            StringMatch::Suffix(s) => format!("suffix {s:?}"),
            StringMatch::Regex(r) => {
                let s = r.as_str();
                let inner = s
                    .strip_prefix("^(?:")
                    .and_then(|s| s.strip_suffix(")$"))
                    .unwrap_or(s);
                format!("regex {inner:?}")
            }
            StringMatch::PathPrefix(p) => {
                format!("path-prefix {:?}", if p.is_empty() { "/" } else { p })
            }
            StringMatch::Any => "present".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let re = StringMatch::regex("/api/v[0-9]+").expect("valid regex");
        let cases: Vec<(StringMatch, &str, bool)> = vec![
            (StringMatch::Exact("/a".into()), "/a", true),
            (StringMatch::Exact("/a".into()), "/ab", false),
            (StringMatch::Prefix("/a".into()), "/ab", true),
            (StringMatch::Suffix(".js".into()), "x.js", true),
            (re.clone(), "/api/v1", true),
            (re.clone(), "/api/v1/x", false), // full match, not find
            (re, "x/api/v1", false),
            (StringMatch::path_prefix("/foo"), "/foo", true),
            (StringMatch::path_prefix("/foo"), "/foo/bar", true),
            (StringMatch::path_prefix("/foo/"), "/foo/bar", true),
            (StringMatch::path_prefix("/foo"), "/foobar", false),
            (StringMatch::path_prefix("/"), "/anything", true),
            (StringMatch::Any, "", true),
        ];
        for (m, v, want) in cases {
            assert_eq!(m.matches(v), want, "{} vs {v}", m.describe());
        }
    }

    #[test]
    fn ignore_case() {
        assert!(StringMatch::Prefix("/API".into()).matches_ignore_case("/api/x"));
        assert!(StringMatch::Exact("/A".into()).matches_ignore_case("/a"));
        assert!(!StringMatch::Exact("/A".into()).matches_ignore_case("/b"));
    }
}
