//! Where this run starts reading (`--from TOPIC:PARTITION:OFFSET`,
//! `--from-timestamp TIME`), over the group's committed offsets.
//!
//! They apply to each partition's first assignment in this run only: a
//! partition that comes back after a rebalance resumes from what this run
//! committed, and so does every later run.

use std::collections::HashSet;
use std::sync::Mutex;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::partitions::PartitionOffset;
use super::rebalance::GroupContext;
use crate::kafka::QUERY_TIMEOUT;

/// Where this run starts, when not at the group's committed offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartAt {
    /// `--from`: explicit start offsets, by partition.
    pub offsets: Vec<PartitionOffset>,
    /// `--from-timestamp`: milliseconds since the epoch; each other
    /// partition starts at its first message at or after it (at its end
    /// if there is none).
    pub timestamp: Option<i64>,
}

impl StartAt {
    /// True when the run starts at the committed offsets everywhere.
    pub fn is_committed(&self) -> bool {
        self.offsets.is_empty() && self.timestamp.is_none()
    }
}

/// Places each partition of an assignment at its start, the first time
/// this run is assigned it; remembers which were placed.
#[derive(Debug, Default)]
pub(super) struct Placer {
    start: StartAt,
    placed: Mutex<HashSet<(String, i32)>>,
}

impl Placer {
    pub(super) fn new(start: StartAt) -> Self {
        Placer {
            start,
            placed: Mutex::new(HashSet::new()),
        }
    }

    /// Sets the start offset in `assigned` of every partition assigned for
    /// the first time that `--from` or `--from-timestamp` places. Blocks
    /// (the offsets-for-times query): for the rebalance callback, off the
    /// workers.
    pub(super) fn place(
        &self,
        consumer: &BaseConsumer<GroupContext>,
        assigned: &mut TopicPartitionList,
    ) {
        if self.start.is_committed() {
            return;
        }
        let mut placed = self.placed.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_time = TopicPartitionList::new();
        let keys: Vec<(String, i32)> = assigned
            .elements()
            .iter()
            .map(|element| (element.topic().to_string(), element.partition()))
            .collect();
        for key in keys {
            if placed.contains(&key) {
                continue;
            }
            let explicit = self
                .start
                .offsets
                .iter()
                .find(|o| o.topic == key.0 && o.partition == key.1);
            if let Some(start) = explicit {
                let _ = assigned.set_partition_offset(&key.0, key.1, Offset::Offset(start.offset));
                tracing::info!(
                    "{}/{}: starting at offset {} (--from)",
                    key.0,
                    key.1,
                    start.offset
                );
            } else if let Some(millis) = self.start.timestamp {
                let _ = by_time.add_partition_offset(&key.0, key.1, Offset::Offset(millis));
            } else {
                continue;
            }
            placed.insert(key);
        }
        if by_time.count() == 0 {
            return;
        }
        match consumer.offsets_for_times(by_time.clone(), QUERY_TIMEOUT) {
            Ok(found) => {
                for element in found.elements() {
                    // No message at or after the time: -1, the end.
                    let offset = match element.offset() {
                        Offset::Offset(offset) if offset >= 0 => Offset::Offset(offset),
                        _ => Offset::End,
                    };
                    let (topic, partition) = (element.topic(), element.partition());
                    let _ = assigned.set_partition_offset(topic, partition, offset);
                    match offset {
                        Offset::Offset(offset) => tracing::info!(
                            "{topic}/{partition}: starting at offset {offset} (--from-timestamp)"
                        ),
                        _ => tracing::info!(
                            "{topic}/{partition}: starting at its end \
                             (no message at or after --from-timestamp)"
                        ),
                    }
                }
            }
            Err(error) => {
                // Starting at the committed offset instead would read what
                // the user asked to skip, or skip what they asked to read.
                tracing::error!(
                    "cannot find the offsets for --from-timestamp: {}; \
                     those partitions start at their committed offsets",
                    crate::kafka::describe(&error)
                );
            }
        }
    }
}

/// Parses `--from TOPIC:PARTITION:OFFSET`.
pub fn parse_from(text: &str) -> Result<PartitionOffset, String> {
    let bad = || format!("`{text}` is not TOPIC:PARTITION:OFFSET");
    let mut parts = text.rsplitn(3, ':');
    let (Some(offset), Some(partition), Some(topic)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let partition: i32 = partition.parse().map_err(|_| bad())?;
    let offset: i64 = offset.parse().map_err(|_| bad())?;
    if topic.is_empty() || partition < 0 || offset < 0 {
        return Err(bad());
    }
    crate::kafka::check_topic_name(topic)?;
    Ok(PartitionOffset {
        topic: topic.to_string(),
        partition,
        offset,
    })
}

/// Parses `--from-timestamp`: milliseconds since the epoch, or an RFC 3339
/// time (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.250+02:00`).
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(millis);
    }
    rfc3339_millis(text).ok_or_else(|| {
        format!(
            "`{text}` is neither epoch milliseconds nor an RFC 3339 time like 2024-05-01T12:00:00Z"
        )
    })
}

fn rfc3339_millis(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())
            .flatten()
    };
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let first3 = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = first3.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            sign * (hours * 60 + minutes)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_is_topic_partition_offset() {
        assert_eq!(
            parse_from("orders.v1:2:1235"),
            Ok(PartitionOffset {
                topic: "orders.v1".into(),
                partition: 2,
                offset: 1235
            })
        );
        for bad in ["orders:2", "orders:x:1", "orders:1:-4", ":1:2", "a/b:1:2"] {
            assert!(parse_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_epoch_millis_or_rfc3339() {
        assert_eq!(parse_timestamp("1700000000123"), Ok(1_700_000_000_123));
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20.123Z"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_timestamp("2023-11-15T00:13:20.5+02:00"),
            Ok(1_700_000_000_500)
        );
        assert_eq!(
            parse_timestamp("2000-02-29T00:00:00-01:30"),
            Ok(951_787_800_000)
        );
        for bad in [
            "yesterday",
            "2023-11-14",
            "2023-13-01T00:00:00Z",
            "2023-11-14T22:13:20",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }
}
