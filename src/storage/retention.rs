//! Retention: which of a log's oldest segments go, moving the log start
//! offset, and the log start offset checkpoint.
//!
//! The rules are Kafka's (`UnifiedLog.deleteOldSegments`): a segment goes
//! when its largest timestamp is older than `retention.ms`, when the
//! partition stays at least `retention.bytes` large without it, or when the
//! whole segment lies below the log start offset (DeleteRecords). Only a
//! prefix of the log is deleted, and never a segment holding offsets at or
//! above the written end. When every segment qualifies, the active one is
//! rolled first, since a log always keeps one (empty) segment at its end.
//!
//! ```text
//! log-start-offset.checkpoint   "0\n<log start offset>\n" (format version, offset)
//! ```
//!
//! DeleteRecords can move the start into the middle of a segment, so the
//! start cannot always be derived from the first segment's base offset: it is
//! written to the checkpoint (temp file, fsync, rename, fsync of the
//! directory) before the new start is answered or used. At open the start is
//! the larger of the checkpoint and the first segment's base; a missing or
//! unreadable checkpoint only loses start offsets inside a segment.

use std::path::{Path, PathBuf};

use super::error::{IoContext, StorageError};
use super::log::PartitionLog;
use super::segment::{self, Segment};

const CHECKPOINT_FILE: &str = "log-start-offset.checkpoint";
const CHECKPOINT_VERSION: u32 = 0;

/// A topic's deletion settings; negative means no limit, as in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub retention_ms: i64,
    pub retention_bytes: i64,
}

impl RetentionPolicy {
    /// Keep everything above the log start offset (cleanup.policy=compact,
    /// or only applying a DeleteRecords).
    pub const KEEP: RetentionPolicy = RetentionPolicy { retention_ms: -1, retention_bytes: -1 };
}

/// What retention needs to know of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentView {
    pub base_offset: i64,
    pub bytes: u64,
    /// Largest record timestamp; negative when the segment has none.
    pub max_timestamp: i64,
}

/// The log's offsets that bound what may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub log_start_offset: i64,
    pub written_end_offset: i64,
    pub log_end_offset: i64,
}

/// How many of the oldest `segments` (oldest first, the last one active) are
/// to be deleted. May be all of them: the caller then rolls first.
pub fn deletable_segments(segments: &[SegmentView], bounds: Bounds, policy: RetentionPolicy, now_ms: i64) -> usize {
    let total_bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    // Bytes that may go before the partition falls below retention.bytes.
    let excess_bytes = u64::try_from(policy.retention_bytes).ok().and_then(|limit| total_bytes.checked_sub(limit));
    let mut deleted_bytes = 0u64;
    for (at, segment) in segments.iter().enumerate() {
        let next = segments.get(at + 1);
        // Offsets at or above the written end are not yet acknowledged:
        // the log start offset must never pass it.
        let upper_offset = next.map_or(bounds.log_end_offset, |n| n.base_offset);
        let empty_active = next.is_none() && segment.bytes == 0;
        if bounds.written_end_offset < upper_offset || empty_active {
            return at;
        }
        let expired = policy.retention_ms >= 0
            && segment.max_timestamp >= 0
            && now_ms.saturating_sub(segment.max_timestamp) > policy.retention_ms;
        let oversize = excess_bytes.is_some_and(|excess| deleted_bytes + segment.bytes <= excess);
        let below_start = next.is_some_and(|n| n.base_offset <= bounds.log_start_offset);
        if !(expired || oversize || below_start) {
            return at;
        }
        deleted_bytes += segment.bytes;
    }
    segments.len()
}

/// What one deletion removed, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadDeletion {
    pub segments: usize,
    pub bytes: u64,
    pub log_start_offset: i64,
}

impl PartitionLog {
    /// Deletes the oldest segments that `policy` (and the log start offset)
    /// let go: they leave the log at once, their files are unlinked by the
    /// writer task after any write or seal queued before. None when nothing
    /// goes.
    pub fn delete_old_segments(
        &self,
        policy: RetentionPolicy,
        now_ms: i64,
    ) -> Result<Option<HeadDeletion>, StorageError> {
        self.remove_oldest_segments(|views, bounds| deletable_segments(views, bounds, policy, now_ms))
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1: the
    /// written end, which is Kafka's high watermark on a single replica),
    /// durably, then deletes the segments wholly below it.
    /// Returns the new log start offset, and what went if any segment did.
    pub async fn delete_records(&self, offset: i64) -> Result<(i64, Option<HeadDeletion>), StorageError> {
        let written_end_offset = self.written_end_offset();
        let target = if offset == -1 { written_end_offset } else { offset };
        if target < 0 || target > written_end_offset {
            let log_start = self.log_start_offset();
            return Err(StorageError::OffsetOutOfRange { offset, log_start, written_end_offset });
        }
        if !self.raise_log_start(target, write_checkpoint(self.dir(), target)).await? {
            return Ok((self.log_start_offset(), None));
        }
        let deleted = self.delete_old_segments(RetentionPolicy::KEEP, 0)?;
        Ok((self.log_start_offset(), deleted))
    }
}

/// The writer's part of a deletion: unlink each segment's files in `dir`
/// through io_uring, index files before the `.log`, oldest segment first, so
/// a crash half-way leaves a contiguous log (and at worst a `.log` whose
/// index is rebuilt, then deleted again).
pub(super) async fn remove_segment_files(dir: &Path, bases: Vec<i64>) {
    for base in bases {
        let paths = [segment::time_index_path(dir, base), segment::index_path(dir, base), segment::log_path(dir, base)];
        for path in paths {
            match crate::runtime::remove_file(&path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(path = %path.display(), error = %e, "removing a deleted segment's file");
                }
                _ => {}
            }
        }
    }
}

pub(super) fn view(segment: &Segment) -> SegmentView {
    SegmentView { base_offset: segment.base_offset, bytes: segment.size, max_timestamp: segment.max_timestamp }
}

fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

/// The log start offset of a recovered log: the checkpoint's when it is
/// inside the log, else the first segment's base. Synchronous: start-up.
pub(super) fn recovered_start_offset(dir: &Path, first_base: i64, log_end_offset: i64) -> i64 {
    let path = checkpoint_path(dir);
    let checkpoint = match std::fs::read_to_string(&path) {
        Ok(text) => parse_checkpoint(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the log start offset checkpoint");
            None
        }
    };
    let start = checkpoint.unwrap_or(first_base).max(first_base);
    if start > log_end_offset {
        // Records acknowledged before DeleteRecords were lost (a power
        // failure without fsync): the log restarts at its end.
        tracing::warn!(dir = %dir.display(), start, log_end_offset, "log start offset beyond the recovered log end");
        return log_end_offset;
    }
    start
}

fn parse_checkpoint(text: &str) -> Option<i64> {
    let mut lines = text.lines();
    let version: u32 = lines.next()?.trim().parse().ok()?;
    let offset: i64 = lines.next()?.trim().parse().ok()?;
    (version == CHECKPOINT_VERSION && offset >= 0).then_some(offset)
}

/// Replaces the checkpoint crash-safely: a crash leaves the old file or the
/// new one, never a torn one.
pub(super) async fn write_checkpoint(dir: &Path, offset: i64) -> Result<(), StorageError> {
    let path = checkpoint_path(dir);
    let temp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let text = format!("{CHECKPOINT_VERSION}\n{offset}\n").into_bytes();
    let file = crate::runtime::File::create(&temp).await.context(|| format!("creating {}", temp.display()))?;
    let (written, _) = file.write_all_at(text, 0).await;
    written.context(|| format!("writing {}", temp.display()))?;
    file.sync_all().await.context(|| format!("syncing {}", temp.display()))?;
    file.close().await.context(|| format!("closing {}", temp.display()))?;
    crate::runtime::rename(&temp, &path).await.context(|| format!("renaming {}", temp.display()))?;
    let directory = crate::runtime::File::open(dir).await.context(|| format!("opening {}", dir.display()))?;
    directory.sync_all().await.context(|| format!("syncing {}", dir.display()))?;
    directory.close().await.context(|| format!("closing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn segments(specs: &[(i64, u64, i64)]) -> Vec<SegmentView> {
        specs
            .iter()
            .map(|&(base_offset, bytes, max_timestamp)| SegmentView { base_offset, bytes, max_timestamp })
            .collect()
    }

    fn bounds(log_start_offset: i64, written_end_offset: i64, log_end_offset: i64) -> Bounds {
        Bounds { log_start_offset, written_end_offset, log_end_offset }
    }

    fn by_time(retention_ms: i64) -> RetentionPolicy {
        RetentionPolicy { retention_ms, retention_bytes: -1 }
    }

    fn by_size(retention_bytes: i64) -> RetentionPolicy {
        RetentionPolicy { retention_ms: -1, retention_bytes }
    }

    #[test]
    fn time_retention_deletes_the_expired_prefix_only() {
        // The third segment is expired too, but the second keeps it (a prefix only).
        let log = segments(&[(0, 100, NOW - 5000), (10, 100, NOW - 10), (20, 100, NOW - 5000), (30, 100, NOW)]);
        assert_eq!(deletable_segments(&log, bounds(0, 40, 40), by_time(1000), NOW), 1);
        assert_eq!(deletable_segments(&log, bounds(0, 40, 40), by_time(-1), NOW), 0, "-1 keeps everything");
        assert_eq!(
            deletable_segments(&log, bounds(0, 40, 40), by_time(0), NOW),
            3,
            "the active one has now's timestamp"
        );
    }

    #[test]
    fn an_expired_active_segment_goes_too_once_all_is_written() {
        let log = segments(&[(0, 100, NOW - 5000), (10, 100, NOW - 5000)]);
        assert_eq!(deletable_segments(&log, bounds(0, 20, 20), by_time(1000), NOW), 2);
        // Not while part of it is unwritten: the log start would pass the written end.
        assert_eq!(deletable_segments(&log, bounds(0, 15, 20), by_time(1000), NOW), 1);
        // An empty active segment is what a log keeps.
        let emptied = segments(&[(20, 0, i64::MIN)]);
        assert_eq!(deletable_segments(&emptied, bounds(20, 20, 20), by_time(0), NOW), 0);
    }

    #[test]
    fn size_retention_keeps_at_least_retention_bytes() {
        let log = segments(&[(0, 100, NOW), (10, 100, NOW), (20, 100, NOW), (30, 50, NOW)]);
        // 350 bytes, 200 allowed: deleting the first (100) leaves 250, the second 150 < 200.
        assert_eq!(deletable_segments(&log, bounds(0, 40, 40), by_size(200), NOW), 1);
        assert_eq!(deletable_segments(&log, bounds(0, 40, 40), by_size(150), NOW), 2);
        assert_eq!(deletable_segments(&log, bounds(0, 40, 40), by_size(350), NOW), 0);
        assert_eq!(deletable_segments(&log, bounds(0, 40, 40), by_size(0), NOW), 4);
        assert_eq!(deletable_segments(&log, bounds(0, 40, 40), by_size(-1), NOW), 0);
    }

    #[test]
    fn segments_wholly_below_the_log_start_offset_go() {
        let log = segments(&[(0, 100, NOW), (10, 100, NOW), (20, 100, NOW)]);
        assert_eq!(deletable_segments(&log, bounds(15, 30, 30), RetentionPolicy::KEEP, NOW), 1);
        assert_eq!(deletable_segments(&log, bounds(20, 30, 30), RetentionPolicy::KEEP, NOW), 2);
        // The active segment has no next one to prove it is below the start.
        assert_eq!(deletable_segments(&log, bounds(30, 30, 30), RetentionPolicy::KEEP, NOW), 2);
    }

    #[test]
    fn segments_without_timestamps_do_not_expire_by_time() {
        let log = segments(&[(0, 100, -1), (10, 100, NOW)]);
        assert_eq!(deletable_segments(&log, bounds(0, 20, 20), by_time(0), NOW), 0);
    }

    #[test]
    fn checkpoint_text_round_trips_and_refuses_garbage() {
        assert_eq!(parse_checkpoint("0\n42\n"), Some(42));
        assert_eq!(parse_checkpoint("1\n42\n"), None);
        assert_eq!(parse_checkpoint("0\n"), None);
        assert_eq!(parse_checkpoint("0\n-3\n"), None);
        assert_eq!(parse_checkpoint("garbage"), None);
    }
}
