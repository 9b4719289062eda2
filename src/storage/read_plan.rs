//! Where a read finds its bytes through the page cache: the segment and the
//! batch boundary to start from (the sparse index, then a walk of batch
//! headers), and where to stop. `PartitionLog::read_below` (log.rs) serves
//! from the hot tail or O_DIRECT first; timestamps.rs and truncation plan
//! with `ReadPlan` too.

use std::rc::Rc;

use crate::model::batch::BatchHeader;
use crate::runtime::File;

use super::error::StorageError;
use super::headers::HeaderWalk;
use super::log::PartitionLog;
use super::read_slice::ReadSlice;

/// Where a read starts: a segment, a batch boundary at or before the wanted
/// offset, and the segment's readable end.
pub(super) struct ReadPlan {
    pub segment_base: i64,
    pub file: Rc<File>,
    pub from: u64,
    pub end: u64,
}

impl PartitionLog {
    /// The batches from the one holding `offsets.0` within the plan's
    /// segment and below `offsets.1`, found by walking headers through the
    /// page cache, for splicing.
    pub(super) async fn read_from_page_cache(
        &self,
        plan: &ReadPlan,
        (offset, end_offset): (i64, i64),
        max_bytes: u32,
    ) -> Result<Option<ReadSlice>, StorageError> {
        let mut walk = HeaderWalk::new(self.dir(), plan.segment_base, plan.file.clone(), plan.end);
        let Some((start, first)) = walk.find_offset(plan.from, offset).await? else {
            return Ok(None);
        };
        if first.last_offset() >= end_offset {
            return Ok(None);
        }
        let first_end = start + first.total_bytes() as u64;
        let mut limit = start + (max_bytes as u64).max(first.total_bytes() as u64);
        if end_offset < self.written_end_offset() {
            // The end offset may fall in this segment: no byte from the
            // batch that reaches it on.
            let indexed = self.index_position(plan, end_offset).unwrap_or(0).max(first_end);
            if indexed < limit {
                if let Some((reaching, _)) = walk.find_offset(indexed, end_offset).await? {
                    limit = limit.min(reaching);
                }
            }
        }
        let end = self.read_end(&mut walk, plan.segment_base, first_end, limit).await?;
        debug_assert!(end > start && end <= plan.end);
        Ok(Some(ReadSlice::File { file: plan.file.clone(), position: start, bytes: (end - start) as u32 }))
    }

    /// Where the sparse index of the plan's segment says the batch holding
    /// `offset` starts at the latest; None when the segment no longer holds
    /// the plan's file (compaction swapped it).
    fn index_position(&self, plan: &ReadPlan, offset: i64) -> Option<u64> {
        let mut state = self.state().borrow_mut();
        let segment = state.segments.segment_mut(plan.segment_base).filter(|s| Rc::ptr_eq(&s.file, &plan.file))?;
        Some(segment.index.position_for(segment.relative(offset)) as u64)
    }

    pub(super) fn plan_read(&self, offset: i64, end_offset: i64) -> Result<Option<ReadPlan>, StorageError> {
        let state = self.state().borrow();
        let (log_start, written_end_offset) = (state.segments.log_start_offset(), state.segments.written_end_offset());
        if offset < log_start || offset > written_end_offset {
            return Err(StorageError::OffsetOutOfRange { offset, log_start, written_end_offset });
        }
        if offset >= written_end_offset.min(end_offset) {
            return Ok(None);
        }
        let at = state.segments.segment_for(offset);
        let segment = &state.segments.all()[at];
        let (from, segment_base) = (segment.index.position_for(segment.relative(offset)) as u64, segment.base_offset);
        drop(state);
        Ok(self.segment_plan(at, from).or_else(|| self.plan_after(segment_base)))
    }

    /// The first segment after the one based at `segment_base` that has
    /// readable bytes. Found by base offset, not position: segments may be
    /// removed while a read awaits (retention, compaction), and compaction
    /// may leave a segment empty.
    pub(super) fn plan_after(&self, segment_base: i64) -> Option<ReadPlan> {
        let at = {
            let state = self.state().borrow();
            let after = state.segments.after(segment_base);
            after + state.segments.all()[after..].iter().position(|s| s.readable_bytes > 0)?
        };
        self.segment_plan(at, 0)
    }

    fn segment_plan(&self, at: usize, from: u64) -> Option<ReadPlan> {
        let state = self.state().borrow();
        let segment = state.segments.all().get(at)?;
        (from < segment.readable_bytes).then(|| ReadPlan {
            segment_base: segment.base_offset,
            file: segment.file.clone(),
            from,
            end: segment.readable_bytes,
        })
    }

    /// The last batch boundary at or below `limit` (capped at the readable
    /// end), walking from `from`, the end of the first batch. The sparse index
    /// skips most of the walk.
    async fn read_end(
        &self,
        walk: &mut HeaderWalk<'_>,
        segment_base: i64,
        from: u64,
        limit: u64,
    ) -> Result<u64, StorageError> {
        if walk.end() <= limit {
            return Ok(walk.end());
        }
        let indexed = {
            let mut state = self.state().borrow_mut();
            let segment = state.segments.segment_mut(segment_base).filter(|s| Rc::ptr_eq(&s.file, walk.file()));
            segment.map_or(0, |s| s.index.boundary_at_or_below(limit))
        };
        walk.boundary_at_or_below(indexed.max(from), limit).await
    }

    /// The headers of the idempotent batches (those with a producer id and a
    /// sequence) among the last `window` bytes of the log, oldest first: what
    /// the shard rebuilds its producer table from at start-up, so a batch
    /// written just before a crash and retried after it is not stored twice.
    /// Kafka rebuilds from producer snapshots plus the log; a window is
    /// enough here because a retry follows its original within the
    /// producer's delivery timeout, and nothing is appended while the broker
    /// is down.
    pub async fn recent_idempotent_batches(&self, window: u64) -> Result<Vec<BatchHeader>, StorageError> {
        let plans: Vec<ReadPlan> = {
            let state = self.state().borrow();
            let mut left = window;
            let mut plans = Vec::new();
            for segment in state.segments.all().iter().rev() {
                if left == 0 {
                    break;
                }
                let end = segment.readable_bytes;
                let from = segment.index.boundary_at_or_below(end.saturating_sub(left));
                left = left.saturating_sub(end - from);
                if from < end {
                    let file = segment.file.clone();
                    plans.push(ReadPlan { segment_base: segment.base_offset, file, from, end });
                }
            }
            plans
        };
        let mut batches = Vec::new();
        for plan in plans.into_iter().rev() {
            let mut walk = HeaderWalk::new(self.dir(), plan.segment_base, plan.file, plan.end);
            walk.for_each(plan.from, |h| {
                if h.producer_id >= 0 && h.base_sequence >= 0 {
                    batches.push(*h);
                }
            })
            .await?;
        }
        Ok(batches)
    }
}
