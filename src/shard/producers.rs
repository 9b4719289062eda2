//! Idempotent producers: for each partition a shard owns, the epoch and the
//! last few batches of every producer id, so that a retried batch is answered
//! with the offset it already got instead of being appended twice, and a gap
//! in sequence numbers is refused.
//!
//! Kept in memory, and rebuilt at start-up from the batch headers of each
//! log's last 4 MiB (see `PartitionLog::recent_idempotent_batches`): a
//! producer whose last batch is older is unknown to the partition, and its
//! next batch is accepted whatever its sequence, as Kafka does once a
//! producer's state has expired.
//!
//! Bounded, since every InitProducerId is a new producer: a producer silent
//! for `producer.id.expiration.ms` is forgotten (Kafka's rule, checked every
//! `PRODUCER_EXPIRY_CHECK_INTERVAL`), and past `PRODUCERS_PER_PARTITION_MAX`
//! in a partition or `PRODUCERS_PER_SHARD_MAX` in the shard the least
//! recently active quarter is forgotten at once. A forgotten producer is
//! treated like an expired one.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use super::Shard;
use crate::model::batch::BatchHeader;

/// Batches remembered per producer: Kafka's max.in.flight for idempotence.
const RECENT_BATCHES_MAX: usize = 5;
/// Kafka's producer.id.expiration.check.interval.ms default.
const PRODUCER_EXPIRY_CHECK_INTERVAL: Duration = Duration::from_secs(600);
/// Producers one partition remembers. Kafka sets none, but each costs about
/// 200 bytes and a client can make one per InitProducerId and batch.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;
/// Producers one shard remembers over all its partitions: about 40 MiB.
pub const PRODUCERS_PER_SHARD_MAX: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New and in order (or not idempotent at all): append it.
    Append,
    /// Already appended: answer with the offset it got then.
    Duplicate {
        base_offset: i64,
    },
    OutOfOrder {
        expected: i32,
        got: i32,
    },
    /// The batch's epoch is older than one the producer has already used.
    FencedEpoch,
}

struct Recent {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
}

struct ProducerEntry {
    epoch: i16,
    /// The broker's clock at the producer's last append here (not the
    /// batch's timestamp, which the client sets: one from the future would
    /// keep the entry for ever).
    last_append_ms: i64,
    recent: VecDeque<Recent>,
}

impl ProducerEntry {
    fn remember(&mut self, h: &BatchHeader, base_offset: i64, now_ms: i64) {
        self.last_append_ms = self.last_append_ms.max(now_ms);
        if h.producer_epoch != self.epoch {
            self.epoch = h.producer_epoch;
            self.recent.clear();
        }
        if self.recent.len() == RECENT_BATCHES_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(Recent { first_sequence: h.base_sequence, last_sequence: last_sequence(h), base_offset });
    }
}

type PartitionProducers = HashMap<i64, ProducerEntry>;

#[derive(Default)]
pub struct ProducerStates {
    topics: RefCell<HashMap<String, HashMap<i32, PartitionProducers>>>,
    /// Producers remembered over every partition of the shard.
    count: Cell<usize>,
}

fn last_sequence(h: &BatchHeader) -> i32 {
    // Sequences wrap from i32::MAX to 0, as in Kafka.
    ((h.base_sequence as i64 + h.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

/// The last-append time at or below which the least recently active quarter
/// (at least one; more where times tie) of producers lies.
fn quarter_cutoff_ms(mut times: Vec<i64>) -> Option<i64> {
    let quarter = (times.len() / 4).saturating_sub(1);
    (!times.is_empty()).then(|| *times.select_nth_unstable(quarter).1)
}

/// Forgets the least recently active quarter of one partition's producers,
/// returning how many went. O(n), once per n/4 new producers.
fn forget_least_recent_quarter(producers: &mut PartitionProducers) -> usize {
    let Some(cutoff_ms) = quarter_cutoff_ms(producers.values().map(|p| p.last_append_ms).collect()) else { return 0 };
    let before = producers.len();
    producers.retain(|_, p| p.last_append_ms > cutoff_ms);
    before - producers.len()
}

impl ProducerStates {
    pub fn check(&self, topic: &str, partition: i32, h: &BatchHeader) -> SequenceCheck {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return SequenceCheck::Append;
        }
        let topics = self.topics.borrow();
        let Some(entry) = topics.get(topic).and_then(|t| t.get(&partition)).and_then(|p| p.get(&h.producer_id)) else {
            return SequenceCheck::Append;
        };
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::FencedEpoch;
        }
        if h.producer_epoch > entry.epoch {
            // A new epoch starts its sequences again at 0.
            return match h.base_sequence {
                0 => SequenceCheck::Append,
                got => SequenceCheck::OutOfOrder { expected: 0, got },
            };
        }
        if let Some(r) =
            entry.recent.iter().find(|r| r.first_sequence == h.base_sequence && r.last_sequence == last_sequence(h))
        {
            return SequenceCheck::Duplicate { base_offset: r.base_offset };
        }
        let expected = entry.recent.back().map_or(0, |r| ((r.last_sequence as i64 + 1) % (i32::MAX as i64 + 1)) as i32);
        match h.base_sequence == expected {
            true => SequenceCheck::Append,
            false => SequenceCheck::OutOfOrder { expected, got: h.base_sequence },
        }
    }

    /// Remembers a batch appended at `now_ms` (the broker's clock).
    pub fn record(&self, topic: &str, partition: i32, h: &BatchHeader, base_offset: i64, now_ms: i64) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        {
            let mut topics = self.topics.borrow_mut();
            let producers = topics.get_mut(topic).and_then(|t| t.get_mut(&partition));
            if let Some(entry) = producers.and_then(|p| p.get_mut(&h.producer_id)) {
                entry.remember(h, base_offset, now_ms);
                return;
            }
        }
        // A producer new to this partition: make room first.
        if self.count.get() >= PRODUCERS_PER_SHARD_MAX {
            self.forget_least_recent_in_shard();
        }
        let mut topics = self.topics.borrow_mut();
        let producers = topics.entry(topic.to_string()).or_default().entry(partition).or_default();
        if producers.len() >= PRODUCERS_PER_PARTITION_MAX {
            let forgotten = forget_least_recent_quarter(producers);
            self.count.set(self.count.get() - forgotten);
        }
        let entry = ProducerEntry { epoch: h.producer_epoch, last_append_ms: now_ms, recent: VecDeque::new() };
        producers.entry(h.producer_id).or_insert(entry).remember(h, base_offset, now_ms);
        self.count.set(self.count.get() + 1);
    }

    /// Forgets a partition's producers, after a failed write (the batches they
    /// remember were never stored) or when its topic is deleted.
    pub fn forget(&self, topic: &str, partition: i32) {
        if let Some(t) = self.topics.borrow_mut().get_mut(topic) {
            if let Some(producers) = t.remove(&partition) {
                self.count.set(self.count.get() - producers.len());
            }
        }
    }

    /// Kafka's producer id expiration: forgets every producer whose last
    /// append is `expiration_ms` old or older. Returns how many went.
    pub fn expire(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.forget_where(|p| now_ms.saturating_sub(p.last_append_ms) >= expiration_ms)
    }

    pub fn remembered(&self) -> usize {
        self.count.get()
    }

    fn forget_least_recent_in_shard(&self) {
        let times = {
            let topics = self.topics.borrow();
            topics.values().flat_map(|t| t.values()).flat_map(|p| p.values()).map(|p| p.last_append_ms).collect()
        };
        let Some(cutoff_ms) = quarter_cutoff_ms(times) else { return };
        let forgotten = self.forget_where(|p| p.last_append_ms <= cutoff_ms);
        tracing::warn!(
            forgotten,
            "more than {PRODUCERS_PER_SHARD_MAX} idempotent producers: the least recently active are forgotten"
        );
    }

    fn forget_where(&self, doomed: impl Fn(&ProducerEntry) -> bool) -> usize {
        let mut topics = self.topics.borrow_mut();
        let before = self.count.get();
        for partitions in topics.values_mut() {
            for producers in partitions.values_mut() {
                let len = producers.len();
                producers.retain(|_, p| !doomed(p));
                self.count.set(self.count.get() - (len - producers.len()));
            }
            partitions.retain(|_, producers| !producers.is_empty());
        }
        topics.retain(|_, partitions| !partitions.is_empty());
        before - self.count.get()
    }
}

impl Shard {
    /// Expires idle idempotent producers until the shard stops.
    pub async fn run_producer_expiry(self: Rc<Self>) {
        let expiration_ms = self.config.producer_id_expiration_ms;
        let interval = PRODUCER_EXPIRY_CHECK_INTERVAL.min(Duration::from_millis(expiration_ms.max(1) as u64));
        while !self.stopping.get() {
            tokio::time::sleep(interval).await;
            let expired = self.producers.expire(crate::model::now_ms(), expiration_ms);
            if expired > 0 {
                tracing::info!(
                    shard = self.id,
                    expired,
                    remembered = self.producers.remembered(),
                    "idle idempotent producers forgotten"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::batch;

    fn header(producer_id: i64, epoch: i16, sequence: i32, records: usize) -> BatchHeader {
        let values: Vec<&[u8]> = vec![b"v"; records];
        let mut h = BatchHeader::parse(&batch::build(0, &values)).unwrap();
        (h.producer_id, h.producer_epoch, h.base_sequence) = (producer_id, epoch, sequence);
        h
    }

    #[test]
    fn retried_batch_is_a_duplicate_and_gaps_are_refused() {
        let states = ProducerStates::default();
        let first = header(7, 0, 0, 3);
        assert_eq!(states.check("t", 0, &first), SequenceCheck::Append);
        states.record("t", 0, &first, 100, 0);
        assert_eq!(states.check("t", 0, &first), SequenceCheck::Duplicate { base_offset: 100 });
        assert_eq!(states.check("t", 0, &header(7, 0, 5, 1)), SequenceCheck::OutOfOrder { expected: 3, got: 5 });
        assert_eq!(states.check("t", 0, &header(7, 0, 3, 1)), SequenceCheck::Append);
        assert_eq!(
            states.check("t", 1, &header(7, 0, 9, 1)),
            SequenceCheck::Append,
            "other partition: unknown producer"
        );
        states.record("t", 0, &header(7, 1, 0, 1), 200, 0);
        assert_eq!(states.check("t", 0, &header(7, 0, 3, 1)), SequenceCheck::FencedEpoch);
        states.forget("t", 0);
        assert_eq!(states.check("t", 0, &header(7, 0, 3, 1)), SequenceCheck::Append);
        assert_eq!(states.remembered(), 0);
    }

    #[test]
    fn idle_producers_expire_after_producer_id_expiration_ms() {
        let states = ProducerStates::default();
        states.record("t", 0, &header(1, 0, 0, 1), 10, 1_000);
        states.record("t", 1, &header(1, 0, 0, 1), 20, 1_000);
        states.record("t", 0, &header(2, 0, 0, 1), 30, 1_000);
        states.record("t", 0, &header(2, 0, 1, 1), 31, 5_000);
        assert_eq!(states.remembered(), 3);

        assert_eq!(states.expire(10_999, 10_000), 0, "not yet 10 s idle");
        assert_eq!(states.expire(11_000, 10_000), 2, "producer 1 on both partitions");
        assert_eq!(states.remembered(), 1);
        assert_eq!(states.check("t", 0, &header(1, 0, 7, 1)), SequenceCheck::Append, "forgotten: any sequence");
        let retried = header(2, 0, 1, 1);
        assert_eq!(states.check("t", 0, &retried), SequenceCheck::Duplicate { base_offset: 31 }, "active: kept");
        assert_eq!(states.expire(15_000, 10_000), 1);
        assert_eq!(states.remembered(), 0);
        assert!(states.topics.borrow().is_empty(), "empty partitions and topics go too");
    }

    #[test]
    fn a_partition_forgets_its_least_recent_producers_past_the_limit() {
        let states = ProducerStates::default();
        for id in 0..PRODUCERS_PER_PARTITION_MAX as i64 {
            states.record("t", 0, &header(id, 0, 0, 1), id, id);
        }
        assert_eq!(states.remembered(), PRODUCERS_PER_PARTITION_MAX);
        // An active old producer stays; a new one evicts the least recent quarter.
        states.record("t", 0, &header(0, 0, 1, 1), 50_000, 50_000);
        states.record("t", 0, &header(1_000_000, 0, 0, 1), 60_000, 60_000);
        let quarter = PRODUCERS_PER_PARTITION_MAX / 4;
        assert_eq!(states.remembered(), PRODUCERS_PER_PARTITION_MAX - quarter + 1);
        assert_eq!(states.check("t", 0, &header(0, 0, 1, 1)), SequenceCheck::Duplicate { base_offset: 50_000 });
        assert_eq!(states.check("t", 0, &header(1, 0, 5, 1)), SequenceCheck::Append, "forgotten");
        let kept = quarter as i64 + 1;
        assert_eq!(states.check("t", 0, &header(kept, 0, 0, 1)), SequenceCheck::Duplicate { base_offset: kept });
    }

    #[test]
    fn a_shard_forgets_its_least_recent_producers_past_the_limit() {
        let states = ProducerStates::default();
        let partitions = (PRODUCERS_PER_SHARD_MAX / PRODUCERS_PER_PARTITION_MAX) as i32 * 2;
        let per_partition = PRODUCERS_PER_SHARD_MAX as i64 / i64::from(partitions);
        for partition in 0..partitions {
            for n in 0..per_partition {
                let id = i64::from(partition) * per_partition + n;
                states.record("t", partition, &header(id, 0, 0, 1), id, id);
            }
        }
        assert_eq!(states.remembered(), PRODUCERS_PER_SHARD_MAX);
        states.record("u", 0, &header(1 << 40, 0, 0, 1), 0, 1 << 40);
        assert_eq!(states.remembered(), PRODUCERS_PER_SHARD_MAX - PRODUCERS_PER_SHARD_MAX / 4 + 1, "a quarter went");
        let oldest_partition_left = states.topics.borrow()["t"].keys().min().copied();
        assert_eq!(oldest_partition_left, Some(partitions / 4), "the oldest partitions' producers went whole");
    }
}
