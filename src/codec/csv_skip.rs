//! Reads over a CSV record without keeping it: where it ends, and whether
//! the input stopped inside one of its quoted cells. For records rejected
//! as too long (and for telling an unclosed quote at the end of the input),
//! so it follows csv-core's rules exactly (quotes open only at the start
//! of a cell, `""` inside quotes, `\r`, `\n` or `\r\n` end a record) but
//! keeps no cells. csv-core itself cannot say whether it is inside a quote.

/// Where in a record the skipper is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    StartField,
    InField,
    InQuoted,
    /// A quote inside a quoted cell: the cell's end, or half of `""`.
    QuoteInQuoted,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub(super) struct RecordSkipper {
    delimiter: u8,
    state: State,
    /// The line of the next byte.
    line: u64,
    /// The last byte fed.
    last: u8,
    /// The last byte fed was a `\r` (a line end already counted).
    after_cr: bool,
}

/// The line ends in `bytes`, counted as csv-core ends records: `\n`,
/// `\r\n` and a lone `\r` are one each (old Mac files end lines with `\r`
/// only). `after_cr` says the byte before `bytes` was a `\r`, and is
/// updated for the next call, so a `\r\n` cut between two is one.
pub(super) fn count_line_ends(bytes: &[u8], after_cr: &mut bool) -> u64 {
    let mut count = 0;
    for at in memchr::memchr2_iter(b'\n', b'\r', bytes) {
        let after_cr = match at {
            0 => *after_cr,
            _ => bytes[at - 1] == b'\r',
        };
        count += u64::from(bytes[at] == b'\r' || !after_cr);
    }
    if let Some(&last) = bytes.last() {
        *after_cr = last == b'\r';
    }
    count
}

impl RecordSkipper {
    /// A skipper at the start of a record on `line`.
    pub(super) fn new(delimiter: u8, line: u64) -> Self {
        RecordSkipper {
            delimiter,
            state: State::StartField,
            line,
            last: 0,
            after_cr: false,
        }
    }

    /// Feeds more of the record: `Some(n)` once it ended, the first `n`
    /// bytes of `bytes` being its rest (its line break included).
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut pos = 0;
        let ended = loop {
            // Jump over the bytes that cannot change the state.
            let skip = match self.state {
                State::InQuoted => memchr::memchr(b'"', &bytes[pos..]),
                State::InField => memchr::memchr3(self.delimiter, b'\n', b'\r', &bytes[pos..]),
                State::StartField | State::QuoteInQuoted => Some(0),
            };
            let Some(skip) = skip else {
                break None;
            };
            pos += skip;
            let Some(&byte) = bytes.get(pos) else {
                break None;
            };
            pos += 1;
            if self.step(byte) {
                break Some(pos);
            }
        };
        let fed = &bytes[..ended.unwrap_or(bytes.len())];
        self.line += count_line_ends(fed, &mut self.after_cr);
        if let Some(&last) = fed.last() {
            self.last = last;
        }
        ended
    }

    /// One byte that matters; true if it ends the record.
    fn step(&mut self, byte: u8) -> bool {
        let term = byte == b'\n' || byte == b'\r';
        self.state = match self.state {
            State::StartField if byte == b'"' => State::InQuoted,
            State::InQuoted if byte == b'"' => State::QuoteInQuoted,
            State::InQuoted => State::InQuoted,
            State::QuoteInQuoted if byte == b'"' => State::InQuoted,
            _ if byte == self.delimiter => State::StartField,
            _ if term => return true,
            _ => State::InField,
        };
        false
    }

    /// Whether the bytes fed so far end inside a quoted cell.
    pub(super) fn in_quote(&self) -> bool {
        self.state == State::InQuoted
    }

    /// The line of the next byte.
    pub(super) fn line(&self) -> u64 {
        self.line
    }

    /// The last line holding any of the bytes fed.
    pub(super) fn last_line(&self) -> u64 {
        self.line - u64::from(self.last == b'\n' || self.last == b'\r')
    }

    /// Whether the last byte fed was a `\r` (so a `\n` next is part of
    /// the same line end).
    pub(super) fn after_cr(&self) -> bool {
        self.after_cr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csv_core::{ReadRecordResult, Reader};

    /// csv-core's verdict on `input` as one record: the bytes it takes,
    /// and whether its end (if the input ends first) is inside a quote.
    fn by_csv_core(input: &[u8]) -> (Option<usize>, bool) {
        let mut reader = Reader::new();
        let (mut out, mut ends) = (vec![0; 1024], vec![0; 256]);
        // A byte that is not a BOM first, as the record reader does.
        let (result, read, ..) = reader.read_record(input, &mut out, &mut ends);
        match result {
            ReadRecordResult::Record => (Some(read), false),
            ReadRecordResult::InputEmpty => {
                // A line break now ends the record unless inside a quote.
                let (result, ..) = reader.read_record(b"\n", &mut out, &mut ends);
                (None, result == ReadRecordResult::InputEmpty)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ends_records_and_sees_quotes_as_csv_core_does() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        let alphabet: [&[u8]; 6] = [b"a", b",", b"\"", b"\n", b"\r", b"\"\""];
        for _ in 0..20_000 {
            let mut input = b"x".to_vec();
            for _ in 0..next(12) {
                input.extend_from_slice(alphabet[next(alphabet.len())]);
            }
            if next(2) == 0 {
                input[0] = b'"';
            }
            let (ends, quoted) = by_csv_core(&input);
            let mut skipper = RecordSkipper::new(b',', 1);
            // Fed in two pieces: state carries over.
            let cut = next(input.len() + 1);
            let got = match skipper.feed(&input[..cut]) {
                Some(end) => Some(end),
                None => skipper.feed(&input[cut..]).map(|end| cut + end),
            };
            let context = String::from_utf8_lossy(&input);
            assert_eq!(got, ends, "{context:?}");
            if ends.is_none() {
                assert_eq!(skipper.in_quote(), quoted, "{context:?}");
                // `\r`, `\r\n` and `\n` each end one line.
                let lines = (0..input.len())
                    .filter(|&at| match input[at] {
                        b'\r' => true,
                        b'\n' => at == 0 || input[at - 1] != b'\r',
                        _ => false,
                    })
                    .count() as u64;
                assert_eq!(skipper.line(), 1 + lines, "{context:?}");
            }
        }
    }
}
