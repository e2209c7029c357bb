//! Borrowed byte views over (pointer, length) pairs Envoy hands us: the one place that turns
//! them into slices, plus the text conversions of header bytes.

use std::borrow::Cow;
use std::ffi::c_char;

use super::types::{EnvoyBuffer, HttpHeader};

/// The `len` bytes at `ptr`, without copying; empty for a null pointer or a zero length.
///
/// # Safety
/// Unless `ptr` is null or `len` is 0, `ptr` must point at `len` initialized bytes that stay
/// valid and unchanged for `'a` (for Envoy's memory: until the current hook returns or the
/// memory's owner, e.g. the header map, changes).
pub unsafe fn borrowed<'a>(ptr: *const c_char, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: non-null and non-empty here; validity for `'a` is the caller's promise.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
}

impl EnvoyBuffer {
    /// The buffer's bytes, without copying.
    ///
    /// # Safety
    /// As for [`borrowed`]: Envoy wrote or passed this pair for memory valid for `'a`.
    pub unsafe fn bytes<'a>(&self) -> &'a [u8] {
        // SAFETY: forwarded to the caller.
        unsafe { borrowed(self.ptr, self.length) }
    }

    /// The buffer's text, copied out (invalid UTF-8 becomes U+FFFD).
    ///
    /// # Safety
    /// As for [`borrowed`], for the duration of this call.
    pub unsafe fn to_text(&self) -> String {
        // SAFETY: forwarded to the caller; the bytes are copied before returning.
        text(unsafe { self.bytes() }).into_owned()
    }
}

impl HttpHeader {
    /// The header's name and value bytes, without copying.
    ///
    /// # Safety
    /// As for [`borrowed`], for both (pointer, length) pairs.
    pub unsafe fn bytes<'a>(&self) -> (&'a [u8], &'a [u8]) {
        // SAFETY: forwarded to the caller.
        unsafe {
            (
                borrowed(self.key_ptr, self.key_length),
                borrowed(self.value_ptr, self.value_length),
            )
        }
    }
}

/// Header bytes as text: ASCII (nearly every header) is checked a word at a time and taken as
/// is; anything else goes through UTF-8 validation. `None` for invalid UTF-8.
pub fn as_str(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b).ok()
    }
}

/// Header bytes as text, invalid UTF-8 bytes becoming U+FFFD (borrowed unless there are any).
pub fn text(b: &[u8]) -> Cow<'_, str> {
    match as_str(b) {
        Some(s) => Cow::Borrowed(s),
        None => String::from_utf8_lossy(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_or_empty_pairs_are_empty_views() {
        let data = b"abc";
        // SAFETY: null pointers and zero lengths are never read.
        unsafe {
            assert_eq!(borrowed(std::ptr::null(), 5), b"");
            assert_eq!(borrowed(data.as_ptr().cast(), 0), b"");
            assert_eq!(EnvoyBuffer::EMPTY.bytes(), b"");
        }
    }

    #[test]
    fn views_borrow_the_bytes_they_point_at() {
        let key = "x-waypoint";
        let value = "café";
        let h = HttpHeader::of(key, value);
        let buf = EnvoyBuffer {
            ptr: value.as_ptr().cast(),
            length: value.len(),
        };
        // SAFETY: both pairs point into `key` and `value`, alive and unchanged here.
        let ((k, v), b, t) = unsafe { (h.bytes(), buf.bytes(), buf.to_text()) };
        assert_eq!(k, key.as_bytes());
        assert_eq!(v, value.as_bytes());
        assert_eq!(b.as_ptr(), value.as_ptr(), "a view, not a copy");
        assert_eq!(t, "café");
    }

    #[test]
    fn text_is_borrowed_when_valid_and_replaced_when_not() {
        assert!(matches!(text(b"ascii"), Cow::Borrowed("ascii")));
        assert!(matches!(text("é".as_bytes()), Cow::Borrowed("é")));
        assert_eq!(text(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(as_str(b"a\xffb"), None);
        assert_eq!(as_str("ü".as_bytes()), Some("ü"));
    }
}
