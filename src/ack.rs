//! Acknowledgements: callbacks that travel with a batch from its source to
//! the sink, and fire once the sink has written the batch out (handed it to
//! the OS, or had it acknowledged by a broker).
//!
//! A batch that is dropped without being delivered never fires its acks:
//! that is what keeps an offset commit or a checkpoint from running ahead of
//! the output (at-least-once).
//!
//! Rejected records are covered too: every batch passes the decode stage,
//! which hands the dead-letter lines rejected so far (by the source before
//! it sent the batch, or by the decode stage) to the OS before it forwards
//! the batch ([`crate::parts::Rejects::write_out`]). So a batch's acks
//! fire only after its records are written and its rejections are in the
//! `--dead-letter` file.

use std::fmt;

/// One acknowledgement: called once, after the records it covers are written.
pub struct Ack(Box<dyn FnOnce() + Send>);

impl Ack {
    /// Wraps `on_delivered`, run when the batch carrying this ack is written.
    pub fn new(on_delivered: impl FnOnce() + Send + 'static) -> Self {
        Ack(Box::new(on_delivered))
    }
}

/// What acknowledges the first records of a batch that `--limit` cut
/// short: called with how many of its records were kept, it returns the
/// ack that covers them alone (the batch's own acks cover it whole, so
/// they must not fire then).
pub struct CutAck(Box<dyn FnOnce(usize) -> Ack + Send>);

impl CutAck {
    /// Wraps `for_kept`, which makes the ack of the first `kept` records.
    pub fn new(for_kept: impl FnOnce(usize) -> Ack + Send + 'static) -> Self {
        CutAck(Box::new(for_kept))
    }

    /// The ack of the first `kept` records of the batch.
    pub fn kept(self, kept: usize) -> Ack {
        (self.0)(kept)
    }
}

impl fmt::Debug for CutAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CutAck")
    }
}

/// The acknowledgements carried by one batch (or by several merged batches),
/// fired in the order they were added.
#[derive(Default)]
pub struct Acks(Vec<Ack>);

impl Acks {
    /// No acknowledgements.
    pub fn none() -> Self {
        Acks(Vec::new())
    }

    /// Adds one acknowledgement.
    pub fn push(&mut self, ack: Ack) {
        self.0.push(ack);
    }

    /// Moves every acknowledgement of `other` after ours.
    pub fn append(&mut self, other: Acks) {
        self.0.extend(other.0);
    }

    /// True when there is nothing to acknowledge.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Fires every acknowledgement, in order: the records are delivered.
    pub fn deliver(self) {
        for ack in self.0 {
            (ack.0)();
        }
    }
}

impl fmt::Debug for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Acks({})", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn delivers_in_order_and_only_when_told() {
        let fired = Arc::new(Mutex::new(Vec::new()));
        let mut first = Acks::none();
        let mut second = Acks::none();
        for (acks, n) in [(&mut first, 1), (&mut second, 2)] {
            let fired = fired.clone();
            acks.push(Ack::new(move || fired.lock().unwrap().push(n)));
        }
        first.append(second);
        assert!(fired.lock().unwrap().is_empty());
        first.deliver();
        assert_eq!(*fired.lock().unwrap(), vec![1, 2]);
    }

    #[test]
    fn dropping_does_not_deliver() {
        let fired = Arc::new(Mutex::new(0));
        let mut acks = Acks::none();
        let counter = fired.clone();
        acks.push(Ack::new(move || *counter.lock().unwrap() += 1));
        drop(acks);
        assert_eq!(*fired.lock().unwrap(), 0);
    }
}
