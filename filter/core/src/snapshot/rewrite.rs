//! Pure helpers the decision and the adapters share: path rewrites, redirect locations and
//! header mutations applied in Envoy's order (remove, then set/add).

use crate::matchers::StringMatch;
use crate::route::{HeaderOps, PathRewrite};

/// Rewrite `path` (without query) per `rw`. `matched` is the path matcher of the entry that
/// matched: a prefix rewrite replaces the prefix that matched, as Envoy's `prefix_rewrite`.
pub fn rewrite_path(path: &str, rw: &PathRewrite, matched: Option<&StringMatch>) -> String {
    match rw {
        PathRewrite::Full(p) => p.clone(),
        PathRewrite::Regex {
            regex,
            substitution,
        } => {
            // `substitution` is already in the regex crate's syntax (compiled once from
            // Envoy's `\1` form by `re2_substitution_to_rust`).
            regex.replace_all(path, substitution.as_str()).into_owned()
        }
        PathRewrite::Prefix {
            prefix,
            replacement,
        } => match matched {
            // Gateway API ReplacePrefixMatch: element-wise; `/foo` → `/` on `/foo/bar` is `/bar`.
            Some(StringMatch::PathPrefix(p)) => {
                let rest = path.get(p.len()..).unwrap_or("");
                let base = replacement.trim_end_matches('/');
                let out = format!("{base}{rest}");
                if out.is_empty() {
                    "/".to_string()
                } else if !out.starts_with('/') {
                    format!("/{out}")
                } else {
                    out
                }
            }
            Some(StringMatch::Prefix(p)) => {
                let rest = path.get(p.len()..).unwrap_or("");
                format!("{replacement}{rest}")
            }
            // No prefix match: VirtualService rewrite.uri replaces the whole path
            // unless the compiled prefix applies.
            _ => match path.strip_prefix(prefix.as_str()) {
                Some(rest) if !prefix.is_empty() => format!("{replacement}{rest}"),
                _ => replacement.clone(),
            },
        },
    }
}

/// Apply header mutations to a list of (lower-case name, value) pairs: removals first, then
/// `set` (overwrite) and `add` (append a value), as Envoy's HeaderParser does.
pub fn apply_header_ops(headers: &mut Vec<(String, String)>, ops: &HeaderOps) {
    for name in &ops.remove {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }
    for (name, value) in &ops.set {
        let lname = name.to_ascii_lowercase();
        headers.retain(|(k, _)| k != &lname);
        headers.push((lname, value.clone()));
    }
    for (name, value) in &ops.add {
        headers.push((name.to_ascii_lowercase(), value.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rewrites() {
        let pr = |prefix: &str, rep: &str| PathRewrite::Prefix {
            prefix: prefix.into(),
            replacement: rep.into(),
        };
        let gw = StringMatch::path_prefix("/foo");
        let vs = StringMatch::Prefix("/foo".into());
        let cases = [
            (pr("/foo", "/"), Some(&gw), "/foo/bar", "/bar"),
            (pr("/foo", "/"), Some(&gw), "/foo", "/"),
            (pr("/foo", "/xyz"), Some(&gw), "/foo/bar", "/xyz/bar"),
            (pr("/foo", "/xyz/"), Some(&gw), "/foo", "/xyz"),
            (pr("/foo", "/bar"), Some(&vs), "/foobaz", "/barbaz"),
            (pr("/foo", "/bar"), None, "/other", "/bar"),
        ];
        for (rw, m, path, want) in cases {
            assert_eq!(rewrite_path(path, &rw, m), want, "{path}");
        }
    }

    #[test]
    fn regex_rewrite_with_groups() {
        let rw = PathRewrite::Regex {
            regex: regex::Regex::new("^/service/([^/]+)(/.*)$").expect("regex"),
            substitution: "${2}/instance/${1}".into(),
        };
        assert_eq!(
            rewrite_path("/service/foo/v1/api", &rw, None),
            "/v1/api/instance/foo"
        );
    }

    #[test]
    fn header_ops_order() {
        let mut h = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ];
        let ops = HeaderOps {
            set: vec![("A".into(), "x".into())],
            add: vec![("c".into(), "3".into()), ("b".into(), "4".into())],
            remove: vec!["B".into()],
        };
        apply_header_ops(&mut h, &ops);
        assert_eq!(
            h,
            vec![
                ("a".into(), "x".into()),
                ("c".into(), "3".into()),
                ("b".into(), "4".into())
            ]
        );
    }
}
