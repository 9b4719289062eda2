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

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

use crate::model::batch::BatchHeader;

/// Batches remembered per producer: Kafka's max.in.flight for idempotence.
const RECENT_BATCHES_MAX: usize = 5;

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
    recent: VecDeque<Recent>,
}

type PartitionProducers = HashMap<i64, ProducerEntry>;

pub struct ProducerStates {
    topics: RefCell<HashMap<String, HashMap<i32, PartitionProducers>>>,
    /// Ids handed out by this shard in this run.
    issued: Cell<i64>,
    /// High bits of every id from this run: the start time, so ids never repeat across restarts.
    id_base: i64,
}

fn last_sequence(h: &BatchHeader) -> i32 {
    // Sequences wrap from i32::MAX to 0, as in Kafka.
    ((h.base_sequence as i64 + h.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

impl Default for ProducerStates {
    fn default() -> ProducerStates {
        ProducerStates::new()
    }
}

impl ProducerStates {
    pub fn new() -> ProducerStates {
        let id_base = (crate::model::now_ms() & ((1 << 40) - 1)) << 20;
        ProducerStates { topics: RefCell::new(HashMap::new()), issued: Cell::new(0), id_base }
    }

    /// A producer id no other shard, and no earlier run, hands out.
    pub fn next_producer_id(&self, shard: u16, shard_count: usize) -> i64 {
        let n = self.issued.get();
        self.issued.set(n + 1);
        self.id_base + (n * shard_count as i64 + shard as i64) % (1 << 20)
    }

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

    /// Remembers an appended batch.
    pub fn record(&self, topic: &str, partition: i32, h: &BatchHeader, base_offset: i64) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let mut topics = self.topics.borrow_mut();
        // Allocate the topic's key only the first time: this runs for every idempotent batch.
        if !topics.contains_key(topic) {
            topics.insert(topic.to_string(), HashMap::new());
        }
        let producers = topics.get_mut(topic).expect("inserted above").entry(partition).or_default();
        let entry = producers
            .entry(h.producer_id)
            .or_insert(ProducerEntry { epoch: h.producer_epoch, recent: VecDeque::new() });
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.recent.clear();
        }
        if entry.recent.len() == RECENT_BATCHES_MAX {
            entry.recent.pop_front();
        }
        entry.recent.push_back(Recent {
            first_sequence: h.base_sequence,
            last_sequence: last_sequence(h),
            base_offset,
        });
    }

    /// Forgets a partition's producers, after a failed write (the batches they
    /// remember were never stored) or when its topic is deleted.
    pub fn forget(&self, topic: &str, partition: i32) {
        if let Some(t) = self.topics.borrow_mut().get_mut(topic) {
            t.remove(&partition);
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
        let states = ProducerStates::new();
        let first = header(7, 0, 0, 3);
        assert_eq!(states.check("t", 0, &first), SequenceCheck::Append);
        states.record("t", 0, &first, 100);
        assert_eq!(states.check("t", 0, &first), SequenceCheck::Duplicate { base_offset: 100 });
        assert_eq!(states.check("t", 0, &header(7, 0, 5, 1)), SequenceCheck::OutOfOrder { expected: 3, got: 5 });
        assert_eq!(states.check("t", 0, &header(7, 0, 3, 1)), SequenceCheck::Append);
        assert_eq!(
            states.check("t", 1, &header(7, 0, 9, 1)),
            SequenceCheck::Append,
            "other partition: unknown producer"
        );
        states.record("t", 0, &header(7, 1, 0, 1), 200);
        assert_eq!(states.check("t", 0, &header(7, 0, 3, 1)), SequenceCheck::FencedEpoch);
        states.forget("t", 0);
        assert_eq!(states.check("t", 0, &header(7, 0, 3, 1)), SequenceCheck::Append);
    }

    #[test]
    fn producer_ids_differ_across_shards() {
        let states = ProducerStates::new();
        let a = states.next_producer_id(0, 2);
        let b = ProducerStates::new().next_producer_id(1, 2);
        assert_ne!(a, b);
        assert!(a >= 0 && b >= 0);
    }
}
