//! Plain lines: each becomes `{"message": "<line>"}`.

use super::{require_utf8, Rejection};
use crate::json;

/// Writes `line` (a trailing `\r` dropped) as `{"message":"..."}`.
pub(super) fn encode(line: &[u8], out: &mut Vec<u8>) -> Result<(), Rejection> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    require_utf8(line, || "line".to_string())?;
    out.extend_from_slice(b"{\"message\":");
    json::write_str(out, line);
    out.push(b'}');
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
