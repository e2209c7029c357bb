//! Request path handling for AuthorizationPolicy: Envoy's `normalize_path` (Istio's default
//! `BASE` normalization) and the `{*}` / `{**}` path templates (Envoy `uri_template`).

use std::borrow::Cow;

use regex::Regex;

use crate::mesh::PathNormalization;

// Character classes of the canonicalizer Envoy uses for `normalize_path: true`
// (googleurl `url_canon_path.cc`, the IE-compatible table Envoy ships). Istio documents the
// effect: https://istio.io/latest/docs/reference/config/security/normalization/
const PASS: u8 = 0;
const SPECIAL: u8 = 1;
const ESCAPE: u8 = 2 | SPECIAL;
const UNESCAPE: u8 = 4;
const INVALID: u8 = 8 | SPECIAL;

const fn path_char_table() -> [u8; 256] {
    let mut t = [ESCAPE; 256];
    t[0] = INVALID;
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = UNESCAPE;
        c += 1;
    }
    c = b'A';
    while c <= b'Z' {
        t[c as usize] = UNESCAPE;
        t[(c + 32) as usize] = UNESCAPE;
        c += 1;
    }
    t[b'-' as usize] = UNESCAPE;
    t[b'_' as usize] = UNESCAPE;
    t[b'~' as usize] = UNESCAPE;
    t[b'.' as usize] = SPECIAL;
    t[b'%' as usize] = ESCAPE;
    let pass = b"!$&'()*+,/:;=@[]";
    let mut i = 0;
    while i < pass.len() {
        t[pass[i] as usize] = PASS;
        i += 1;
    }
    t
}

static PATH_CHARS: [u8; 256] = path_char_table();

/// Istio's default path normalization (`BASE`): Envoy `normalize_path: true` with
/// `path_with_escaped_slashes_action: KEEP_UNCHANGED` and no slash merging. Resolves `.` and
/// `..` segments (also written `%2E`), turns `\` into `/`, decodes `%XX` of unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`), keeps every other escape byte-for-byte (`%2F` stays
/// `%2F`, `%2f` stays `%2f`), escapes bytes that may not appear raw in a path, and keeps the
/// query untouched. See [`try_normalize_path`] for the paths Envoy rejects (`%00`).
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    canonicalize(path).0
}

/// Like [`normalize_path`], but `None` when Envoy rejects the path with 400 (an escaped or raw
/// NUL, e.g. `/a/%00`).
pub fn try_normalize_path(path: &str) -> Option<Cow<'_, str>> {
    match canonicalize(path) {
        (p, true) => Some(p),
        (_, false) => None,
    }
}

/// Normalize `path` (with its query) once, as Envoy's HTTP connection manager does under
/// Istio's MeshConfig `pathNormalization` (`ConnectionManagerUtility::maybeNormalizePath`):
/// first `%2F`/`%5C` are unescaped (`DECODE_AND_MERGE_SLASHES` only, Envoy
/// `path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD`), then the RFC 3986 + backslash
/// normalization of [`try_normalize_path`] (every mode but `NONE`), then runs of `/` are merged
/// (`MERGE_SLASHES` and `DECODE_AND_MERGE_SLASHES`, Envoy `merge_slashes`). The query is never
/// touched. `None`: Envoy rejects the path with 400. Borrowed when nothing changes, and
/// idempotent: normalizing a normalized path changes nothing.
pub fn normalize_path_with(mode: PathNormalization, path: &str) -> Option<Cow<'_, str>> {
    match mode {
        PathNormalization::None => Some(Cow::Borrowed(path)),
        PathNormalization::Base => try_normalize_path(path),
        PathNormalization::MergeSlashes => chain(try_normalize_path(path)?, merge_slashes),
        PathNormalization::DecodeAndMergeSlashes => {
            let unescaped = unescape_slashes(path);
            let canonical = chain(unescaped, try_normalize_path)?;
            chain(canonical, merge_slashes)
        }
    }
}

/// Most passes [`normalize_path_stable`] makes; a path still changing after them is rejected.
const MAX_NORMALIZE_PASSES: usize = 4;

/// [`normalize_path_with`] repeated until the path no longer changes: what policy checks, routes
/// match and the upstream receives. One Envoy pass can form a new escape (`/%6%31dmin` ->
/// `/%61dmin`) that the application then decodes (`/admin`), so a path judged after one pass is
/// not what the backend serves; and in the Envoy layout the core sees the HCM's already
/// normalized path, so normalizing to a fixed point makes both runtimes judge and forward the
/// same path. Canonical paths (nearly all) take one pass and stay borrowed. `None`: Envoy
/// would reject the path (400), or it does not settle within a few passes.
pub fn normalize_path_stable(mode: PathNormalization, path: &str) -> Option<Cow<'_, str>> {
    let mut cur = match normalize_path_with(mode, path)? {
        Cow::Borrowed(b) => return Some(Cow::Borrowed(b)),
        Cow::Owned(o) => o,
    };
    for _ in 0..MAX_NORMALIZE_PASSES {
        match normalize_path_with(mode, &cur)? {
            Cow::Borrowed(_) => return Some(Cow::Owned(cur)),
            Cow::Owned(next) => cur = next,
        }
    }
    None
}

/// Apply `next` to `prev`, keeping one owned string when either step changed the path.
fn chain<'a>(
    prev: Cow<'a, str>,
    next: for<'x> fn(&'x str) -> Option<Cow<'x, str>>,
) -> Option<Cow<'a, str>> {
    match prev {
        Cow::Borrowed(b) => next(b),
        Cow::Owned(o) => {
            let changed = match next(&o)? {
                Cow::Owned(n) => Some(n),
                Cow::Borrowed(_) => None,
            };
            Some(Cow::Owned(changed.unwrap_or(o)))
        }
    }
}

/// Envoy `merge_slashes` (`PathUtil::mergeSlashes`): every run of `/` in the path (not the
/// query) becomes one `/`.
pub fn merge_slashes(full: &str) -> Option<Cow<'_, str>> {
    let (path, query) = split_query(full);
    if !path.contains("//") {
        return Some(Cow::Borrowed(full));
    }
    let mut out = String::with_capacity(full.len());
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' && prev_slash {
            continue;
        }
        prev_slash = c == '/';
        out.push(c);
    }
    out.push_str(query);
    Some(Cow::Owned(out))
}

/// Envoy `path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD` (`PathUtil::unescapeSlashes`):
/// `%2F`/`%2f` become `/` and `%5C`/`%5c` become `\` in the path (not the query).
pub fn unescape_slashes(full: &str) -> Cow<'_, str> {
    let (path, query) = split_query(full);
    let b = path.as_bytes();
    let is_escaped_slash = |i: usize| {
        b[i] == b'%'
            && matches!(
                (b.get(i + 1), b.get(i + 2)),
                (Some(b'2'), Some(b'f' | b'F')) | (Some(b'5'), Some(b'c' | b'C'))
            )
    };
    if !(0..b.len()).any(is_escaped_slash) {
        return Cow::Borrowed(full);
    }
    let mut out = Vec::with_capacity(full.len());
    let mut i = 0;
    while i < b.len() {
        if is_escaped_slash(i) {
            out.push(if b[i + 1] == b'2' { b'/' } else { b'\\' });
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out.extend_from_slice(query.as_bytes());
    // Only ASCII escapes were replaced by ASCII bytes: still valid UTF-8.
    Cow::Owned(
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()),
    )
}

fn split_query(full: &str) -> (&str, &str) {
    match full.find('?') {
        Some(i) => (&full[..i], &full[i..]),
        None => (full, ""),
    }
}

/// Path without query string and fragment, as Envoy's path matchers see it
/// (`PathUtil::removeQueryAndFragment`).
pub fn path_without_query(path: &str) -> &str {
    // A byte loop: paths are short, and `str::find` with a char set costs more per request.
    match path.bytes().position(|c| c == b'?' || c == b'#') {
        Some(i) => &path[..i],
        None => path,
    }
}

fn canonicalize(full: &str) -> (Cow<'_, str>, bool) {
    let (path, query) = match full.bytes().position(|c| c == b'?') {
        Some(i) => (&full[..i], &full[i..]),
        None => (full, ""),
    };
    if is_canonical(path) {
        return (Cow::Borrowed(full), true);
    }
    let b = path.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len() + 1 + query.len());
    let mut valid = true;
    if b.first().is_none_or(|c| *c != b'/' && *c != b'\\') {
        out.push(b'/');
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let flags = PATH_CHARS[c as usize];
        if flags & SPECIAL == 0 {
            out.push(c);
            i += 1;
            continue;
        }
        let dot = dot_len(b, i);
        if dot > 0 {
            if out.last() == Some(&b'/') {
                match after_dot(b, i + dot) {
                    Dot::NotDirectory => {
                        out.push(b'.');
                        i += dot;
                    }
                    Dot::Current(n) => i += dot + n,
                    Dot::Up(n) => {
                        back_up_to_previous_slash(&mut out);
                        i += dot + n;
                    }
                }
            } else {
                out.push(b'.');
                i += dot;
            }
        } else if c == b'\\' {
            out.push(b'/');
            i += 1;
        } else if c == b'%' {
            match decode_escape(b, i) {
                Some(v) => {
                    let f = PATH_CHARS[v as usize];
                    if f & UNESCAPE != 0 {
                        out.push(v);
                    } else {
                        if f == INVALID {
                            valid = false;
                        }
                        // Kept as written: hex case is not changed.
                        out.extend_from_slice(&b[i..i + 3]);
                    }
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            }
        } else {
            if flags == INVALID {
                valid = false;
            }
            push_escaped(&mut out, c);
            i += 1;
        }
    }
    out.extend_from_slice(query.as_bytes());
    // Every byte pushed is ASCII or copied from valid UTF-8 runs of ASCII; non-ASCII bytes are
    // always escaped, so this cannot fail. Fall back to a lossy copy rather than panic.
    let s = String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into());
    // Escapes kept as written (`%2F`) make the fast check fail on paths that need no change:
    // say so, so callers can tell an unchanged path by `Cow::Borrowed`.
    if s == full {
        return (Cow::Borrowed(full), valid);
    }
    (Cow::Owned(s), valid)
}

/// Fast check: nothing in `path` would be changed by [`canonicalize`].
fn is_canonical(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut prev = 0u8;
    for &c in b {
        let f = PATH_CHARS[c as usize];
        if c == b'.' {
            if prev == b'/' {
                return false;
            }
        } else if f & SPECIAL != 0 {
            return false;
        }
        prev = c;
    }
    true
}

enum Dot {
    NotDirectory,
    Current(usize),
    Up(usize),
}

/// `.` or `%2e` / `%2E` at `i`: its length, else 0.
fn dot_len(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'.') => 1,
        Some(b'%') if b.get(i + 1) == Some(&b'2') && matches!(b.get(i + 2), Some(b'e' | b'E')) => 3,
        _ => 0,
    }
}

fn is_slash(c: Option<&u8>) -> bool {
    matches!(c, Some(b'/' | b'\\'))
}

/// What follows a dot that starts a segment.
fn after_dot(b: &[u8], j: usize) -> Dot {
    if j >= b.len() {
        return Dot::Current(0);
    }
    if is_slash(b.get(j)) {
        return Dot::Current(1);
    }
    let second = dot_len(b, j);
    if second > 0 {
        let k = j + second;
        if k >= b.len() {
            return Dot::Up(second);
        }
        if is_slash(b.get(k)) {
            return Dot::Up(second + 1);
        }
    }
    Dot::NotDirectory
}

/// `out` ends with `/`: drop the last segment, never going above the first `/`.
fn back_up_to_previous_slash(out: &mut Vec<u8>) {
    let Some(mut i) = out.len().checked_sub(1) else {
        return;
    };
    if i == 0 {
        return;
    }
    loop {
        i -= 1;
        if out[i] == b'/' || i == 0 {
            break;
        }
    }
    out.truncate(i + 1);
}

fn decode_escape(b: &[u8], i: usize) -> Option<u8> {
    let hi = hex(*b.get(i + 1)?)?;
    let lo = hex(*b.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn push_escaped(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(b'%');
    out.push(HEX[(c >> 4) as usize]);
    out.push(HEX[(c & 15) as usize]);
}

/// Istio's path template operators.
const MATCH_ONE: &str = "{*}";
const MATCH_ANY: &str = "{**}";

/// True when an Istio `paths` value is a template (`{*}` or `{**}`), which Istio hands to
/// Envoy's `uri_template` matcher instead of a string matcher.
pub fn is_path_template(value: &str) -> bool {
    value.contains(MATCH_ONE) || value.contains(MATCH_ANY)
}

/// Compile an Istio path template into a full-match regex with Envoy `uri_template`
/// semantics: `{*}` = one non-empty segment of pchars, `{**}` = zero or more pchars and `/`.
/// Validation follows Istio's `CheckValidPathTemplate` plus Envoy's parser (no `=` in a
/// literal, leading `/`). Error = the value is invalid.
pub fn compile_path_template(value: &str) -> Result<Regex, String> {
    let Some(rest) = value.strip_prefix('/') else {
        return Err(format!("path template {value:?} must start with '/'"));
    };
    // Envoy: `[a-zA-Z0-9-._~%!$&'()+,;:@]` (RFC 3986 pchar minus `*` and `=`).
    const LIT: &str = r"a-zA-Z0-9\-._~%!$&'()+,;:@";
    let mut re = String::from("^/");
    let mut seen_any = false;
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            re.push('/');
        }
        match *seg {
            MATCH_ONE | MATCH_ANY if seen_any => {
                return Err(format!(
                    "invalid path template {value:?}: {{**}} is not the last operator"
                ));
            }
            MATCH_ONE => re.push_str(&format!("[{LIT}]+")),
            MATCH_ANY => {
                seen_any = true;
                re.push_str(&format!("[{LIT}/]*"));
            }
            // A trailing `/` is an empty last segment: the path must end with `/`.
            "" if i == last && i > 0 => {}
            lit => {
                let ok = !lit.is_empty()
                    && lit
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@".contains(&c));
                if !ok {
                    return Err(format!(
                        "invalid path template {value:?}: segment {lit:?} is not a valid literal"
                    ));
                }
                re.push_str(&regex::escape(lit));
            }
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("invalid path template {value:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_normalization_reaches_a_fixed_point() {
        let base = PathNormalization::Base;
        for (input, want) in [
            ("/abc", Some("/abc")),
            ("/a/../b", Some("/b")),
            ("/%6%31dmin", Some("/admin")),
            ("/%4%41", Some("/J")),
            // `%25` (a percent sign) is reserved: Envoy keeps it escaped.
            ("/%2%35%36%31", Some("/%2561")),
            ("/a/%00", None),
        ] {
            let got = normalize_path_stable(base, input);
            assert_eq!(got.as_deref(), want, "{input}");
            if let Some(g) = got {
                let again = normalize_path_stable(base, &g).expect("stable");
                assert!(
                    matches!(again, Cow::Borrowed(_)),
                    "{input}: {g} is a fixed point"
                );
            }
        }
        assert!(matches!(
            normalize_path_stable(base, "/already/canonical"),
            Some(Cow::Borrowed(_))
        ));
        // NONE never changes anything.
        assert_eq!(
            normalize_path_stable(PathNormalization::None, "/%6%31dmin").as_deref(),
            Some("/%6%31dmin")
        );
    }

    #[test]
    fn normalization_table() {
        // Cases from Envoy's path_utility_test and Istio's normalization docs.
        for (input, want) in [
            ("/xyz", "/xyz"),
            ("/a/b/../c", "/a/c"),
            ("/a/b/./c", "/a/b/c"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("a/b/../c", "/a/c"),
            ("/a/b/../../../../c", "/c"),
            ("/a/..\\c", "/c"),
            ("/some\\data", "/some/data"),
            ("/%c0%af", "/%c0%af"),
            ("/%5c%25", "/%5c%25"),
            ("/a/b/%2E%2E/c", "/a/c"),
            ("/a/b/%2e%2e/c", "/a/c"),
            ("/a/b/%2E./c", "/a/c"),
            ("/a/b/%2E/c", "/a/b/c"),
            ("..", "/"),
            ("/../a/b", "/a/b"),
            ("/./a/b", "/a/b"),
            ("/A/B/C", "/A/B/C"),
            // Escaped slashes are kept (Istio sets KEEP_UNCHANGED), hex case preserved.
            ("/a/%2F%2f/c", "/a/%2F%2f/c"),
            ("/some%2fdata/%61%62%63", "/some%2fdata/abc"),
            ("/%2d%5f%7e%41%7a%30", "/-_~Az0"),
            // No slash merging with BASE.
            ("/a//b", "/a//b"),
            ("/a//../b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a/.b/..c", "/a/.b/..c"),
            ("/a b", "/a%20b"),
            ("/caf\u{e9}", "/caf%C3%A9"),
            ("/bad%zz%", "/bad%zz%"),
            // Query is untouched.
            ("/a/../b?x=/../y&%61", "/b?x=/../y&%61"),
            ("/public/%2E/%2E%2E/private", "/private"),
            ("/public/%2e%2e/%2e/private", "/private"),
        ] {
            assert_eq!(normalize_path(input), want, "{input}");
        }
    }

    #[test]
    fn borrowed_when_unchanged_and_nul_rejected() {
        assert!(matches!(normalize_path("/a/b.c?x=1"), Cow::Borrowed(_)));
        for bad in [
            "/xyz/.%00../abc",
            "/xyz/%00.%00./abc",
            "/xyz/AAAAA%%0000/abc",
        ] {
            assert!(try_normalize_path(bad).is_none(), "{bad}");
        }
        assert_eq!(try_normalize_path("/a/./b").as_deref(), Some("/a/b"));
    }

    #[test]
    fn normalization_modes() {
        use PathNormalization as P;
        // (input, NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES); None = 400.
        let cases: &[(&str, [Option<&str>; 4])] = &[
            ("/admin", [Some("/admin"); 4]),
            (
                "/admin/..",
                [Some("/admin/.."), Some("/"), Some("/"), Some("/")],
            ),
            (
                "/admin/%2e%2e",
                [Some("/admin/%2e%2e"), Some("/"), Some("/"), Some("/")],
            ),
            (
                "/admin/x/../..",
                [Some("/admin/x/../.."), Some("/"), Some("/"), Some("/")],
            ),
            (
                "//admin",
                [
                    Some("//admin"),
                    Some("//admin"),
                    Some("/admin"),
                    Some("/admin"),
                ],
            ),
            (
                "/admin%2F..",
                [
                    Some("/admin%2F.."),
                    Some("/admin%2F.."),
                    Some("/admin%2F.."),
                    Some("/"),
                ],
            ),
            (
                "/a%2fb%5Cc",
                [
                    Some("/a%2fb%5Cc"),
                    Some("/a%2fb%5Cc"),
                    Some("/a%2fb%5Cc"),
                    Some("/a/b/c"),
                ],
            ),
            (
                "/a%2F%2Fb",
                [
                    Some("/a%2F%2Fb"),
                    Some("/a%2F%2Fb"),
                    Some("/a%2F%2Fb"),
                    Some("/a/b"),
                ],
            ),
            (
                "/a//b/../c",
                [
                    Some("/a//b/../c"),
                    Some("/a//c"),
                    Some("/a/c"),
                    Some("/a/c"),
                ],
            ),
            ("///", [Some("///"), Some("///"), Some("/"), Some("/")]),
            (
                "/a//b?x=//y%2F",
                [
                    Some("/a//b?x=//y%2F"),
                    Some("/a//b?x=//y%2F"),
                    Some("/a/b?x=//y%2F"),
                    Some("/a/b?x=//y%2F"),
                ],
            ),
            ("/a/%00", [Some("/a/%00"), None, None, None]),
            (
                "/a%252F..",
                [
                    Some("/a%252F.."),
                    Some("/a%252F.."),
                    Some("/a%252F.."),
                    Some("/a%252F.."),
                ],
            ),
        ];
        for (input, wants) in cases {
            for (mode, want) in [P::None, P::Base, P::MergeSlashes, P::DecodeAndMergeSlashes]
                .into_iter()
                .zip(wants)
            {
                let got = normalize_path_with(mode, input);
                assert_eq!(got.as_deref(), *want, "{input} under {}", mode.as_str());
                // Idempotent: a normalized path is left as is.
                if let Some(once) = got {
                    let twice = normalize_path_with(mode, &once);
                    assert_eq!(
                        twice.as_deref(),
                        Some(&*once),
                        "{input} twice under {}",
                        mode.as_str()
                    );
                    assert!(
                        matches!(twice, Some(Cow::Borrowed(_))),
                        "{input} twice under {}",
                        mode.as_str()
                    );
                }
            }
        }
        assert!(matches!(
            normalize_path_with(P::DecodeAndMergeSlashes, "/a/b?c"),
            Some(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn query_and_fragment_removed() {
        for (input, want) in [
            ("/abc?x#y", "/abc"),
            ("/abc#frag?x", "/abc"),
            ("/abc", "/abc"),
            ("/abc??", "/abc"),
        ] {
            assert_eq!(path_without_query(input), want);
        }
    }

    #[test]
    fn templates() {
        // Expectations from Istio's authz integration test (path templating) and API docs.
        let cases: &[(&str, &str, bool)] = &[
            ("/allow/admin/{**}", "/allow/admin/", true),
            ("/allow/admin/{**}", "/allow/admin", false),
            ("/allow/admin/{**}", "/allow/user/", false),
            ("/allow/admin/{**}", "/allow", false),
            ("/allow/admin/{**}", "/allow/admin/temp", true),
            ("/allow/admin/{**}", "/allow/admin/foo/temp.txt", true),
            ("/foo/{*}/bar/{**}", "/foo/buzz/bar/bat.txt", true),
            ("/foo/{*}/bar/{**}", "/foo/buzz/bar/bat/fuzz.txt", true),
            ("/foo/{*}/bar/{**}", "/foo/bar/bat.txt", false),
            ("/foo/{*}/bar/{**}", "/foo//bar/bat.txt", false),
            ("/foo/{*}/bar/{**}", "/foo/buzz/bar/", true),
            ("/foo/{*}/bar/{**}", "/foo/buzz/bar", false),
            ("/store/{**}/cart", "/store//cart", true),
            ("/store/{**}/cart", "/store/cart", false),
            ("/store/{**}/cart", "/store/foo/bar/cart", true),
            ("/foo/{*}", "/foo/bar", true),
            ("/foo/{*}", "/foo/bar/baz", false),
            ("/foo/{**}/", "/foo//", true),
            ("/foo/{**}/", "/foo/bar", false),
            // istio/api docs claim this matches, but Envoy's uri_template compiles
            // `/foo/{**}/` to `/foo/[pchar/]*/`, which needs the trailing `/`.
            ("/foo/{**}/", "/foo/bar/baz.txt", false),
            ("/foo/{**}/", "/foo/bar/", true),
            ("/a.b/{*}", "/aXb/c", false),
        ];
        for (tpl, path, want) in cases {
            let re = compile_path_template(tpl).expect("valid template");
            assert_eq!(re.is_match(path), *want, "{tpl} vs {path}");
        }
        for bad in [
            "/*/baz/{*}",
            "/**/baz/{*}",
            "/{**}/foo/{*}",
            "/foo/{*}.txt",
            "/a//{*}",
            "foo/{*}",
            "/a=b/{*}",
            "/{x}/{*}",
        ] {
            assert!(compile_path_template(bad).is_err(), "{bad}");
        }
    }
}
