//! Recently written bytes kept in memory, so that fetches at the tail of a
//! log are answered without the disk. With O_DIRECT writes the page cache no
//! longer holds them, and filling it costs more CPU than the write saved
//! (see segment.rs). One budget per shard: the oldest write goes first,
//! whichever log it belongs to.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use bytes::Bytes;

use crate::model::batch::{BatchHeader, HEADER_BYTES};

/// One write's bytes, from a block boundary of the active segment: the tail
/// of the write before (`position..first_batch`), then this write's batches.
pub struct HotRange {
    pub segment_base: i64,
    pub position: u64,
    pub first_batch: u64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub bytes: Bytes,
    /// The memory the bytes hold on to (their buffer's capacity), which is
    /// what the budget counts.
    pub footprint: usize,
}

/// One log's hot ranges, oldest first, contiguous in offsets.
#[derive(Default)]
pub struct LogHotTail {
    ranges: VecDeque<(u64, HotRange)>,
}

/// A shard's budget of hot bytes, shared by its logs.
pub struct HotTail {
    limit: usize,
    used: Cell<usize>,
    next_id: Cell<u64>,
    /// Every range kept, oldest first: whose it is and its id. Ranges a log
    /// dropped itself stay here until their turn, then are skipped.
    order: RefCell<VecDeque<(Weak<RefCell<LogHotTail>>, u64)>>,
}

impl HotTail {
    /// `limit` bytes for the whole shard; 0 keeps nothing.
    pub fn new(limit: usize) -> Rc<HotTail> {
        Rc::new(HotTail { limit, used: Cell::new(0), next_id: Cell::new(0), order: RefCell::new(VecDeque::new()) })
    }

    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// Keeps `range` as the newest of `log`, then evicts the shard's oldest
    /// ranges until the budget holds.
    pub fn keep(&self, log: &Rc<RefCell<LogHotTail>>, range: HotRange) {
        let id = self.next_id.replace(self.next_id.get() + 1);
        self.used.set(self.used.get() + range.footprint);
        {
            let mut hot = log.borrow_mut();
            debug_assert!(hot.ranges.back().is_none_or(|(_, last)| last.last_offset + 1 == range.first_offset));
            hot.ranges.push_back((id, range));
        }
        let mut order = self.order.borrow_mut();
        order.push_back((Rc::downgrade(log), id));
        while self.used.get() > self.limit {
            let Some((owner, oldest)) = order.pop_front() else { break };
            let Some(owner) = owner.upgrade() else { continue };
            let mut hot = owner.borrow_mut();
            if hot.ranges.front().is_some_and(|(front, _)| *front == oldest) {
                let (_, evicted) = hot.ranges.pop_front().expect("checked");
                self.used.set(self.used.get() - evicted.footprint);
            }
        }
    }

    /// Drops all of `log`'s ranges (a roll, a rollback, the log closing).
    pub fn forget(&self, log: &RefCell<LogHotTail>) {
        for (_, range) in log.borrow_mut().ranges.drain(..) {
            self.used.set(self.used.get() - range.footprint);
        }
    }

    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.get()
    }
}

impl LogHotTail {
    /// Whole batches from the one holding `offset`, up to `max_bytes` but at
    /// least one, all in one range; None when no range holds `offset`.
    pub fn read(&self, offset: i64, max_bytes: u32) -> Option<Bytes> {
        let at = self.ranges.partition_point(|(_, r)| r.first_offset <= offset).checked_sub(1)?;
        let range = &self.ranges[at].1;
        if offset > range.last_offset {
            return None;
        }
        let bytes = &range.bytes;
        let mut start = (range.first_batch - range.position) as usize;
        let mut header = header_at(bytes, start);
        while header.last_offset() < offset {
            start += header.total_bytes();
            header = header_at(bytes, start);
        }
        let limit = start + (max_bytes as usize).max(header.total_bytes());
        let mut end = start + header.total_bytes();
        while end < bytes.len() {
            let next = end + header_at(bytes, end).total_bytes();
            if next > limit {
                break;
            }
            end = next;
        }
        Some(bytes.slice(start..end))
    }

    /// The base of the segment the ranges belong to, if any are kept.
    pub fn segment_base(&self) -> Option<i64> {
        self.ranges.front().map(|(_, r)| r.segment_base)
    }
}

/// The header of the batch at `at`: the range holds whole batches from its
/// first one on, written and checked by the append path.
fn header_at(bytes: &[u8], at: usize) -> BatchHeader {
    debug_assert!(at + HEADER_BYTES <= bytes.len(), "a hot range holds whole batches");
    BatchHeader::parse(&bytes[at..]).expect("hot ranges hold batches the append path checked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::batch;

    fn range(first_offset: i64, batches: &[Vec<u8>], lead: usize) -> HotRange {
        let mut bytes = vec![0xee; lead];
        let mut next = first_offset;
        for b in batches {
            let start = bytes.len();
            bytes.extend_from_slice(b);
            batch::set_base_offset(&mut bytes[start..], next);
            next += BatchHeader::parse(b).unwrap().last_offset_delta as i64 + 1;
        }
        HotRange {
            segment_base: 0,
            position: 4096,
            first_batch: 4096 + lead as u64,
            first_offset,
            last_offset: next - 1,
            footprint: bytes.len(),
            bytes: Bytes::from(bytes),
        }
    }

    #[test]
    fn reads_whole_batches_and_evicts_the_shard_oldest_first() {
        let two = batch::build(1, &[b"aa".as_slice(), b"bb"]);
        let hot = HotTail::new(3 * two.len() + 100);
        let a = Rc::new(RefCell::new(LogHotTail::default()));
        let b = Rc::new(RefCell::new(LogHotTail::default()));
        hot.keep(&a, range(0, &[two.clone(), two.clone()], 100));
        assert_eq!(a.borrow().read(3, 1).unwrap().len(), two.len(), "at least the batch holding the offset");
        assert_eq!(a.borrow().read(0, 1 << 20).unwrap().len(), 2 * two.len());
        assert!(a.borrow().read(4, 1 << 20).is_none());
        hot.keep(&b, range(0, std::slice::from_ref(&two), 0));
        // Over budget: a's range (the oldest) goes, b's stays.
        hot.keep(&b, range(2, std::slice::from_ref(&two), 0));
        assert!(a.borrow().read(0, 1 << 20).is_none());
        assert_eq!(b.borrow().read(2, 1 << 20).unwrap().len(), two.len());
        hot.forget(&b);
        assert_eq!(hot.used(), 0);
    }
}
