//! Messages librdkafka fetched but cannot read: a batch that fails its
//! CRC, one it cannot decompress, a codec it lacks. They come back from
//! the consumer as errors, not messages; rust-rdkafka keeps only their
//! error code (librdkafka's topic, partition and offset are dropped with
//! the message), so they cannot be named by offset nor written to
//! `--dead-letter`. Where (rdkafka 0.38): `BorrowedMessage::from_client`
//! (src/message.rs) turns a message whose `err` is set into
//! `KafkaError::MessageConsumption(code)` and drops the message, which
//! held the topic, partition, offset and librdkafka's text ("Decompression
//! (codec 0x4) of message at OFFSET ... failed"); `BaseConsumer`'s poll
//! reaches it for every fetch event. librdkafka neither logs that text
//! nor passes it to the error callback (it is an op for the consumer's
//! queue), and its `on_consume` interceptors skip errored messages. What is decided here: `--on-error stop` ends the run
//! at the first one; `skip` warns (rate-limited) and goes on, since
//! librdkafka steps past a batch that fails its CRC by itself. A batch it
//! cannot decompress it fetches again and again: after [`STUCK_AFTER`] in
//! a row with no message read in between, the run ends rather than loop.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::error::{Error, Result};
use crate::kafka;

/// Unreadable messages in a row, with no readable one between, after
/// which the consumer is taken to be stuck on one.
pub(super) const STUCK_AFTER: u32 = 50;

/// True for the error codes of a message fetched but not readable.
pub(super) fn is_unreadable(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BadMessage
            | RDKafkaErrorCode::BadCompression
            | RDKafkaErrorCode::NotImplemented
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
    )
}

/// The unreadable messages seen in a row.
#[derive(Debug, Default)]
pub(super) struct Unreadable {
    in_a_row: u32,
}

impl Unreadable {
    /// A readable message came: the consumer is not stuck.
    pub(super) fn message_read(&mut self) {
        self.in_a_row = 0;
    }

    /// Handles one unreadable message; an error ends the run.
    pub(super) fn handle(&mut self, code: RDKafkaErrorCode, stop: bool) -> Result<()> {
        let what = kafka::describe(&KafkaError::MessageConsumption(code));
        if stop {
            return Err(Error::Kafka(format!(
                "a fetched message could not be read ({what}; librdkafka does not report its \
                 offset here); with --on-error skip such messages are counted and passed over"
            )));
        }
        self.in_a_row += 1;
        if self.in_a_row >= STUCK_AFTER {
            return Err(Error::Kafka(format!(
                "a fetched message could not be read ({what}) {} times in a row with nothing \
                 readable between: the consumer cannot get past it; stopping rather than looping",
                self.in_a_row
            )));
        }
        crate::warn_limited!("kafka source: a fetched message could not be read ({what}); skipped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_ends_at_the_first_and_skip_ends_when_stuck() {
        let mut unreadable = Unreadable::default();
        let error = unreadable
            .handle(RDKafkaErrorCode::BadCompression, true)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("could not be read (Local: Invalid compressed data"),
            "{error}"
        );
        for _ in 1..STUCK_AFTER {
            unreadable
                .handle(RDKafkaErrorCode::BadMessage, false)
                .unwrap();
        }
        unreadable.message_read();
        for _ in 1..STUCK_AFTER {
            unreadable
                .handle(RDKafkaErrorCode::BadMessage, false)
                .unwrap();
        }
        let error = unreadable
            .handle(RDKafkaErrorCode::BadMessage, false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("50 times in a row"), "{error}");
    }

    #[test]
    fn only_unreadable_messages_count() {
        assert!(is_unreadable(RDKafkaErrorCode::BadCompression));
        assert!(is_unreadable(RDKafkaErrorCode::NotImplemented));
        assert!(!is_unreadable(RDKafkaErrorCode::BrokerTransportFailure));
        assert!(!is_unreadable(RDKafkaErrorCode::PartitionEOF));
    }
}
