//! Finding records by timestamp (ListOffsets): each segment knows its largest
//! batch timestamp, and its sparse time index where a search may start; the
//! batch headers are walked from there.

use super::error::StorageError;
use super::headers::HeaderWalk;
use super::log::PartitionLog;
use super::read_plan::ReadPlan;

impl PartitionLog {
    /// ListOffsets by timestamp: (base offset, max timestamp) of the first
    /// batch below the written end whose max_timestamp >= `timestamp`.
    /// Batch granularity. The special timestamps -1/-2 are the caller's.
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        let mut searched = None;
        while let Some(plan) = self.timestamp_plan(searched, timestamp) {
            searched = Some(plan.segment_base);
            let mut walk = HeaderWalk::new(self.dir(), plan.segment_base, plan.file, plan.end);
            if let Some(header) = walk.find_timestamp(plan.from, timestamp).await? {
                return Ok(Some((header.base_offset, header.max_timestamp)));
            }
        }
        Ok(None)
    }

    /// The first segment after the one based at `searched` that may hold
    /// `timestamp`, and where its time index says the search can start. By
    /// base offset, not position: retention or the cleaner may remove or
    /// replace segments while a search awaits its reads.
    fn timestamp_plan(&self, searched: Option<i64>, timestamp: i64) -> Option<ReadPlan> {
        let segments = self.segments();
        let segment = segments
            .all()
            .iter()
            .filter(|s| searched.is_none_or(|base| s.base_offset > base))
            .find(|s| s.max_timestamp >= timestamp && s.readable_bytes > 0)?;
        let from = segment
            .time_index
            .search_start(timestamp)
            .map_or(0, |relative| segment.index.position_for(relative) as u64);
        Some(ReadPlan {
            segment_base: segment.base_offset,
            file: segment.file.clone(),
            from: from.min(segment.readable_bytes),
            end: segment.readable_bytes,
        })
    }

    /// The largest batch timestamp in the log (ListOffsets MAX_TIMESTAMP,
    /// KIP-734), or None for a log without batches. Like Kafka's, it may name
    /// a batch not yet under the written end, which a search for it then
    /// does not find.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.segments().all().iter().map(|s| s.max_timestamp).max().filter(|&t| t != i64::MIN)
    }
}
