//! Plain lines: each becomes `{"message": "<line>"}`.

use super::{require_utf8, Rejection};
use crate::{json, scan};

/// Writes `line` (a trailing `\r` dropped) as `{"message":"..."}`.
pub(super) fn encode(line: &[u8], out: &mut Vec<u8>) -> Result<(), Rejection> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    out.reserve(line.len() + 16);
    out.extend_from_slice(b"{\"message\":\"");
    if scan::is_plain_ascii(line) {
        json::extend_small(out, line);
    } else {
        require_utf8(line, || "line".to_string())?;
        json::write_escaped(out, line);
    }
    out.extend_from_slice(b"\"}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_drops_carriage_return() {
        let mut out = Vec::new();
        encode(b"say \"hi\"\t\r", &mut out).unwrap();
        assert_eq!(out, br#"{"message":"say \"hi\"\t"}"#);
    }
}
