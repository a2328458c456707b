//! Appending after a run that was stopped mid-write (kill -9, a full
//! disk): the bytes after the last newline are a torn line.
//!
//! A torn line was never acknowledged (its offset or checkpoint was not
//! committed, as acks fire only after a write completes), so a resumed
//! run reads its record again. It is cut, with a warning, rather than
//! ended with a newline: a torn CSV row `3,` would otherwise become a
//! valid-looking row, and a torn JSON line a line no reader can parse.
//! One exception: a JSON line that is a whole object (only its newline
//! missing) is kept, and ended. In CSV the torn part starts after the last
//! newline outside quotes (a quoted cell may hold newlines).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How much of the file's end is read at a time, looking for its last newline.
const SCAN: u64 = 64 * 1024;

/// A last line longer than this is not read to see whether it is a whole
/// object: streamer ends each line in the same write, so it is torn.
const MAX_WHOLE: u64 = 64 * 1024 * 1024;

/// Mends the last line of `file` (opened for appending; `path` is read to
/// look at it) as the module's doc says. `csv`: the file is CSV, where a
/// torn row cannot be told from a whole one, so a tail is always cut.
/// Returns the file's length afterwards.
pub(super) fn mend_last_line(file: &File, path: &Path, csv: bool) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let reader = File::open(path)?;
    let last_end = match csv {
        true => last_row_end(&reader, len)?,
        false => last_newline(&reader, len)?,
    };
    let line_start = match last_end {
        Some(newline) => newline + 1,
        None => 0,
    };
    if line_start == len {
        return Ok(len);
    }
    if !csv && len - line_start <= MAX_WHOLE && is_whole_object(&reader, line_start, len)? {
        (&*file).write_all(b"\n")?;
        return Ok(len + 1);
    }
    file.set_len(line_start)?;
    tracing::warn!(
        "{}: removed its last {} bytes, a line cut short (a run stopped while writing it): \
         its record was never acknowledged, so a resumed run reads it again",
        path.display(),
        len - line_start
    );
    Ok(line_start)
}

/// The offset of the last `\n` in the first `len` bytes of `file`.
fn last_newline(file: &File, len: u64) -> std::io::Result<Option<u64>> {
    let mut end = len;
    let mut buf = vec![0u8; SCAN as usize];
    while end > 0 {
        let start = end.saturating_sub(SCAN);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(at) = memchr::memrchr(b'\n', chunk) {
            return Ok(Some(start + at as u64));
        }
        end = start;
    }
    Ok(None)
}

/// The offset of the last `\n` of the first `len` bytes of CSV `file`
/// that ends a row: one outside quotes (a quoted cell may hold newlines).
/// Whether a newline is inside quotes depends on every quote before it,
/// so this reads the whole file (once, at the start of an `--append` run).
fn last_row_end(file: &File, len: u64) -> std::io::Result<Option<u64>> {
    let mut buf = vec![0u8; SCAN as usize * 16];
    let mut in_quotes = false;
    let mut last = None;
    let mut offset = 0;
    while offset < len {
        let chunk = &mut buf[..(len - offset).min(SCAN * 16) as usize];
        file.read_exact_at(chunk, offset)?;
        for at in memchr::memchr2_iter(b'"', b'\n', chunk) {
            match chunk[at] {
                b'"' => in_quotes = !in_quotes,
                _ if !in_quotes => last = Some(offset + at as u64),
                _ => {}
            }
        }
        offset += chunk.len() as u64;
    }
    Ok(last)
}

/// Whether bytes `start..end` of `file` are one whole JSON object.
fn is_whole_object(file: &File, start: u64, end: u64) -> std::io::Result<bool> {
    let mut tail = vec![0u8; (end - start) as usize];
    file.read_exact_at(&mut tail, start)?;
    Ok(tail.first() == Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(&tail).is_ok())
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
    fn a_torn_tail_is_cut_and_a_whole_json_object_kept() {
        assert_eq!(mended(b"a,b\n1,2\n3,", true), b"a,b\n1,2\n");
        assert_eq!(mended(b"a,b\n1,2\n", true), b"a,b\n1,2\n");
        assert_eq!(mended(b"a,b", true), b"");
        assert_eq!(
            mended(b"a,b\n\"1\n2\",3\n\"x\ny", true),
            b"a,b\n\"1\n2\",3\n"
        );
        assert_eq!(mended(b"{\"n\":1}\n{\"n\":", false), b"{\"n\":1}\n");
        assert_eq!(
            mended(b"{\"n\":1}\n{\"n\":2}", false),
            b"{\"n\":1}\n{\"n\":2}\n"
        );
        assert_eq!(mended(b"{\"n\":2}", false), b"{\"n\":2}\n");
        assert_eq!(mended(b"{\"n\":1}\n7", false), b"{\"n\":1}\n");
        let long = [b"x\n".as_slice(), &vec![b'y'; 200_000]].concat();
        assert_eq!(mended(&long, false), b"x\n");
    }
}
