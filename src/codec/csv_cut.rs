//! Where a CSV stream may be cut into pieces that hold whole records, so
//! that each piece can be parsed on its own (by csv-async, on a worker).
//!
//! A cut goes after a `\n` outside quotes, found by quote parity: every
//! `"` flips it, so a doubled quote `""` inside a quoted cell leaves it as
//! it was. Parity can be wrong where csv-async's rules are not parity's (a
//! quote inside an unquoted cell, `ab"c`, is a plain byte to csv-async): a
//! cut may then fall inside a quoted cell. The parser of a piece checks
//! that (its last record must end inside the piece, see
//! [`super::csv_piece`]), and a piece that fails the check is read again
//! with the stream that follows it, by the sequential reader.

/// One cut: the first `len` bytes of the scanned buffer end with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Bytes before the cut (the last is a `\n`).
    pub len: usize,
    /// How many lines those bytes end: each `\n`, each `\r` not followed
    /// by a `\n`.
    pub lines: u64,
}

/// Finds cuts in a buffer that grows at its end and is taken from at its
/// front; see the module documentation.
#[derive(Debug, Default)]
pub struct Cutter {
    /// Parity says the scanned bytes end inside a quoted cell.
    in_quote: bool,
    /// Bytes of the buffer already scanned (their quotes counted).
    scanned: usize,
}

impl Cutter {
    /// Scans what `buf` holds past the bytes already scanned (the buffer
    /// as it was last time, with more at its end) and takes the last cut
    /// in it: the caller then removes `cut.len` bytes from the front of
    /// `buf`. `None` while no `\n` outside quotes was found.
    ///
    /// Quotes are rare next to line ends: they are what is counted as the
    /// bytes come; the cut is then found from the end, the parity there
    /// undone over the few quotes after each line end tried.
    pub fn cut(&mut self, buf: &[u8]) -> Option<Cut> {
        self.in_quote ^= odd_quotes(&buf[self.scanned..]);
        self.scanned = buf.len();
        let mut in_quote = self.in_quote;
        let mut end = buf.len();
        let len = loop {
            let newline = memchr::memrchr(b'\n', &buf[..end])?;
            in_quote ^= odd_quotes(&buf[newline + 1..end]);
            if !in_quote {
                break newline + 1;
            }
            end = newline;
        };
        self.scanned -= len;
        let piece = &buf[..len];
        // memchr counts with wide compares, not stopping at each one.
        let newlines = memchr::memchr_iter(b'\n', piece).count() as u64;
        Some(Cut {
            len,
            lines: newlines + lone_crs(piece),
        })
    }
}

/// Whether `bytes` hold an odd number of quotes.
fn odd_quotes(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'"', bytes).count() % 2 == 1
}

/// How many `\r`s of `bytes` are not followed by a `\n` (each ends a line
/// of its own). `bytes` ends with a `\n`, so no `\r` is its last byte.
fn lone_crs(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\r', bytes)
        .filter(|&at| bytes.get(at + 1) != Some(&b'\n'))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes, cutting as it goes: the
    /// pieces cut, and what is left.
    fn cut_all(input: &[u8], step: usize) -> (Vec<(String, u64)>, String) {
        let mut cutter = Cutter::default();
        let mut buf = Vec::new();
        let mut pieces = Vec::new();
        for chunk in input.chunks(step) {
            buf.extend_from_slice(chunk);
            if let Some(cut) = cutter.cut(&buf) {
                let piece: Vec<u8> = buf.drain(..cut.len).collect();
                pieces.push((String::from_utf8(piece).unwrap(), cut.lines));
            }
        }
        (pieces, String::from_utf8(buf).unwrap())
    }

    #[test]
    fn cuts_after_the_last_newline_outside_quotes() {
        let (pieces, rest) = cut_all(b"a,b\nc,\"d\ne\"\nf", 100);
        assert_eq!(pieces, [("a,b\nc,\"d\ne\"\n".to_string(), 3)]);
        assert_eq!(rest, "f");
    }

    #[test]
    fn a_quoted_newline_split_over_reads_is_never_cut() {
        let input = b"1,\"x\ny\"\n2,\"\"\"\n\"\"\"\n3,\"a\"\"\nb\"\n4\n";
        for step in 1..input.len() {
            let (pieces, rest) = cut_all(input, step);
            let joined: String = pieces.iter().map(|(piece, _)| piece.as_str()).collect();
            assert_eq!(joined, String::from_utf8_lossy(input), "step {step}");
            assert_eq!(rest, "", "step {step}");
            for (piece, _) in &pieces {
                assert!(
                    [
                        "1,\"x\ny\"\n",
                        "2,\"\"\"\n\"\"\"\n",
                        "3,\"a\"\"\nb\"\n",
                        "4\n"
                    ]
                    .iter()
                    .any(|record| piece.ends_with(record)),
                    "step {step}: {piece:?}"
                );
            }
            let lines: u64 = pieces.iter().map(|(_, lines)| lines).sum();
            assert_eq!(lines, 7, "step {step}");
        }
    }

    #[test]
    fn lines_count_lone_carriage_returns_and_crlf_once() {
        let (pieces, rest) = cut_all(b"a\r\nb\rc\n\nd", 100);
        assert_eq!(pieces, [("a\r\nb\rc\n\n".to_string(), 4)]);
        assert_eq!(rest, "d");
    }

    #[test]
    fn an_unclosed_quote_stops_every_cut_after_it() {
        let (pieces, rest) = cut_all(b"a\n\"b\nc\nd\n", 3);
        assert_eq!(pieces, [("a\n".to_string(), 1)]);
        assert_eq!(rest, "\"b\nc\nd\n");
    }
}
