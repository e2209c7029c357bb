//! Limits on manifest text, checked by a linear pre-scan before any YAML or JSON parser sees
//! it: text and document size, and nesting depth (flow `[`/`{` and block indentation alike).

/// Limits on one manifest text. Kubernetes is the guide: etcd stores objects of at most
/// 1.5 MiB, and no real resource nests anywhere near 64 levels (serde's own recursion limit,
/// 128, is only reached after a parse that can take seconds on hostile input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestLimits {
    /// Bytes of one manifest text (one file).
    pub max_text_bytes: usize,
    /// Bytes of one YAML document (a JSON text is one document).
    pub max_document_bytes: usize,
    /// Nesting depth of mappings and sequences in one document.
    pub max_depth: usize,
}

impl ManifestLimits {
    /// The limits the loader applies unless told otherwise.
    pub const DEFAULT: ManifestLimits = ManifestLimits {
        max_text_bytes: 16 * 1024 * 1024,
        max_document_bytes: 1536 * 1024,
        max_depth: 64,
    };
}

impl Default for ManifestLimits {
    fn default() -> Self {
        ManifestLimits::DEFAULT
    }
}

/// Why a text was rejected: which document (0-based, as the YAML parser counts them) and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitViolation {
    pub document: usize,
    /// 1-based line, 0 when the whole text is at fault.
    pub line: usize,
    pub message: String,
}

/// Check `text` against `limits` in one pass over its bytes. The scan over-estimates depth
/// by at most a level or two on unusual layouts; it never runs a parser.
pub fn check(text: &str, limits: &ManifestLimits) -> Result<(), LimitViolation> {
    if text.len() > limits.max_text_bytes {
        return Err(LimitViolation {
            document: 0,
            line: 0,
            message: format!(
                "manifest is {} bytes, over the limit of {} bytes; rejected before parsing",
                text.len(),
                limits.max_text_bytes
            ),
        });
    }
    let mut s = Scanner {
        limits,
        doc: 0,
        doc_open: false,
        doc_start: 0,
        blocks: Vec::new(),
        flow: 0,
        quote: None,
        block_scalar: None,
    };
    let mut offset = 0;
    for (n, line) in text.as_bytes().split(|&b| b == b'\n').enumerate() {
        s.line(line, offset, n + 1)?;
        offset += line.len() + 1;
    }
    Ok(())
}

struct Scanner<'l> {
    limits: &'l ManifestLimits,
    /// Index of the current document.
    doc: usize,
    /// The current document has content or an explicit `---` (so a `---` starts the next).
    doc_open: bool,
    doc_start: usize,
    /// Open block nodes: (column, opened by a `-`/`?` indicator).
    blocks: Vec<(usize, bool)>,
    /// Depth of open flow collections.
    flow: usize,
    /// Inside a quoted scalar opened by this quote.
    quote: Option<u8>,
    /// Inside a block scalar (`|`, `>`) introduced on a line of this indentation.
    block_scalar: Option<usize>,
}

fn is_marker(line: &[u8], marker: &[u8]) -> bool {
    line.starts_with(marker) && matches!(line.get(3), None | Some(b' ' | b'\t'))
}

/// A block indicator (`- `, `? `, `: `) at `pos`.
fn is_indicator(line: &[u8], pos: usize) -> bool {
    matches!(line.get(pos), Some(b'-' | b'?' | b':'))
        && matches!(line.get(pos + 1), None | Some(b' ' | b'\t'))
}

fn indent_of(line: &[u8]) -> usize {
    line.iter().take_while(|&&b| b == b' ').count()
}

impl Scanner<'_> {
    fn violation(&self, line: usize, message: String) -> LimitViolation {
        LimitViolation {
            document: self.doc,
            line,
            message,
        }
    }

    fn check_depth(&self, line_no: usize) -> Result<(), LimitViolation> {
        if self.blocks.len() + self.flow > self.limits.max_depth {
            return Err(self.violation(
                line_no,
                format!(
                    "nesting deeper than the limit of {} levels (line {line_no}); rejected \
                     before parsing",
                    self.limits.max_depth
                ),
            ));
        }
        Ok(())
    }

    fn reset(&mut self, doc_start: usize) {
        self.doc_start = doc_start;
        self.blocks.clear();
        self.flow = 0;
        self.quote = None;
        self.block_scalar = None;
    }

    fn line(&mut self, line: &[u8], offset: usize, line_no: usize) -> Result<(), LimitViolation> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if is_marker(line, b"---") {
            if self.doc_open {
                self.doc += 1;
            }
            self.doc_open = true;
            self.reset(offset);
            self.check_size(offset + line.len(), line_no)?;
            // Content may follow the marker on its line (`--- {a: 1}`, `--- |`).
            return self.content(line, 3, 0, line_no);
        }
        if is_marker(line, b"...") {
            if self.doc_open {
                self.doc += 1;
                self.doc_open = false;
            }
            self.reset(offset + line.len() + 1);
            return Ok(());
        }
        self.check_size(offset + line.len(), line_no)?;
        if self.flow > 0 || self.quote.is_some() {
            return self.scan(line, 0, false, 0, line_no);
        }
        let indent = indent_of(line);
        if let Some(scalar_indent) = self.block_scalar {
            if indent == line.len() || indent > scalar_indent {
                return Ok(());
            }
            self.block_scalar = None;
        }
        if indent == line.len() || line[indent] == b'#' || line[indent] == b'%' {
            return Ok(());
        }
        self.doc_open = true;
        self.content(line, indent, indent, line_no)
    }

    /// The current document, up to byte `end`, is within the size limit.
    fn check_size(&self, end: usize, line_no: usize) -> Result<(), LimitViolation> {
        if end - self.doc_start > self.limits.max_document_bytes {
            return Err(self.violation(
                line_no,
                format!(
                    "document is over the limit of {} bytes (Kubernetes stores objects of at \
                     most 1.5 MiB; split a large List into documents); rejected before parsing",
                    self.limits.max_document_bytes
                ),
            ));
        }
        Ok(())
    }

    /// A line of block content starting at column `start` (indentation `indent`).
    fn content(
        &mut self,
        line: &[u8],
        start: usize,
        indent: usize,
        line_no: usize,
    ) -> Result<(), LimitViolation> {
        let mut pos = start;
        while line.get(pos) == Some(&b' ') {
            pos += 1;
        }
        if pos >= line.len() || line[pos] == b'#' {
            return Ok(());
        }
        let dash = is_indicator(line, pos);
        // Close the nodes this line is not inside; a `-` at a key's column is the key's value.
        while let Some(&(col, by_indicator)) = self.blocks.last() {
            // A `-` line at a key's column stays inside that key (its value is the sequence).
            let nested_sequence = dash && !by_indicator;
            if col > pos || (col == pos && !nested_sequence) {
                self.blocks.pop();
            } else {
                break;
            }
        }
        while is_indicator(line, pos) {
            self.blocks.push((pos, true));
            self.check_depth(line_no)?;
            pos += 1;
            while matches!(line.get(pos), Some(b' ' | b'\t')) {
                pos += 1;
            }
        }
        if pos < line.len() && line[pos] != b'#' {
            self.blocks.push((pos, false));
            self.check_depth(line_no)?;
        }
        self.scan(line, pos, true, indent, line_no)
    }

    /// Scan the rest of a line for quotes, flow collections, comments and block scalars.
    fn scan(
        &mut self,
        line: &[u8],
        from: usize,
        mut value_start: bool,
        indent: usize,
        line_no: usize,
    ) -> Result<(), LimitViolation> {
        let mut i = from;
        while i < line.len() {
            let b = line[i];
            let prev = if i == 0 { None } else { Some(line[i - 1]) };
            if let Some(q) = self.quote {
                if q == b'"' && b == b'\\' {
                    i += 2;
                    continue;
                }
                if b == q {
                    if q == b'\'' && line.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    self.quote = None;
                }
                i += 1;
                continue;
            }
            if b == b'#' && matches!(prev, None | Some(b' ' | b'\t')) {
                return Ok(());
            }
            if self.flow > 0 {
                match b {
                    b'[' | b'{' => {
                        self.flow += 1;
                        self.check_depth(line_no)?;
                    }
                    b']' | b'}' => {
                        self.flow -= 1;
                        value_start = false;
                    }
                    b'"' | b'\''
                        if matches!(
                            prev,
                            None | Some(b' ' | b'\t' | b'[' | b'{' | b',' | b':')
                        ) =>
                    {
                        self.quote = Some(b)
                    }
                    _ => {}
                }
                i += 1;
                continue;
            }
            if value_start {
                match b {
                    b' ' | b'\t' => {}
                    b'[' | b'{' => {
                        self.flow = 1;
                        self.check_depth(line_no)?;
                        value_start = false;
                    }
                    b'"' | b'\'' => {
                        self.quote = Some(b);
                        value_start = false;
                    }
                    b'|' | b'>' => {
                        self.block_scalar = Some(indent);
                        return Ok(());
                    }
                    // Anchor or tag: the value follows it.
                    b'&' | b'!' => {
                        while i < line.len() && !matches!(line[i], b' ' | b'\t') {
                            i += 1;
                        }
                        continue;
                    }
                    _ => value_start = false,
                }
                i += 1;
                continue;
            }
            if b == b':' && matches!(line.get(i + 1), None | Some(b' ' | b'\t')) {
                value_start = true;
            }
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, max_depth: usize) -> bool {
        let limits = ManifestLimits {
            max_depth,
            ..ManifestLimits::DEFAULT
        };
        check(text, &limits).is_ok()
    }

    /// The smallest depth limit `text` passes.
    fn depth(text: &str) -> usize {
        (0..200)
            .find(|&d| depth_ok(text, d))
            .expect("depth under 200")
    }

    #[test]
    fn flow_nesting_is_counted_and_strings_are_not() {
        assert_eq!(depth("a: [[[1]]]\n"), 4);
        assert_eq!(depth("a: {b: {c: [1]}}\n"), 4);
        assert_eq!(depth("a: '[[[[[[[['\nb: \"{{{{{{\\\"{{{{\"\n"), 1);
        assert_eq!(depth("a: x[[[[[[[[[[\n"), 1);
        assert_eq!(depth("a: [1, # [[[[[[\n  [2]]\n"), 3);
        assert_eq!(depth(r#"{"a":{"b":["[[[[[[[[["]}}"#), 4);
    }

    #[test]
    fn block_nesting_is_counted() {
        assert_eq!(depth("a:\n  b:\n    c: 1\n"), 3);
        assert_eq!(depth("- - - - x\n"), 5);
        // A sequence at its key's column is that key's value.
        assert_eq!(depth("a:\n- b:\n  - c: 1\n"), 5);
        assert_eq!(depth("a:\n  b: 1\nc:\n  d: 1\n"), 2);
        // Block scalars are text.
        assert_eq!(depth("a: |\n  [[[[[[[[\n      - - - - -\nb: 1\n"), 1);
    }

    #[test]
    fn deep_input_is_rejected_with_document_and_line() {
        let text = format!("a: 1\n---\nb: {}\n", "[".repeat(100_000));
        let v = check(&text, &ManifestLimits::DEFAULT).expect_err("too deep");
        assert_eq!((v.document, v.line), (1, 3));
        assert!(v.message.contains("limit of 64"), "{}", v.message);
        let block: String = (0..100).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        assert!(check(&block, &ManifestLimits::DEFAULT).is_err());
        let dashes = "- ".repeat(100_000);
        assert!(check(&dashes, &ManifestLimits::DEFAULT).is_err());
    }

    #[test]
    fn documents_are_counted_as_the_parser_does() {
        let limits = ManifestLimits {
            max_document_bytes: 10,
            ..ManifestLimits::DEFAULT
        };
        let v = check("---\na: 1\n---\n---\nb: 123456789\n", &limits).expect_err("big");
        assert_eq!(v.document, 2);
        assert!(check("a: 1\n---\nb: 2\n", &limits).is_ok());
        let v = check("a: 1\n...\nb: 123456789\n", &limits).expect_err("big");
        assert_eq!(v.document, 1);
        let small = ManifestLimits {
            max_text_bytes: 4,
            ..ManifestLimits::DEFAULT
        };
        assert!(check("a: 12", &small).is_err());
    }

    #[test]
    fn real_manifests_pass() {
        let text = crate::waypoint_gateway_yaml!("shop");
        assert!(check(text, &ManifestLimits::DEFAULT).is_ok());
        assert!(depth(text) < 10);
    }
}
