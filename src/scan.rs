//! Byte scans of the hot path, 16 bytes a step: the line ends of a run of
//! lines, the delimiters of a plain CSV row; whether a cell goes into JSON
//! as it is; where the first byte a JSON string must escape is (or, for a
//! JSON line, every such byte as bits).
//!
//! Each step turns a 16-byte block into bit masks (bit `i` set when byte
//! `i` is of a class): SSE2 compares on x86_64 (every x86_64 CPU has
//! them), a plain loop elsewhere. The scans are written once over those
//! masks, and the tests check both mask builders against each other.

#[cfg(target_arch = "x86_64")]
mod block {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    pub(super) fn byte_mask(block: &[u8; 16], byte: u8) -> u32 {
        // SAFETY: SSE2 is part of every x86_64 CPU; the load reads the 16
        // bytes of `block` and has no alignment requirement.
        unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8))) as u32
        }
    }

    pub(super) fn json_special_mask(block: &[u8; 16]) -> u32 {
        // SAFETY: as in `byte_mask`.
        unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            let equal = |byte: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8));
            // A signed compare: below 0x20 catches the control bytes and, as
            // negative numbers, every byte from 0x80 up.
            let low_or_high = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
            let quote_or_backslash = _mm_or_si128(equal(b'"'), equal(b'\\'));
            _mm_movemask_epi8(_mm_or_si128(low_or_high, quote_or_backslash)) as u32
        }
    }

    pub(super) fn json_escape_mask(block: &[u8; 16]) -> u32 {
        // SAFETY: as in `byte_mask`.
        unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            let equal = |byte: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8));
            // The signed compare also flags bytes from 0x80 up (their sign
            // bit is set): take those out.
            let low_or_high = _mm_movemask_epi8(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
            let high = _mm_movemask_epi8(v);
            let quote_or_backslash = _mm_movemask_epi8(_mm_or_si128(equal(b'"'), equal(b'\\')));
            ((low_or_high & !high) | quote_or_backslash) as u32
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod block {
    pub(super) use super::portable::{byte_mask, json_escape_mask, json_special_mask};
}

/// The same masks, a byte at a time: the build for other CPUs, and what
/// the tests hold the SSE2 build to.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
mod portable {
    use super::{is_json_escape, is_json_special};

    fn mask_of(block: &[u8; 16], class: impl Fn(u8) -> bool) -> u32 {
        block
            .iter()
            .enumerate()
            .fold(0, |mask, (i, &byte)| mask | (u32::from(class(byte)) << i))
    }

    pub(super) fn byte_mask(block: &[u8; 16], byte: u8) -> u32 {
        mask_of(block, |b| b == byte)
    }

    pub(super) fn json_special_mask(block: &[u8; 16]) -> u32 {
        mask_of(block, is_json_special)
    }

    pub(super) fn json_escape_mask(block: &[u8; 16]) -> u32 {
        mask_of(block, is_json_escape)
    }
}

/// True for a byte that cannot go into a JSON string as it is, or is not
/// ASCII (so the text needs a UTF-8 check).
fn is_json_special(byte: u8) -> bool {
    !(0x20..0x80).contains(&byte) || byte == b'"' || byte == b'\\'
}

/// True for a byte a JSON string must escape.
fn is_json_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Where the first byte a JSON string must escape is in `text`.
pub fn find_json_escape(text: &[u8]) -> Option<usize> {
    if text.len() < 16 {
        return text.iter().position(|&byte| is_json_escape(byte));
    }
    let mut blocks = text.chunks_exact(16);
    let mut base = 0;
    for block in &mut blocks {
        let mask = block::json_escape_mask(block.try_into().expect("16 bytes"));
        if mask != 0 {
            return Some(base + mask.trailing_zeros() as usize);
        }
        base += 16;
    }
    let tail = blocks.remainder().len();
    if tail == 0 {
        return None;
    }
    // The last 16 bytes, shifted so bit 0 is the first byte not seen.
    let last: &[u8; 16] = text[text.len() - 16..].try_into().expect("16 bytes");
    let mask = block::json_escape_mask(last) >> (16 - tail);
    (mask != 0).then(|| base + mask.trailing_zeros() as usize)
}

/// True when `text` is printable ASCII without `"` or `\`: valid UTF-8
/// that goes into a JSON string as it is.
pub fn is_plain_ascii(text: &[u8]) -> bool {
    if text.len() < 16 {
        return !text.iter().any(|&byte| is_json_special(byte));
    }
    let mut blocks = text.chunks_exact(16);
    for block in &mut blocks {
        if block::json_special_mask(block.try_into().expect("16 bytes")) != 0 {
            return false;
        }
    }
    // The last 16 bytes, overlapping bytes already checked: no byte-wise tail.
    let last: &[u8; 16] = text[text.len() - 16..].try_into().expect("16 bytes");
    blocks.remainder().is_empty() || block::json_special_mask(last) == 0
}

/// Pushes the offset of every `\n` in `text` onto `newlines` (cleared
/// first).
pub fn find_newlines(text: &[u8], newlines: &mut Vec<u32>) {
    newlines.clear();
    for_each_byte(text, b'\n', |at| newlines.push(at));
}

/// Calls `found` with the offset of every `byte` in `text`, in order.
#[inline]
pub fn for_each_byte(text: &[u8], byte: u8, mut found: impl FnMut(u32)) {
    let mut blocks = text.chunks_exact(16);
    let mut base = 0u32;
    for block in &mut blocks {
        let mut mask = block::byte_mask(block.try_into().expect("16 bytes"), byte);
        while mask != 0 {
            found(base + mask.trailing_zeros());
            mask &= mask - 1;
        }
        base += 16;
    }
    for (at, &candidate) in blocks.remainder().iter().enumerate() {
        if candidate == byte {
            found(base + at as u32);
        }
    }
}

/// Marks every byte of `text` that a JSON string must escape (or that
/// ends one: `"`, `\`, below 0x20): bit `i % 64` of `bits[i / 64]`
/// (cleared first; bits past the end are clear). One pass over a JSON
/// line, so that finding where each string ends is a bit scan. Returns
/// whether every marked byte is a `"` (no escape, no control byte: each
/// marked byte then ends or starts a string).
pub fn json_escape_bits(text: &[u8], bits: &mut Vec<u64>) -> bool {
    // The word of bits, and whether one of them is not a quote.
    fn word_of(chunk: &[u8; 64]) -> (u64, bool) {
        chunk
            .chunks_exact(16)
            .enumerate()
            .fold((0, false), |(word, other), (i, block)| {
                let block = block.try_into().expect("16 bytes");
                let mask = block::json_escape_mask(block);
                let other = other | (mask & !block::byte_mask(block, b'"') != 0);
                (word | u64::from(mask) << (16 * i), other)
            })
    }
    bits.clear();
    let mut others = false;
    let mut chunks = text.chunks_exact(64);
    for chunk in &mut chunks {
        let (word, other) = word_of(chunk.try_into().expect("64 bytes"));
        bits.push(word);
        others |= other;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Padded with a byte no string escapes.
        let mut last = [b'a'; 64];
        last[..rest.len()].copy_from_slice(rest);
        let (word, other) = word_of(&last);
        bits.push(word);
        others |= other;
    }
    !others
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts() -> Vec<Vec<u8>> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let alphabet = [
            b'a', b'b', b',', b'\t', b'\n', b'"', b'\r', 0, 0x80, 0xff, b'\\',
        ];
        (0..4000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let len = (state % 70) as usize;
                (0..len)
                    .map(|i| {
                        let pick = (state >> (i % 60)) as usize + i * 7;
                        // Mostly letters, so lines run past a block.
                        if pick.is_multiple_of(5) {
                            alphabet[pick / 5 % alphabet.len()]
                        } else {
                            b'a' + (pick % 26) as u8
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn plain_ascii_agrees_with_a_byte_by_byte_check() {
        for text in texts() {
            let want = !text.iter().any(|&byte| is_json_special(byte));
            assert_eq!(is_plain_ascii(&text), want, "{text:?}");
        }
        for byte in 0..=255u8 {
            for at in [0, 15, 16, 33] {
                let mut text = vec![b'a'; 34];
                text[at] = byte;
                assert_eq!(is_plain_ascii(&text), !is_json_special(byte));
            }
        }
    }

    #[test]
    fn find_newlines_finds_every_newline() {
        let mut newlines = Vec::new();
        for text in texts() {
            find_newlines(&text, &mut newlines);
            let want: Vec<u32> = (0..text.len() as u32)
                .filter(|&at| text[at as usize] == b'\n')
                .collect();
            assert_eq!(newlines, want, "{text:?}");
        }
    }

    #[test]
    fn find_json_escape_agrees_with_a_byte_by_byte_search() {
        for text in texts() {
            let want = text.iter().position(|&byte| is_json_escape(byte));
            assert_eq!(find_json_escape(&text), want, "{text:?}");
        }
    }

    #[test]
    fn json_escape_bits_mark_every_byte_to_escape() {
        let mut bits = Vec::new();
        for text in texts().into_iter().chain([vec![b'"'; 64], vec![0; 130]]) {
            let only_quotes = json_escape_bits(&text, &mut bits);
            let want = !text
                .iter()
                .any(|&byte| is_json_escape(byte) && byte != b'"');
            assert_eq!(only_quotes, want, "{text:?}");
            assert_eq!(bits.len(), text.len().div_ceil(64), "{text:?}");
            for at in 0..bits.len() * 64 {
                let marked = bits[at / 64] >> (at % 64) & 1 == 1;
                let want = text.get(at).is_some_and(|&byte| is_json_escape(byte));
                assert_eq!(marked, want, "byte {at} of {text:?}");
            }
        }
    }

    #[test]
    fn the_block_masks_match_the_portable_ones() {
        for text in texts() {
            for block in text.chunks_exact(16) {
                let block: &[u8; 16] = block.try_into().unwrap();
                for byte in [b'\n', b',', 0, 0xff] {
                    assert_eq!(
                        block::byte_mask(block, byte),
                        portable::byte_mask(block, byte)
                    );
                }
                assert_eq!(
                    block::json_special_mask(block),
                    portable::json_special_mask(block)
                );
                assert_eq!(
                    block::json_escape_mask(block),
                    portable::json_escape_mask(block)
                );
            }
        }
    }
}
