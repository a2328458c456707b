//! [`Link`]: what the Kafka source and the transactional sink share.
//!
//! The source gives every batch an ack made by [`Link::ack`]: when the
//! sink has the batch delivered (in the open transaction), that ack notes
//! the partition's next offset here and keeps the source's own ack; the
//! sink takes both when it commits ([`Link::take`]), sends the offsets in
//! the transaction, and fires the source's acks only once it committed
//! (so the source's table calls a record written only once it is
//! committed). An aborted transaction drops them unfired.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::ConsumerGroupMetadata;
use tokio::sync::Notify;

use crate::ack::{Ack, Acks};
use crate::kafka::KafkaConfig;

/// What the sink asks of the consumer group when it commits.
pub trait Group: Send + Sync {
    /// The group's metadata now (its generation, this member), which lets
    /// the broker refuse offsets from a member the group has moved past;
    /// `None` once the consumer is gone.
    fn metadata(&self) -> Option<ConsumerGroupMetadata>;
    /// Whether `topic`/`partition` is still assigned under `epoch`.
    fn owns(&self, topic: &str, partition: i32, epoch: u64) -> bool;
    /// Notes offsets that a transaction committed.
    fn committed(&self, offsets: &[NextOffset]);
}

/// A partition's next offset to read (its last record in the transaction
/// plus one), under the assignment epoch it was read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextOffset {
    /// The input topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// The offset the next run starts that partition at.
    pub offset: i64,
    /// The source's assignment epoch of the records.
    pub epoch: u64,
}

/// The link between the Kafka source and the transactional sink of one
/// run (cheap to clone: one shared state).
#[derive(Clone)]
pub struct Link(Arc<Inner>);

struct Inner {
    transactional_id: String,
    interval: Duration,
    timeout: Duration,
    /// Revokes in progress: while any is, the sink commits each batch at
    /// once instead of at the end of the interval, so that the revoked
    /// partitions' records commit before they are handed over.
    hurry: AtomicUsize,
    /// Wakes the sink when a revoke starts.
    hurried: Notify,
    group: OnceLock<Box<dyn Group>>,
    open: Mutex<Open>,
}

/// What the open transaction holds of the input.
#[derive(Default)]
struct Open {
    offsets: BTreeMap<(String, i32), (i64, u64)>,
    /// The source's acks of the batches delivered, fired once committed.
    acks: Acks,
}

/// What [`Link::take`] took from the open transaction.
pub(super) struct Taken {
    pub(super) offsets: Vec<NextOffset>,
    pub(super) acks: Acks,
}

/// The least `transaction.timeout.ms` for `--exactly-once` unless `-X`
/// sets it: how long the open transaction of a killed process keeps
/// `read_committed` readers (and the input offsets) waiting when nothing
/// restarts with its `transactional.id` (librdkafka's default: 60 s).
pub const MIN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker's default `transaction.max.timeout.ms` (15 min): a longer
/// timeout is refused by `init_transactions`.
pub const MAX_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(900);

/// What a transaction's timeout leaves past twice its interval: the
/// commit itself (waiting for the deliveries) takes time too.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// The `transaction.timeout.ms` of a run committing every `interval`: the
/// last `-X transaction.timeout.ms` if given (it wins; `None` if it is not
/// a number, which librdkafka then refuses), else twice the interval plus
/// a margin, at least [`MIN_TRANSACTION_TIMEOUT`] and at most
/// [`MAX_TRANSACTION_TIMEOUT`]. A fixed 10 s made every interval of 10 s
/// or more fail: the broker aborted each transaction before its commit.
pub fn transaction_timeout(interval: Duration, settings: &[(String, String)]) -> Option<Duration> {
    match settings
        .iter()
        .rev()
        .find(|(key, _)| key == "transaction.timeout.ms")
    {
        Some((_, value)) => value.parse::<u64>().ok().map(Duration::from_millis),
        None => Some(
            interval
                .saturating_mul(2)
                .saturating_add(TIMEOUT_MARGIN)
                .clamp(MIN_TRANSACTION_TIMEOUT, MAX_TRANSACTION_TIMEOUT),
        ),
    }
}

impl Link {
    /// The link of a run consuming in `group`, committing every
    /// `interval`. Its `transactional.id` is `streamer-N-GROUP-ID` with
    /// `--instance-id ID`: stable, so a member restarted with its instance
    /// id fences its dead predecessor and aborts its open transaction at
    /// once. Without one, `streamer-N-GROUP-PID-MILLIS`, unique to the
    /// process: two copiers of one group on one host must not fence each
    /// other, and the group's generation (KIP-447) already fences a member
    /// the group has moved past; a killed process's open transaction is
    /// then aborted by the broker after `timeout` (its
    /// `transaction.timeout.ms`, see [`transaction_timeout`]).
    /// `explicit`, from `-X transactional.id=...`, wins over both.
    pub fn new(
        group: &str,
        instance_id: Option<&str>,
        explicit: Option<&str>,
        interval: Duration,
        timeout: Duration,
    ) -> Self {
        let transactional_id = match (explicit, instance_id) {
            (Some(id), _) => id.to_string(),
            // N, the group's length in bytes, keeps the id unambiguous:
            // `-g a-x --instance-id y-z` and `-g a-x-y --instance-id z`
            // were both `streamer-a-x-y-z` and fenced each other.
            (None, Some(id)) => format!("streamer-{}-{group}-{id}", group.len()),
            (None, None) => {
                let millis = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                format!(
                    "streamer-{}-{group}-{}-{millis}",
                    group.len(),
                    std::process::id()
                )
            }
        };
        Link(Arc::new(Inner {
            transactional_id,
            interval,
            timeout,
            hurry: AtomicUsize::new(0),
            hurried: Notify::new(),
            group: OnceLock::new(),
            open: Mutex::new(Open::default()),
        }))
    }

    /// The producer's `transactional.id`.
    pub fn transactional_id(&self) -> &str {
        &self.0.transactional_id
    }

    /// `--transaction-interval`: how long a transaction stays open.
    pub fn interval(&self) -> Duration {
        self.0.interval
    }

    /// The producer's `transaction.timeout.ms`: the broker aborts a
    /// transaction open longer.
    pub fn timeout(&self) -> Duration {
        self.0.timeout
    }

    /// The producer's settings: `transactional.id` and the transaction
    /// timeout ahead of `config`'s own, so `-X` still wins.
    pub fn producer_config(&self, config: &KafkaConfig) -> KafkaConfig {
        let mut config = config.clone();
        config.settings.splice(
            0..0,
            [
                ("transactional.id".into(), self.0.transactional_id.clone()),
                (
                    "transaction.timeout.ms".into(),
                    self.0.timeout.as_millis().to_string(),
                ),
            ],
        );
        config
    }

    /// A revoke starts: the open transaction is to commit now (and every
    /// batch after it at once) until [`Link::unhurry`]. Without it the
    /// revoked partitions' records stayed in a transaction committed only
    /// by its timer, which then failed as theirs were revoked (exit 1).
    pub fn hurry(&self) {
        self.0.hurry.fetch_add(1, Ordering::AcqRel);
        // notify_one keeps a permit if the sink is not waiting right now.
        self.0.hurried.notify_one();
    }

    /// The revoke that called [`Link::hurry`] is over.
    pub fn unhurry(&self) {
        self.0.hurry.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether a revoke wants the open transaction committed now.
    pub(super) fn hurried(&self) -> bool {
        self.0.hurry.load(Ordering::Acquire) > 0
    }

    /// Resolves when a revoke calls [`Link::hurry`] (or already did).
    pub(super) async fn hurry_called(&self) {
        self.0.hurried.notified().await
    }

    /// The source attaches its consumer group, once.
    pub fn attach(&self, group: Box<dyn Group>) {
        if self.0.group.set(group).is_err() {
            tracing::warn!("a second consumer attached to one --exactly-once link: ignored");
        }
    }

    /// The group attached by the source, if any.
    pub(super) fn group(&self) -> Option<&dyn Group> {
        self.0.group.get().map(|group| &**group)
    }

    /// The ack of a batch of `topic`/`partition` read under `epoch` up to
    /// `next_offset` (exclusive): fired by the sink once the batch is
    /// delivered, it notes the offset in the open transaction and keeps
    /// `then`, the source's own ack, for the commit.
    pub fn ack(&self, topic: &str, partition: i32, epoch: u64, next_offset: i64, then: Ack) -> Ack {
        let link = self.clone();
        let topic = topic.to_string();
        Ack::new(move || {
            let mut open = link.lock();
            let entry = open
                .offsets
                .entry((topic, partition))
                .or_insert((next_offset, epoch));
            // A partition's batches are delivered in order; an older epoch
            // is kept, so that the commit refuses the lot.
            if entry.1 == epoch {
                entry.0 = entry.0.max(next_offset);
            }
            open.acks.push(then);
        })
    }

    /// Takes what the open transaction holds of the input.
    pub(super) fn take(&self) -> Taken {
        let open = std::mem::take(&mut *self.lock());
        Taken {
            offsets: open
                .offsets
                .into_iter()
                .map(|((topic, partition), (offset, epoch))| NextOffset {
                    topic,
                    partition,
                    offset,
                    epoch,
                })
                .collect(),
            acks: open.acks,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.0
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("transactional_id", &self.0.transactional_id)
            .field("interval", &self.0.interval)
            .field("timeout", &self.0.timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn delivered_batches_note_their_partition_s_last_offset_and_keep_the_source_ack() {
        let link = Link::new(
            "g",
            Some("host-1"),
            None,
            Duration::from_millis(100),
            MIN_TRANSACTION_TIMEOUT,
        );
        assert_eq!(link.transactional_id(), "streamer-1-g-host-1");
        let id = |group, instance| {
            Link::new(
                group,
                Some(instance),
                None,
                Duration::ZERO,
                MIN_TRANSACTION_TIMEOUT,
            )
            .transactional_id()
            .to_string()
        };
        assert_ne!(
            id("a-x", "y-z"),
            id("a-x-y", "z"),
            "no two commands share an id"
        );
        let given = Link::new(
            "g",
            Some("host-1"),
            Some("mine"),
            Duration::from_millis(100),
            MIN_TRANSACTION_TIMEOUT,
        );
        assert_eq!(given.transactional_id(), "mine", "-X transactional.id wins");
        let fired = Arc::new(AtomicUsize::new(0));
        let counting = || {
            let fired = fired.clone();
            Ack::new(move || {
                fired.fetch_add(1, Ordering::SeqCst);
            })
        };
        let mut acks = Acks::none();
        acks.push(link.ack("t", 0, 1, 5, counting()));
        acks.push(link.ack("t", 0, 1, 9, counting()));
        acks.push(link.ack("t", 1, 1, 3, counting()));
        acks.deliver();
        assert_eq!(fired.load(Ordering::SeqCst), 0, "fired only once committed");
        let taken = link.take();
        let offsets: Vec<_> = taken
            .offsets
            .iter()
            .map(|o| (o.topic.as_str(), o.partition, o.offset))
            .collect();
        assert_eq!(offsets, [("t", 0, 9), ("t", 1, 3)]);
        taken.acks.deliver();
        assert_eq!(fired.load(Ordering::SeqCst), 3);
        assert!(
            link.take().offsets.is_empty(),
            "the next transaction starts empty"
        );
    }

    #[test]
    fn without_an_instance_id_each_process_has_its_own_id_and_x_wins() {
        let link = Link::new(
            "g",
            None,
            None,
            Duration::from_millis(100),
            MIN_TRANSACTION_TIMEOUT,
        );
        let prefix = format!("streamer-1-g-{}-", std::process::id());
        assert!(link.transactional_id().starts_with(&prefix));
        let config = KafkaConfig {
            brokers: "b:1".into(),
            settings: vec![("transaction.timeout.ms".into(), "30000".into())],
        };
        let settings = link.producer_config(&config).settings;
        assert_eq!(settings[0].0, "transactional.id");
        // Later settings win: -X's timeout comes after ours.
        assert_eq!(settings.last().unwrap().1, "30000");
    }

    #[test]
    fn the_transaction_timeout_outlasts_the_interval_unless_x_sets_it() {
        let secs = |s| Duration::from_secs(s);
        assert_eq!(
            transaction_timeout(Duration::from_millis(100), &[]),
            Some(secs(10))
        );
        assert_eq!(transaction_timeout(secs(15), &[]), Some(secs(35)));
        assert_eq!(transaction_timeout(secs(600), &[]), Some(secs(900)));
        let x = |v: &str| vec![("transaction.timeout.ms".to_string(), v.to_string())];
        assert_eq!(transaction_timeout(secs(15), &x("12000")), Some(secs(12)));
        assert_eq!(transaction_timeout(secs(15), &x("soon")), None);
    }
}
