//! Recently written bytes kept in memory, so that fetches at the tail of a
//! log are answered without the disk. With O_DIRECT writes the page cache no
//! longer holds them, and filling it costs more CPU than the write saved
//! (see segment.rs). One budget per shard: the oldest write goes first,
//! whichever log it belongs to.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use bytes::Bytes;

use crate::model::batch::BatchHeader;

use super::headers::whole_batches_end;
use super::read_memory;

/// One write's bytes, from a block boundary of the active segment: the tail
/// of the write before (`..first_batch`), then this write's batches.
pub struct HotRange {
    /// Where this write's own batches start in `bytes`.
    pub first_batch: usize,
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
}

/// At most this many of a log's write ranges answer one read: each is a
/// part of the fetch answer (a write to the socket of its own), and a log
/// written one small batch at a time has a range per batch.
const RANGES_PER_READ_MAX: usize = 64;

impl LogHotTail {
    /// Whole batches from the one holding `offset`, up to `max_bytes` but at
    /// least one, all below `end_offset`, and the bytes of the buffers they
    /// hold (counted in `read_memory` until dropped). A read goes on into
    /// the following ranges (one per write): a follower or a consumer
    /// catching up at the tail would otherwise get one write's batches per
    /// fetch, however far behind it is.
    pub fn read(&self, offset: i64, max_bytes: u32, end_offset: i64) -> HotRead {
        let Some(at) = self.ranges.partition_point(|(_, r)| r.first_offset <= offset).checked_sub(1) else {
            return HotRead::Missing;
        };
        let range = &self.ranges[at].1;
        if offset > range.last_offset {
            return HotRead::Missing;
        }
        let bytes = &range.bytes;
        // The range holds whole batches the append path checked; should one
        // not parse, the read falls back to the disk rather than panic.
        let mut start = range.first_batch;
        let first = loop {
            let Some(Ok(header)) = bytes.get(start..).map(BatchHeader::parse) else { return HotRead::Missing };
            if header.last_offset() >= offset {
                break header;
            }
            start += header.total_bytes();
        };
        if first.last_offset() >= end_offset {
            return HotRead::Beyond;
        }
        let first_end = start + first.total_bytes();
        debug_assert!(first_end <= bytes.len(), "a hot range holds whole batches");
        if first_end > bytes.len() {
            return HotRead::Missing; // never half a batch: the disk has it whole
        }
        let (end, last) = whole_batches_end(bytes, first_end, start + max_bytes as usize, end_offset);
        let bytes = read_memory::hold(bytes.slice(start..end), bytes.as_ptr(), range.footprint);
        let (mut more, mut held_bytes) = (Vec::new(), range.footprint);
        let mut last_offset = last.unwrap_or(first.last_offset());
        let mut left = (max_bytes as usize).saturating_sub(end - start);
        for (_, next) in self.ranges.iter().skip(at + 1).take(RANGES_PER_READ_MAX - 1) {
            if last_offset != next.first_offset - 1 {
                break; // the previous range was not read to its end
            }
            let Some((part, part_last)) = next.whole_batches(left, end_offset) else { break };
            left -= part.len();
            last_offset = part_last;
            more.push(read_memory::hold(part, next.bytes.as_ptr(), next.footprint));
            held_bytes += next.footprint;
        }
        HotRead::Batches { bytes, more, held_bytes }
    }
}

impl HotRange {
    /// This write's batches from its first, at most `max_bytes` of them and
    /// all below `end_offset`, with the last one's last offset; None if its
    /// first batch does not fit.
    fn whole_batches(&self, max_bytes: usize, end_offset: i64) -> Option<(Bytes, i64)> {
        let start = self.first_batch;
        let first = self.bytes.get(start..).map(BatchHeader::parse)?.ok()?;
        let first_end = start + first.total_bytes();
        if first.last_offset() >= end_offset || first.total_bytes() > max_bytes || first_end > self.bytes.len() {
            return None;
        }
        let (end, last) = whole_batches_end(&self.bytes, first_end, start + max_bytes, end_offset);
        Some((self.bytes.slice(start..end), last.unwrap_or(first.last_offset())))
    }
}

/// What the hot tail has for a read.
#[derive(Debug)]
pub enum HotRead {
    /// Whole batches, `bytes` then `more` (from the following ranges, in
    /// order; empty unless the read went past the first range), holding
    /// `held_bytes` of memory until dropped.
    Batches { bytes: Bytes, more: Vec<Bytes>, held_bytes: usize },
    /// The batch holding the offset reaches the read's end offset: there is
    /// nothing to read below it.
    Beyond,
    /// No range holds the offset: the disk has it.
    Missing,
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
            first_batch: lead,
            first_offset,
            last_offset: next - 1,
            footprint: bytes.len(),
            bytes: Bytes::from(bytes),
        }
    }

    fn batches(read: HotRead) -> (Bytes, usize) {
        match read {
            HotRead::Batches { bytes, more, held_bytes } => {
                assert!(more.is_empty(), "one range read");
                (bytes, held_bytes)
            }
            other => panic!("no batches: {other:?}"),
        }
    }

    /// Every part of a read, in order, as one buffer.
    fn joined(read: HotRead) -> (Vec<u8>, usize, usize) {
        match read {
            HotRead::Batches { bytes, more, held_bytes } => {
                let parts = 1 + more.len();
                let all = more.iter().fold(bytes.to_vec(), |mut all, part| {
                    all.extend_from_slice(part);
                    all
                });
                (all, parts, held_bytes)
            }
            other => panic!("no batches: {other:?}"),
        }
    }

    #[test]
    fn a_read_goes_on_into_the_following_writes_ranges() {
        let two = batch::build(1, &[b"aa".as_slice(), b"bb"]);
        let hot = HotTail::new(1 << 20);
        let log = Rc::new(RefCell::new(LogHotTail::default()));
        // Four writes of one batch each (offsets 0..=7), the first three with a lead.
        for (write, lead) in [(0, 0), (1, 10), (2, 20), (3, 30)] {
            hot.keep(&log, range(2 * write, std::slice::from_ref(&two), lead));
        }
        let (all, parts, held) = joined(log.borrow().read(0, 1 << 20, i64::MAX));
        assert_eq!((all.len(), parts), (4 * two.len(), 4), "every write's batch, no lead bytes");
        assert_eq!(held, 4 * two.len() + 60, "the four ranges' buffers");
        let offsets: Vec<i64> = batch::validate_all(&all).map(|h| h.unwrap().base_offset).collect();
        assert_eq!(offsets, vec![0, 2, 4, 6], "in log order");
        // From the middle of the log, and bounded by max_bytes (whole batches only).
        let (all, parts, _) = joined(log.borrow().read(3, 2 * two.len() as u32 + 1, i64::MAX));
        assert_eq!((all.len(), parts), (2 * two.len(), 2));
        // Bounded by an end offset: none of the batch 4..=5 when the end is 5.
        let (all, parts, _) = joined(log.borrow().read(0, 1 << 20, 5));
        assert_eq!((all.len(), parts), (2 * two.len(), 2));
        // At least one batch however small max_bytes is, and no more.
        assert_eq!(joined(log.borrow().read(0, 1, i64::MAX)).1, 1);
    }

    #[test]
    fn a_read_takes_at_most_a_bounded_number_of_ranges() {
        let one = batch::build(1, &[b"a".as_slice()]);
        let hot = HotTail::new(1 << 20);
        let log = Rc::new(RefCell::new(LogHotTail::default()));
        for offset in 0..(2 * RANGES_PER_READ_MAX as i64) {
            hot.keep(&log, range(offset, std::slice::from_ref(&one), 0));
        }
        let (all, parts, _) = joined(log.borrow().read(0, 1 << 20, i64::MAX));
        assert_eq!((parts, all.len()), (RANGES_PER_READ_MAX, RANGES_PER_READ_MAX * one.len()));
    }

    #[test]
    fn reads_whole_batches_and_evicts_the_shard_oldest_first() {
        let two = batch::build(1, &[b"aa".as_slice(), b"bb"]);
        let hot = HotTail::new(3 * two.len() + 100);
        let a = Rc::new(RefCell::new(LogHotTail::default()));
        let b = Rc::new(RefCell::new(LogHotTail::default()));
        hot.keep(&a, range(0, &[two.clone(), two.clone()], 100));
        let (holding_3, held) = batches(a.borrow().read(3, 1, i64::MAX));
        assert_eq!(held, 2 * two.len() + 100, "the range's whole buffer");
        assert_eq!(holding_3.len(), two.len(), "at least the batch holding the offset");
        assert_eq!(BatchHeader::parse(&holding_3).unwrap().base_offset, 2);
        assert_eq!(&holding_3[8..], &two[8..], "the stored bytes, past the rewritten base offset");
        assert_eq!(batches(a.borrow().read(0, 1 << 20, i64::MAX)).0.len(), 2 * two.len());
        assert!(matches!(a.borrow().read(4, 1 << 20, i64::MAX), HotRead::Missing));
        // Bounded by an end offset: whole batches below it only.
        assert_eq!(batches(a.borrow().read(0, 1 << 20, 4)).0.len(), 2 * two.len());
        assert_eq!(batches(a.borrow().read(0, 1 << 20, 3)).0.len(), two.len(), "the batch 2..=3 reaches 3");
        assert!(matches!(a.borrow().read(2, 1 << 20, 3), HotRead::Beyond), "nothing below 3 from 2 on");
        assert!(matches!(a.borrow().read(0, 1 << 20, 0), HotRead::Beyond));
        hot.keep(&b, range(0, std::slice::from_ref(&two), 0));
        // Over budget: a's range (the oldest) goes, b's stays.
        hot.keep(&b, range(2, std::slice::from_ref(&two), 0));
        assert!(matches!(a.borrow().read(0, 1 << 20, i64::MAX), HotRead::Missing));
        assert_eq!(batches(b.borrow().read(2, 1 << 20, i64::MAX)).0.len(), two.len());
        hot.forget(&b);
        assert_eq!(hot.used.get(), 0);
    }
}
