//! Hand-written JSON encoding for the hot path: strings are escaped straight
//! into a reused output buffer, with no intermediate `Value` or `String`.

use crate::scan;

/// What each byte turns into inside a JSON string: 0 = itself, `u` = `\u00XX`,
/// anything else = a two-character escape `\X`.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `value` (which must be valid UTF-8) as a quoted JSON string.
pub fn write_str(out: &mut Vec<u8>, value: &[u8]) {
    out.reserve(value.len() + 2);
    out.push(b'"');
    write_escaped(out, value);
    out.push(b'"');
}

/// Appends `bytes`; for the short cells, keys and lines of the hot path
/// this is a few unaligned loads and stores instead of a call to `memcpy`,
/// which costs more than the copy itself at these sizes (a fifth of all
/// instructions, measured with callgrind, when every CSV cell went through
/// `memcpy`).
#[inline(always)]
pub fn extend_small(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len > 64 {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(len);
    let at = out.len();
    let src = bytes.as_ptr();
    // SAFETY: every read lies in `bytes` (the loads of a size class start
    // at its front and end at its back, overlapping in between), every
    // write lies in `out[at..at + len]`, which `reserve` made room for;
    // `set_len` then covers only bytes just written.
    unsafe {
        let dst = out.as_mut_ptr().add(at);
        if len >= 32 {
            // The first 32 bytes, then the last 32.
            copy_ends::<u128>(src, dst, 32);
            copy_ends::<u128>(src.add(len - 32), dst.add(len - 32), 32);
        } else if len >= 16 {
            copy_ends::<u128>(src, dst, len);
        } else if len >= 8 {
            copy_ends::<u64>(src, dst, len);
        } else if len >= 4 {
            copy_ends::<u32>(src, dst, len);
        } else if len > 0 {
            *dst = *src;
            *dst.add(len / 2) = *src.add(len / 2);
            *dst.add(len - 1) = *src.add(len - 1);
        }
        out.set_len(at + len);
    }
}

/// Copies `len` bytes (`size_of::<T>() <= len <= 2 * size_of::<T>()`)
/// as two possibly overlapping `T`s: one at the front, one at the back.
///
/// # Safety
/// `src` must be readable and `dst` writable for `len` bytes.
#[inline(always)]
unsafe fn copy_ends<T: Copy>(src: *const u8, dst: *mut u8, len: usize) {
    let size = std::mem::size_of::<T>();
    debug_assert!(size <= len && len <= 2 * size);
    let head = std::ptr::read_unaligned(src.cast::<T>());
    let tail = std::ptr::read_unaligned(src.add(len - size).cast::<T>());
    std::ptr::write_unaligned(dst.cast::<T>(), head);
    std::ptr::write_unaligned(dst.add(len - size).cast::<T>(), tail);
}

/// Appends the escaped body of a JSON string, without the quotes.
pub fn write_escaped(out: &mut Vec<u8>, value: &[u8]) {
    let mut rest = value;
    // Most text needs no escape at all: find the next byte that does, copy
    // everything before it in one go.
    while let Some(at) = scan::find_json_escape(rest) {
        out.extend_from_slice(&rest[..at]);
        let byte = rest[at];
        let escape = ESCAPE[byte as usize];
        if escape == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(byte >> 4) as usize]);
            out.push(HEX[(byte & 0xf) as usize]);
        } else {
            out.push(b'\\');
            out.push(escape);
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

/// Appends `text` as a JSON string, replacing invalid UTF-8 with U+FFFD.
pub fn write_lossy_str(out: &mut Vec<u8>, text: &[u8]) {
    write_str(out, String::from_utf8_lossy(text).as_bytes());
}

/// Appends a decimal integer.
pub fn write_int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, value.as_bytes());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn small_copies_append_exactly_their_bytes() {
        let source: Vec<u8> = (1..=80).collect();
        for len in 0..=77 {
            for start in [0, 3] {
                let bytes = &source[start..start + len];
                // Exactly full, so the copy must grow it first.
                let mut out = Vec::with_capacity(2);
                out.extend_from_slice(b"ab");
                extend_small(&mut out, bytes);
                assert_eq!(&out[..2], b"ab");
                assert_eq!(&out[2..], bytes, "{len} bytes from {start}");
            }
        }
    }

    #[test]
    fn escapes_match_serde_json() {
        for value in [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "tab\tnewline\ncr\r",
            "\u{0}\u{1}\u{1f}\u{7f}",
            "\u{8}\u{c}",
            "unicode é 漢字 🎉",
        ] {
            assert_eq!(encoded(value), serde_json::to_string(value).unwrap());
        }
    }
}
