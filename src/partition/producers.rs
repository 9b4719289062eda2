//! Idempotent producers of one replica (Kafka's `ProducerStateManager`):
//! the epoch and the last few batches of every producer id, so that a
//! retried batch is answered with the offset it already got instead of being
//! appended twice, and a gap in sequence numbers is refused.
//!
//! Kept in memory, and rebuilt when a replica reopens from the batch headers
//! of its log's last 4 MiB (see `Replica::restore_producers`): a producer
//! whose last batch is older is unknown to the partition, and its next batch
//! is accepted whatever its sequence, as Kafka does once a producer's state
//! has expired.
//!
//! Bounded, since every InitProducerId is a new producer: a producer silent
//! for `producer.id.expiration.ms` is forgotten (Kafka's rule, checked every
//! `PRODUCER_EXPIRY_CHECK_INTERVAL` by the shard), and past
//! `PRODUCERS_PER_PARTITION_MAX` in a replica or `PRODUCERS_PER_SHARD_MAX`
//! in all the shard's replicas (their shared [`ProducerBudget`]) the least
//! recently active quarter is forgotten at once. A forgotten producer is
//! treated like an expired one.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::model::batch::BatchHeader;

/// Batches remembered per producer: Kafka's max.in.flight for idempotence.
const RECENT_BATCHES_MAX: usize = 5;
/// Kafka's producer.id.expiration.check.interval.ms default.
pub const PRODUCER_EXPIRY_CHECK_INTERVAL: Duration = Duration::from_secs(600);
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
    /// Ahead of batches a rollback took, whose retry has not come: sent
    /// behind them, it is to be retried after them (chaos finding 8).
    AheadOfRollback {
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
    /// The sequence its next batch must start with. Kept apart from
    /// `recent`: a rollback may take every batch remembered, and the next
    /// sequence is then the first of those, not any (chaos finding 7).
    next_sequence: i32,
    /// A rollback took the batches from `next_sequence` on, and their retry
    /// has not been appended yet.
    rolled_back: bool,
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
        self.next_sequence = sequence_after(last_sequence(h), 1);
        self.rolled_back = false;
    }
}

/// What the producer tables of one shard share: how many producers they
/// remember in all, and the tables themselves, so that past the shard's
/// bound the least recently active are forgotten wherever they are.
/// Single-threaded, as everything a shard owns.
#[derive(Default)]
pub struct ProducerBudget {
    count: Cell<usize>,
    tables: RefCell<Vec<Weak<ProducerTable>>>,
}

/// One replica's producers, by producer id.
pub struct ProducerTable {
    producers: RefCell<HashMap<i64, ProducerEntry>>,
    budget: Rc<ProducerBudget>,
    /// The log's write epoch (its rollback count) the batches remembered
    /// were last checked against (see `follow_log`).
    write_epoch: Cell<u64>,
}

/// Sequences wrap from i32::MAX to 0, as in Kafka.
const SEQUENCE_SPACE: i64 = i32::MAX as i64 + 1;

/// The sequence `steps` after `sequence`.
fn sequence_after(sequence: i32, steps: i64) -> i32 {
    ((sequence as i64 + steps) % SEQUENCE_SPACE) as i32
}

fn last_sequence(h: &BatchHeader) -> i32 {
    sequence_after(h.base_sequence, h.last_offset_delta as i64)
}

/// Whether `sequence` comes after `expected` (by less than half the
/// sequence space, which wraps).
fn is_ahead(sequence: i32, expected: i32) -> bool {
    let distance = (sequence as i64 - expected as i64).rem_euclid(SEQUENCE_SPACE);
    distance > 0 && distance < SEQUENCE_SPACE / 2
}

/// The last-append time at or below which the least recently active quarter
/// (at least one; more where times tie) of producers lies.
fn quarter_cutoff_ms(mut times: Vec<i64>) -> Option<i64> {
    let quarter = (times.len() / 4).saturating_sub(1);
    (!times.is_empty()).then(|| *times.select_nth_unstable(quarter).1)
}

impl ProducerBudget {
    /// Kafka's producer id expiration: forgets every producer whose last
    /// append is `expiration_ms` old or older. Returns how many went.
    pub fn expire(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.forget_where(|p| now_ms.saturating_sub(p.last_append_ms) >= expiration_ms)
    }

    /// Producers remembered over every replica of the shard.
    pub fn remembered(&self) -> usize {
        self.count.get()
    }

    /// The tables of replicas still open (a closed replica's table is gone).
    fn live_tables(&self) -> Vec<Rc<ProducerTable>> {
        let mut tables = self.tables.borrow_mut();
        tables.retain(|t| t.strong_count() > 0);
        tables.iter().filter_map(Weak::upgrade).collect()
    }

    fn forget_least_recent(&self) {
        let tables = self.live_tables();
        let times =
            tables.iter().flat_map(|t| t.producers.borrow().values().map(|p| p.last_append_ms).collect::<Vec<_>>());
        let Some(cutoff_ms) = quarter_cutoff_ms(times.collect()) else { return };
        let forgotten = self.forget_where(|p| p.last_append_ms <= cutoff_ms);
        tracing::warn!(
            forgotten,
            "more than {PRODUCERS_PER_SHARD_MAX} idempotent producers: the least recently active are forgotten"
        );
    }

    fn forget_where(&self, doomed: impl Fn(&ProducerEntry) -> bool) -> usize {
        let before = self.count.get();
        for table in self.live_tables() {
            table.retain(|p| !doomed(p));
        }
        before - self.count.get()
    }
}

impl ProducerTable {
    /// A replica's empty table, counted in the shard's `budget`.
    pub fn new(budget: &Rc<ProducerBudget>) -> Rc<ProducerTable> {
        let table =
            Rc::new(ProducerTable { producers: RefCell::default(), budget: budget.clone(), write_epoch: Cell::new(0) });
        budget.tables.borrow_mut().push(Rc::downgrade(&table));
        table
    }

    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return SequenceCheck::Append;
        }
        let producers = self.producers.borrow();
        let Some(entry) = producers.get(&h.producer_id) else {
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
        let (expected, got) = (entry.next_sequence, h.base_sequence);
        match got == expected {
            true => SequenceCheck::Append,
            // Not a gap the producer made: its client would take it for one
            // and start a new epoch (librdkafka does), sending again under
            // new sequences what it had in flight, some of it written.
            false if entry.rolled_back && is_ahead(got, expected) => SequenceCheck::AheadOfRollback { expected, got },
            false => SequenceCheck::OutOfOrder { expected, got },
        }
    }

    /// Remembers a batch appended at `now_ms` (the broker's clock).
    pub fn record(&self, h: &BatchHeader, base_offset: i64, now_ms: i64) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        if let Some(entry) = self.producers.borrow_mut().get_mut(&h.producer_id) {
            entry.remember(h, base_offset, now_ms);
            return;
        }
        // A producer new to this partition: make room first (before this
        // table is borrowed: the shard-wide pass goes through it too).
        let budget = &self.budget;
        if budget.count.get() >= PRODUCERS_PER_SHARD_MAX {
            budget.forget_least_recent();
        }
        if self.producers.borrow().len() >= PRODUCERS_PER_PARTITION_MAX {
            let cutoff = quarter_cutoff_ms(self.producers.borrow().values().map(|p| p.last_append_ms).collect());
            if let Some(cutoff_ms) = cutoff {
                self.retain(|p| p.last_append_ms > cutoff_ms);
            }
        }
        let entry = ProducerEntry {
            epoch: h.producer_epoch,
            last_append_ms: now_ms,
            recent: VecDeque::new(),
            next_sequence: 0,
            rolled_back: false,
        };
        self.producers.borrow_mut().entry(h.producer_id).or_insert(entry).remember(h, base_offset, now_ms);
        budget.count.set(budget.count.get() + 1);
    }

    /// Forgets every producer (the replica changed role, or its log's
    /// rollbacks are too old to tell what stayed).
    pub fn forget_all(&self) {
        self.retain(|_| false);
    }

    /// Keeps the table in step with its log, before a batch is checked: a
    /// sequence is remembered exactly when its batch is in the log (Kafka's
    /// rule). A failed write or a truncation rolls the log end back; the
    /// batches at or above the end it left are forgotten, so that their
    /// retry is appended, while a retry of one below it (written before the
    /// failure) is answered as the duplicate it is (chaos finding 3: the
    /// table forgot every producer, and such a retry was stored twice). A
    /// producer whose remembered batches all went expects the first of them
    /// again: forgotten, it would take any sequence, and a batch pipelined
    /// behind them would be appended past the gap (chaos finding 7).
    /// `write_epoch`: the log's now; `surviving_end_since`: the log's
    /// (`PartitionLog::surviving_end_since`).
    pub fn follow_log(&self, write_epoch: u64, surviving_end_since: impl FnOnce(u64) -> Option<i64>) {
        let seen = self.write_epoch.replace(write_epoch);
        if seen == write_epoch {
            return;
        }
        match surviving_end_since(seen) {
            Some(end) => {
                for p in self.producers.borrow_mut().values_mut() {
                    while let Some(cut) = p.recent.back().filter(|r| r.base_offset >= end) {
                        (p.next_sequence, p.rolled_back) = (cut.first_sequence, true);
                        p.recent.pop_back();
                    }
                }
            }
            None => self.forget_all(),
        }
    }

    /// Producers this replica remembers.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.producers.borrow().len()
    }

    /// Keeps the producers `keep` says, uncounting the others.
    fn retain(&self, mut keep: impl FnMut(&mut ProducerEntry) -> bool) {
        let mut producers = self.producers.borrow_mut();
        let before = producers.len();
        producers.retain(|_, p| keep(p));
        let count = &self.budget.count;
        count.set(count.get() - (before - producers.len()));
    }
}

impl Drop for ProducerTable {
    /// A closed replica's producers no longer count against the shard.
    fn drop(&mut self) {
        let count = &self.budget.count;
        count.set(count.get() - self.producers.get_mut().len());
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
        let budget = Rc::new(ProducerBudget::default());
        let (table, other) = (ProducerTable::new(&budget), ProducerTable::new(&budget));
        let first = header(7, 0, 0, 3);
        assert_eq!(table.check(&first), SequenceCheck::Append);
        table.record(&first, 100, 0);
        assert_eq!(table.check(&first), SequenceCheck::Duplicate { base_offset: 100 });
        assert_eq!(table.check(&header(7, 0, 5, 1)), SequenceCheck::OutOfOrder { expected: 3, got: 5 });
        assert_eq!(table.check(&header(7, 0, 3, 1)), SequenceCheck::Append);
        assert_eq!(other.check(&header(7, 0, 9, 1)), SequenceCheck::Append, "other partition: unknown producer");
        table.record(&header(7, 1, 0, 1), 200, 0);
        assert_eq!(table.check(&header(7, 0, 3, 1)), SequenceCheck::FencedEpoch);
        table.forget_all();
        assert_eq!(table.check(&header(7, 0, 3, 1)), SequenceCheck::Append);
        assert_eq!(budget.remembered(), 0);
    }

    /// Chaos finding 3: after a failed write, the table forgot every
    /// producer, so the retry of a batch written before the failure was
    /// appended again. It must forget only what the rollback took.
    #[test]
    fn a_rollback_forgets_the_batches_it_took_and_keeps_the_ones_below() {
        let budget = Rc::new(ProducerBudget::default());
        let table = ProducerTable::new(&budget);
        table.follow_log(0, |_| unreachable!("no rollback yet"));
        let (landed, failed) = (header(7, 0, 0, 2), header(7, 0, 2, 1));
        table.record(&landed, 100, 0);
        table.record(&failed, 102, 0);
        table.record(&header(8, 0, 0, 1), 103, 0);
        // The write of offsets 102 and 103 failed: the log end went back to 102.
        table.follow_log(1, |seen| {
            assert_eq!(seen, 0);
            Some(102)
        });
        assert_eq!(table.check(&landed), SequenceCheck::Duplicate { base_offset: 100 }, "still in the log");
        assert_eq!(table.check(&failed), SequenceCheck::Append, "its retry is in order");
        assert_eq!(
            table.check(&header(8, 0, 5, 1)),
            SequenceCheck::AheadOfRollback { expected: 0, got: 5 },
            "nothing of it left, but its next sequence is the first that went (chaos finding 7), \
             and a batch ahead is to be retried after it (finding 8)"
        );
        assert_eq!(table.check(&header(8, 0, 0, 1)), SequenceCheck::Append, "its retry is in order");
        assert_eq!(budget.remembered(), 2);
        table.follow_log(1, |_| unreachable!("no rollback since"));
        // Rollbacks too old to tell what stayed: every producer is forgotten.
        table.follow_log(9, |_| None);
        assert_eq!(table.check(&header(7, 0, 9, 1)), SequenceCheck::Append);
        assert_eq!(budget.remembered(), 0);
    }

    #[test]
    fn ahead_is_less_than_half_the_sequence_space_later_and_wraps() {
        assert!(is_ahead(6, 1));
        assert!(!is_ahead(1, 1) && !is_ahead(0, 1), "not ahead: the same, or before");
        assert!(is_ahead(2, i32::MAX - 1), "wrapped past i32::MAX");
        assert!(!is_ahead(i32::MAX, 0), "a wrap back, not ahead");
    }

    #[test]
    fn a_closed_replicas_producers_leave_the_shards_count() {
        let budget = Rc::new(ProducerBudget::default());
        let table = ProducerTable::new(&budget);
        table.record(&header(1, 0, 0, 1), 0, 0);
        table.record(&header(2, 0, 0, 1), 1, 0);
        assert_eq!(budget.remembered(), 2);
        drop(table);
        assert_eq!(budget.remembered(), 0);
        assert!(budget.live_tables().is_empty());
    }

    #[test]
    fn idle_producers_expire_after_producer_id_expiration_ms() {
        let budget = Rc::new(ProducerBudget::default());
        let (p0, p1) = (ProducerTable::new(&budget), ProducerTable::new(&budget));
        p0.record(&header(1, 0, 0, 1), 10, 1_000);
        p1.record(&header(1, 0, 0, 1), 20, 1_000);
        p0.record(&header(2, 0, 0, 1), 30, 1_000);
        p0.record(&header(2, 0, 1, 1), 31, 5_000);
        assert_eq!(budget.remembered(), 3);

        assert_eq!(budget.expire(10_999, 10_000), 0, "not yet 10 s idle");
        assert_eq!(budget.expire(11_000, 10_000), 2, "producer 1 on both partitions");
        assert_eq!(budget.remembered(), 1);
        assert_eq!(p0.check(&header(1, 0, 7, 1)), SequenceCheck::Append, "forgotten: any sequence");
        let retried = header(2, 0, 1, 1);
        assert_eq!(p0.check(&retried), SequenceCheck::Duplicate { base_offset: 31 }, "active: kept");
        assert_eq!(budget.expire(15_000, 10_000), 1);
        assert_eq!(budget.remembered(), 0);
        assert_eq!(p0.len() + p1.len(), 0);
    }

    #[test]
    fn a_partition_forgets_its_least_recent_producers_past_the_limit() {
        let budget = Rc::new(ProducerBudget::default());
        let table = ProducerTable::new(&budget);
        for id in 0..PRODUCERS_PER_PARTITION_MAX as i64 {
            table.record(&header(id, 0, 0, 1), id, id);
        }
        assert_eq!(budget.remembered(), PRODUCERS_PER_PARTITION_MAX);
        // An active old producer stays; a new one evicts the least recent quarter.
        table.record(&header(0, 0, 1, 1), 50_000, 50_000);
        table.record(&header(1_000_000, 0, 0, 1), 60_000, 60_000);
        let quarter = PRODUCERS_PER_PARTITION_MAX / 4;
        assert_eq!(budget.remembered(), PRODUCERS_PER_PARTITION_MAX - quarter + 1);
        assert_eq!(table.check(&header(0, 0, 1, 1)), SequenceCheck::Duplicate { base_offset: 50_000 });
        assert_eq!(table.check(&header(1, 0, 5, 1)), SequenceCheck::Append, "forgotten");
        let kept = quarter as i64 + 1;
        assert_eq!(table.check(&header(kept, 0, 0, 1)), SequenceCheck::Duplicate { base_offset: kept });
    }

    #[test]
    fn a_shard_forgets_its_least_recent_producers_past_the_limit() {
        let budget = Rc::new(ProducerBudget::default());
        let partitions = (PRODUCERS_PER_SHARD_MAX / PRODUCERS_PER_PARTITION_MAX) * 2;
        let per_partition = (PRODUCERS_PER_SHARD_MAX / partitions) as i64;
        let tables: Vec<_> = (0..partitions).map(|_| ProducerTable::new(&budget)).collect();
        for (partition, table) in tables.iter().enumerate() {
            for n in 0..per_partition {
                let id = partition as i64 * per_partition + n;
                table.record(&header(id, 0, 0, 1), id, id);
            }
        }
        assert_eq!(budget.remembered(), PRODUCERS_PER_SHARD_MAX);
        let other_topic = ProducerTable::new(&budget);
        other_topic.record(&header(1 << 40, 0, 0, 1), 0, 1 << 40);
        assert_eq!(budget.remembered(), PRODUCERS_PER_SHARD_MAX - PRODUCERS_PER_SHARD_MAX / 4 + 1, "a quarter went");
        let oldest_partition_left = tables.iter().position(|t| t.len() > 0);
        assert_eq!(oldest_partition_left, Some(partitions / 4), "the oldest partitions' producers went whole");
    }
}
