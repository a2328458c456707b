//! Appending after a run that was stopped mid-write (kill -9, a full
//! disk): the bytes after the last newline may be a torn line.
//!
//! A torn line was never acknowledged (its offset or checkpoint was not
//! committed, as acks fire only after a write completes), so a resumed
//! run reads its record again. Only a last line that is provably not a
//! whole record is cut (with a warning that shows it); one that may be
//! whole is kept and ended with a newline, since the file may have been
//! written by someone else, and cutting it would lose a record:
//! - JSON lines: a line that parses as JSON is whole; any other is cut.
//! - CSV: a line that parses as one row with the header's number of cells
//!   is kept (a row cut right after a delimiter cannot be told from a
//!   whole one, so it stays, and its record follows again, whole); one
//!   with another number of cells, or inside an unclosed quote, is cut.
//!
//! Only the end of the file is read (at most [`MAX_TAIL`] bytes back), so
//! appending to a huge file starts at once.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How much of the file's end is read at a time, looking for its last newline.
const SCAN: u64 = 64 * 1024;

/// A last line longer than this is not judged: it is kept, ended, and
/// warned about (streamer's own records are far shorter).
const MAX_TAIL: u64 = 64 * 1024 * 1024;

/// Mends the last line of `file` (opened for appending; `path` is read to
/// look at it) as the module's doc says. `csv`: the file is CSV.
/// Returns the file's length afterwards.
pub(super) fn mend_last_line(file: &File, path: &Path, csv: bool) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let reader = File::open(path)?;
    let line_start = match last_newline(&reader, len)? {
        Some(newline) => newline + 1,
        None if len <= MAX_TAIL => 0,
        None => {
            (&*file).write_all(b"\n")?;
            tracing::warn!(
                "{}: its last line has no line end and is over {} MiB: kept as it is, and ended",
                path.display(),
                MAX_TAIL >> 20
            );
            return Ok(len + 1);
        }
    };
    if line_start == len {
        return Ok(len);
    }
    let mut tail = vec![0u8; (len - line_start) as usize];
    reader.read_exact_at(&mut tail, line_start)?;
    let whole = match csv {
        true => is_whole_row(&tail, header_cells(&reader, len)?),
        false => serde_json::from_slice::<serde::de::IgnoredAny>(&tail).is_ok(),
    };
    if whole {
        (&*file).write_all(b"\n")?;
        return Ok(len + 1);
    }
    file.set_len(line_start)?;
    let shown = String::from_utf8_lossy(&tail[..tail.len().min(120)]).into_owned();
    tracing::warn!(
        "{}: removed its last {} bytes, a line cut short (a run stopped while writing it; \
         its record was never acknowledged, so a resumed run writes it again): {shown:?}{}",
        path.display(),
        tail.len(),
        if tail.len() > 120 { "..." } else { "" }
    );
    Ok(line_start)
}

/// The offset of the last `\n` in the first `len` bytes of `file`, looked
/// for at most [`MAX_TAIL`] bytes back from there.
fn last_newline(file: &File, len: u64) -> std::io::Result<Option<u64>> {
    let floor = len.saturating_sub(MAX_TAIL);
    let mut end = len;
    let mut buf = vec![0u8; SCAN as usize];
    while end > floor {
        let start = end.saturating_sub(SCAN).max(floor);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(at) = memchr::memrchr(b'\n', chunk) {
            return Ok(Some(start + at as u64));
        }
        end = start;
    }
    Ok(None)
}

/// How many cells the first row of CSV `file` (`len` bytes) has.
fn header_cells(file: &File, len: u64) -> std::io::Result<usize> {
    let mut head = vec![0u8; len.min(SCAN) as usize];
    file.read_exact_at(&mut head, 0)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(head.as_slice());
    let mut record = csv::ByteRecord::new();
    Ok(match reader.read_byte_record(&mut record) {
        Ok(true) => record.len(),
        _ => 0,
    })
}

/// Whether `tail` (a line without its end) is one whole CSV row of
/// `cells` cells: not inside an unclosed quote, not another count.
fn is_whole_row(tail: &[u8], cells: usize) -> bool {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(tail);
    let mut record = csv::ByteRecord::new();
    let closed = memchr::memchr_iter(b'"', tail).count().is_multiple_of(2);
    closed
        && matches!(reader.read_byte_record(&mut record), Ok(true))
        && record.len() == cells
        && matches!(reader.read_byte_record(&mut record), Ok(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn mended(contents: &[u8], csv: bool) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, contents).unwrap();
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        let len = mend_last_line(&file, &path, csv).unwrap();
        let after = std::fs::read(&path).unwrap();
        assert_eq!(len, after.len() as u64);
        after
    }

    #[test]
    fn only_a_tail_that_cannot_be_whole_is_cut() {
        // CSV: another number of cells, or an open quote, is torn.
        assert_eq!(mended(b"a,b\n1,2\n3", true), b"a,b\n1,2\n");
        assert_eq!(mended(b"a,b\n1,2\n\"x,", true), b"a,b\n1,2\n");
        assert_eq!(mended(b"a,b\n1,2\n", true), b"a,b\n1,2\n");
        // A row that may be whole is kept: someone else's file loses nothing.
        assert_eq!(mended(b"a,b\n5,6", true), b"a,b\n5,6\n");
        assert_eq!(mended(b"a,b", true), b"a,b\n");
        // A stray quote earlier in the file changes nothing at its end.
        assert_eq!(
            mended(b"a,b\n5,6\"inch\n1,x\n", true),
            b"a,b\n5,6\"inch\n1,x\n"
        );
        // JSON lines: any whole JSON value is kept.
        assert_eq!(mended(b"{\"n\":1}\n{\"n\":", false), b"{\"n\":1}\n");
        assert_eq!(
            mended(b"{\"n\":1}\n{\"n\":2}", false),
            b"{\"n\":1}\n{\"n\":2}\n"
        );
        assert_eq!(mended(b"[1,2]", false), b"[1,2]\n");
        assert_eq!(mended(b"{\"n\":1}\n7", false), b"{\"n\":1}\n7\n");
        assert_eq!(mended(b"{\"n\":1}\n{\"a", false), b"{\"n\":1}\n");
        let long = [b"x\n".as_slice(), &vec![b'y'; 200_000]].concat();
        assert_eq!(mended(&long, false), b"x\n");
    }
}
