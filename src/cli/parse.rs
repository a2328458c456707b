//! Value parsers of the flags that clap cannot parse alone: a CSV
//! delimiter, a byte count (`64K`), a duration (`30s`); and a byte count
//! written back as the help shows it, for defaults stated as numbers.

use std::time::Duration;

use crate::record::MAX_RECORD_BYTES_LIMIT;

/// Parses `--delimiter`: one ASCII character, or `tab`.
pub(super) fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        // `\r` ends a CSV row, as `\n` does.
        _ if text.len() == 1 && text.is_ascii() && !matches!(text, "\"" | "\n" | "\r") => {
            Ok(text.as_bytes()[0])
        }
        _ => Err(
            "must be one ASCII character other than a quote, `\\r` or newline (or `tab`)".into(),
        ),
    }
}

/// Splits `64K` into its digits and its unit (`"64"`, `"K"`).
fn split_number(text: &str) -> (&str, &str) {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    trimmed.split_at(digits_end)
}

/// The units of a byte count, largest first.
const BYTE_UNITS: [(&str, usize); 3] = [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)];

/// Parses `--max-record-bytes`: a byte count up to
/// [`MAX_RECORD_BYTES_LIMIT`] (1 GiB), so a record always fits a batch.
pub fn parse_max_record_bytes(text: &str) -> Result<usize, String> {
    let bytes = parse_bytes(text)?;
    if bytes > MAX_RECORD_BYTES_LIMIT {
        return Err(format!(
            "`{text}` is more than the most a record may be, {}G",
            MAX_RECORD_BYTES_LIMIT >> 30
        ));
    }
    Ok(bytes)
}

/// Parses a byte count: `1048576`, `64K`, `16M`, `1G` (powers of 1024; an
/// optional `iB`/`B` after the letter).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let (digits, unit) = split_number(text);
    let number: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a byte count (like 65536, 64K, 16M)"))?;
    let multiplier: usize = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("`{text}` has an unknown unit (use K, M or G)")),
    };
    match number.checked_mul(multiplier) {
        Some(0) => Err("must be at least 1".into()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("`{text}` is too large")),
    }
}

/// `bytes` in the largest unit that divides it (`16M`), as [`parse_bytes`]
/// reads it back: a library default shown by `--help`.
pub(super) fn bytes_text(bytes: usize) -> String {
    BYTE_UNITS
        .iter()
        .find(|(_, size)| bytes > 0 && bytes.is_multiple_of(*size))
        .map_or_else(
            || bytes.to_string(),
            |(unit, size)| format!("{}{unit}", bytes / size),
        )
}

/// Parses a duration: `500ms`, `30s`, `5m`, `1h`; a bare number is seconds.
/// A stats interval: 0 (off) or at least a second, so the log is not
/// flooded.
pub fn parse_stats_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if !interval.is_zero() && interval < Duration::from_secs(1) {
        return Err(format!("`{text}` is under a second (use 0 to turn it off)"));
    }
    Ok(interval)
}

/// `--transaction-interval`: at most [`MAX_TRANSACTION_INTERVAL`], which
/// keeps the transaction's deadline (now + interval) representable and
/// its derived timeout under the broker's `transaction.max.timeout.ms`.
pub fn parse_transaction_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if interval > MAX_TRANSACTION_INTERVAL {
        return Err(format!(
            "`{text}` is over 5m: a transaction open that long holds every read_committed \
             reader of the output, and its timeout would pass the broker's \
             transaction.max.timeout.ms (15 min by default)"
        ));
    }
    Ok(interval)
}

/// The longest `--transaction-interval`.
pub const MAX_TRANSACTION_INTERVAL: Duration = Duration::from_secs(300);

/// A non-empty name (an empty `group.instance.id` would be no static
/// membership at all).
pub fn parse_name(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(text.to_string())
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = split_number(text);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (like 500ms, 30s, 5m)"))?;
    let seconds_per = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => return Err(format!("`{text}` has an unknown unit (use ms, s, m or h)")),
    };
    number
        .checked_mul(seconds_per)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_intervals_and_names() {
        assert_eq!(parse_stats_interval("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_stats_interval("2s").unwrap(), Duration::from_secs(2));
        assert!(parse_stats_interval("1ms").is_err());
        assert!(parse_name("").is_err());
        assert!(parse_name("  ").is_err());
        assert_eq!(parse_name("node-1").unwrap(), "node-1");
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn byte_texts_read_back_as_their_count() {
        assert_eq!(bytes_text(16 << 20), "16M");
        assert_eq!(bytes_text(1 << 30), "1G");
        assert_eq!(bytes_text(1536), "1536");
        assert_eq!(bytes_text(100), "100");
        for bytes in [1, 100, 1024, 1536, 16 << 20, 3 << 30] {
            assert_eq!(parse_bytes(&bytes_text(bytes)), Ok(bytes));
        }
    }

    #[test]
    fn max_record_bytes_has_an_upper_bound() {
        assert_eq!(parse_max_record_bytes("1G"), Ok(MAX_RECORD_BYTES_LIMIT));
        let error = parse_max_record_bytes("1025M").unwrap_err();
        assert!(error.contains("most a record may be, 1G"), "{error}");
    }
}
