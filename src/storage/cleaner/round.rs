//! One cleaning round of one log, on the shard that owns it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use crate::model::batch::{self, BatchHeader, HEADER_BYTES};
use crate::model::compression::Decompressor;
use crate::model::records;
use crate::runtime::File;

use super::super::error::{IoContext, StorageError};
use super::super::log::PartitionLog;
use super::super::segment::{self, BatchMeta, Segment};
use super::files;
use super::filter::{self, Filtered, Outcome, Rules};
use super::offset_map::OffsetMap;
use super::CleanerError;

/// Bytes read from a segment at once (more when one batch is larger), and
/// bytes of cleaned batches gathered before one write.
const IO_BYTES: usize = 1 << 20;

/// A compacted topic's cleaning configs.
#[derive(Debug, Clone, Copy)]
pub struct CleanSettings {
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub delete_retention_ms: i64,
}

/// What one round did, for its log line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CleanStats {
    pub dirty_ratio: f64,
    /// The new checkpoint: every offset below it was mapped.
    pub map_end: i64,
    pub segments_rewritten: u32,
    pub segments_removed: u32,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Batches the round could not read and kept as they were (a segment
    /// whose batches cannot be told apart counts once).
    pub batches_unreadable: u64,
    /// Why the first of them could not be read.
    pub unreadable_reason: Option<String>,
}

impl CleanStats {
    fn unreadable(&mut self, why: impl FnOnce() -> String) {
        self.batches_unreadable += 1;
        if self.unreadable_reason.is_none() {
            self.unreadable_reason = Some(why());
        }
    }
}

/// What the cleaner remembers of a log between rounds.
struct LogMemory {
    /// The log it is about: a topic deleted and created again under the same
    /// name has a new log in the same directory.
    log: Weak<PartitionLog>,
    /// The earliest delete horizon of tombstones the last round kept.
    tombstone_horizon_ms: Option<i64>,
}

/// One shard's cleaner: one bounded key map and one bounded decompression
/// buffer, reused for every log.
pub struct Cleaner {
    map: OffsetMap,
    decompressor: Decompressor,
    logs: HashMap<PathBuf, LogMemory>,
}

/// A closed segment, sealed and written whole, as the round found it.
struct Closed {
    base_offset: i64,
    file: Rc<File>,
    bytes: u64,
    max_timestamp: i64,
    /// Base offset of the segment after it.
    next_base: i64,
}

/// The closed segments from the log start on, up to the first one not yet
/// sealed (its seal would rewrite its index files) or not wholly written.
fn closed_segments(log: &PartitionLog) -> Vec<Closed> {
    log.segments()
        .all()
        .windows(2)
        .take_while(|pair| pair[0].readable_bytes == pair[0].size && !log.segment_pending(pair[0].base_offset))
        .map(|pair| Closed {
            base_offset: pair[0].base_offset,
            file: pair[0].file.clone(),
            bytes: pair[0].size,
            max_timestamp: pair[0].max_timestamp,
            next_base: pair[1].base_offset,
        })
        .collect()
}

/// Where a round's dirty section lies and whether it is worth cleaning.
struct Plan {
    closed: Vec<Closed>,
    first_dirty: i64,
    first_uncleanable: i64,
    dirty_ratio: f64,
    /// The log's truncation count when planned: a truncation since may
    /// have cut what the round mapped.
    truncations: u64,
}

impl Plan {
    /// max.compaction.lag.ms: whether the first dirty segment's first batch
    /// (Kafka's measure) is older than the lag. One header read.
    async fn overdue(&self, log: &PartitionLog, settings: &CleanSettings, now_ms: i64) -> Result<bool, CleanerError> {
        if settings.max_compaction_lag_ms == i64::MAX {
            return Ok(false);
        }
        let Some(first) = self.closed.iter().find(|c| c.next_base > self.first_dirty && c.bytes > 0) else {
            return Ok(false);
        };
        let (result, head) = first.file.read_exact_at(Vec::with_capacity(HEADER_BYTES), 0).await;
        let path = segment::log_path(log.dir(), first.base_offset);
        result.context(|| format!("cleaner reading {}", path.display()))?;
        // An unreadable header tells no age: the dirty ratio alone decides.
        let Ok(header) = BatchHeader::parse(&head) else { return Ok(false) };
        Ok(now_ms.saturating_sub(header.max_timestamp) > settings.max_compaction_lag_ms)
    }
}

impl Cleaner {
    /// A cleaner whose key map takes at most `dedupe_buffer_bytes`.
    pub fn new(dedupe_buffer_bytes: u64) -> Cleaner {
        Cleaner {
            map: OffsetMap::with_bytes(dedupe_buffer_bytes),
            decompressor: Decompressor::new(),
            logs: HashMap::new(),
        }
    }

    /// Forgets logs that are gone (deleted topics).
    pub fn forget_dropped_logs(&mut self) {
        self.logs.retain(|_, memory| memory.log.strong_count() > 0);
    }

    /// Cleans `log` if it is due. None when it was not.
    pub async fn clean(
        &mut self,
        log: &Rc<PartitionLog>,
        settings: &CleanSettings,
        now_ms: i64,
    ) -> Result<Option<CleanStats>, CleanerError> {
        let Some(plan) = self.plan(log, settings, now_ms).await? else { return Ok(None) };
        let mut stats = CleanStats { dirty_ratio: plan.dirty_ratio, ..CleanStats::default() };
        let map_end = self.build_map(log, &plan).await?;
        stats.map_end = map_end;
        // Before any swap: recovery reads gaps below it as compaction's.
        if map_end != log.cleaned_to() && !log.advance_cleaned_to(map_end, plan.truncations).await? {
            tracing::info!(dir = %log.dir().display(), "log truncated while it was mapped: round aborted");
            self.map.clear();
            return Ok(None);
        }
        let rules = Rules { map: &self.map, map_end, now_ms, delete_retention_ms: settings.delete_retention_ms };
        let mut horizon: Option<i64> = None;
        for closed in plan.closed.iter().take_while(|c| c.base_offset < map_end) {
            let cleaned = clean_segment(log, closed, &rules, &mut self.decompressor, &mut stats).await?;
            let Some(cleaned) = cleaned else { break };
            horizon = min_some(horizon, cleaned.tombstone_horizon_ms);
            if cleaned.changed && !install(log, closed, cleaned.segment, &mut stats).await? {
                break;
            }
        }
        let memory = self.logs.get_mut(log.dir()).expect("plan remembers the log");
        memory.tombstone_horizon_ms = horizon;
        self.map.clear();
        Ok(Some(stats))
    }

    async fn plan(
        &mut self,
        log: &Rc<PartitionLog>,
        settings: &CleanSettings,
        now_ms: i64,
    ) -> Result<Option<Plan>, CleanerError> {
        if log.is_closing() {
            return Ok(None);
        }
        let closed = closed_segments(log);
        let Some(last) = closed.last() else { return Ok(None) };
        let lag_start = now_ms.saturating_sub(settings.min_compaction_lag_ms);
        let first_uncleanable = closed
            .iter()
            .find(|c| settings.min_compaction_lag_ms > 0 && c.max_timestamp > lag_start)
            .map_or(last.next_base, |c| c.base_offset);
        let remembered = || LogMemory { log: Rc::downgrade(log), tombstone_horizon_ms: None };
        let memory = self.logs.entry(log.dir().to_path_buf()).or_insert_with(remembered);
        if !Weak::ptr_eq(&memory.log, &Rc::downgrade(log)) {
            *memory = remembered();
        }
        let log_start = closed[0].base_offset;
        // Retention may have moved the start past it; a truncation below it.
        let first_dirty = match log.cleaned_to() {
            c if c < log_start || c > log.log_end_offset() => log_start,
            c => c,
        };
        let (mut dirty_bytes, mut clean_bytes) = (0u64, 0u64);
        for c in &closed {
            if c.next_base <= first_dirty {
                clean_bytes += c.bytes;
            } else if c.base_offset < first_uncleanable {
                dirty_bytes += c.bytes;
            }
        }
        let dirty_ratio = match dirty_bytes + clean_bytes {
            0 => 0.0,
            all => dirty_bytes as f64 / all as f64,
        };
        let dirty_due = dirty_bytes > 0 && dirty_ratio >= settings.min_cleanable_dirty_ratio;
        let horizon_due = memory.tombstone_horizon_ms.is_some_and(|h| now_ms >= h);
        let plan = Plan { closed, first_dirty, first_uncleanable, dirty_ratio, truncations: log.truncations() };
        let due = dirty_due || horizon_due || (dirty_bytes > 0 && plan.overdue(log, settings, now_ms).await?);
        Ok(due.then_some(plan))
    }

    /// Maps the dirty section's keys; returns the offset the map ends at.
    /// Keys of batches it cannot read stay out of the map (see the module);
    /// `clean_segment` meets them again and counts them.
    async fn build_map(&mut self, log: &PartitionLog, plan: &Plan) -> Result<i64, CleanerError> {
        self.map.clear();
        let mut end = plan.first_dirty;
        let dirty =
            plan.closed.iter().filter(|c| c.next_base > plan.first_dirty && c.base_offset < plan.first_uncleanable);
        for closed in dirty {
            let mut reader = BatchReader::new(log.dir(), closed);
            loop {
                let bytes = match reader.next().await {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => break,
                    // The rest of the segment stays unmapped.
                    Err(StorageError::Corrupt { .. }) => break,
                    Err(e) => return Err(e.into()),
                };
                match self.map_batch(bytes, plan.first_dirty) {
                    Ok(Mapped::Yes(last_offset)) => end = last_offset + 1,
                    Ok(Mapped::Skipped) => {}
                    Ok(Mapped::NoRoom { records }) if end == plan.first_dirty => {
                        return Err(CleanerError::MapTooSmall { keys: self.map.len(), records });
                    }
                    Ok(Mapped::NoRoom { .. }) => return Ok(end),
                    // Unreadable: its keys stay out of the map.
                    Err(_) => {}
                }
                tokio::task::yield_now().await;
            }
            end = closed.next_base;
        }
        Ok(end)
    }

    /// Puts the keys of one batch of the dirty section in the map.
    fn map_batch(&mut self, bytes: &[u8], first_dirty: i64) -> Result<Mapped, CleanerError> {
        let header = batch::validate_stored(bytes)?;
        if header.last_offset() < first_dirty || header.is_control() {
            return Ok(Mapped::Skipped);
        }
        let map = &mut self.map;
        self.decompressor.with_records(&header, bytes, |section| {
            // Counted, not claimed: only a checked section's records_count is true.
            records::check(&header, section)?;
            if !map.has_room(header.records_count.max(0) as usize) {
                return Ok(Mapped::NoRoom { records: header.records_count });
            }
            for record in records::walk(header, section) {
                let record = record?.record;
                if let (Some(key), true) = (record.key, record.offset >= first_dirty) {
                    map.put(key, record.offset);
                }
            }
            Ok(Mapped::Yes(header.last_offset()))
        })?
    }
}

/// What became of one batch while the map was built.
enum Mapped {
    /// Its keys are in the map; its last offset.
    Yes(i64),
    /// Below the dirty section, or a control batch: nothing to map.
    Skipped,
    /// The map cannot take its records.
    NoRoom { records: i32 },
}

fn min_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A segment's cleaned copy, written and fsynced under its `.cleaned` name.
struct CleanedSegment {
    segment: Segment,
    /// Some batch was dropped or rebuilt: the copy differs from the original.
    changed: bool,
    tombstone_horizon_ms: Option<i64>,
}

/// Writes the cleaned copy of `closed`. None when the log began closing.
/// A batch whose records it cannot read is copied as it is. A segment holding
/// a batch whose header does not hold (a CRC that fails, batches that cannot
/// be told apart) is left as it is, indexes included: that batch's offsets
/// cannot be trusted to index a copy.
async fn clean_segment(
    log: &PartitionLog,
    closed: &Closed,
    rules: &Rules<'_>,
    decompressor: &mut Decompressor,
    stats: &mut CleanStats,
) -> Result<Option<CleanedSegment>, CleanerError> {
    if log.is_closing() {
        return Ok(None);
    }
    let path = files::cleaned_path(log.dir(), closed.base_offset);
    let mut cleaned = CleanedSegment {
        segment: Segment::new(closed.base_offset, segment::open_log_file(&path, true)?),
        changed: false,
        tombstone_horizon_ms: None,
    };
    let mut pending: Vec<u8> = Vec::with_capacity(IO_BYTES);
    let mut written = 0u64;
    let mut reader = BatchReader::new(log.dir(), closed);
    loop {
        let position = reader.position();
        let bytes = match reader.next().await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => break,
            Err(e @ StorageError::Corrupt { .. }) => {
                stats.unreadable(|| e.to_string());
                return keep_whole(&path, closed, cleaned, stats);
            }
            Err(e) => return Err(e.into()),
        };
        let outcome = match filter::filter_batch(bytes, rules, decompressor) {
            Ok(outcome) => outcome,
            Err(e @ CleanerError::Batch(_)) => {
                stats.unreadable(|| unreadable_batch(log.dir(), closed, position, &e));
                return keep_whole(&path, closed, cleaned, stats);
            }
            Err(e) => {
                stats.unreadable(|| unreadable_batch(log.dir(), closed, position, &e));
                Outcome::unchanged()
            }
        };
        stats.records_removed += outcome.records_removed as u64;
        cleaned.tombstone_horizon_ms = min_some(cleaned.tombstone_horizon_ms, outcome.tombstone_horizon_ms);
        let kept = match &outcome.batch {
            Filtered::Keep => bytes,
            Filtered::Drop => {
                cleaned.changed = true;
                continue;
            }
            Filtered::Rebuilt(rebuilt) => {
                cleaned.changed = true;
                &rebuilt[..]
            }
        };
        let header = BatchHeader::parse(kept)?;
        let meta = BatchMeta {
            position: cleaned.segment.size,
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
            bytes: kept.len() as u64,
        };
        cleaned.segment.track(&meta, log.config().index_interval_bytes);
        pending.extend_from_slice(kept);
        if pending.len() >= IO_BYTES {
            pending = write_at(&cleaned.segment.file, &path, pending, &mut written).await?;
        }
        tokio::task::yield_now().await;
    }
    if !pending.is_empty() {
        write_at(&cleaned.segment.file, &path, pending, &mut written).await?;
    }
    debug_assert_eq!(written, cleaned.segment.size);
    stats.bytes_before += closed.bytes;
    if !cleaned.changed {
        stats.bytes_after += closed.bytes;
        std::fs::remove_file(&path).context(|| format!("removing {}", path.display()))?;
        return Ok(Some(cleaned));
    }
    cleaned.segment.file.sync_data().await.context(|| format!("syncing {}", path.display()))?;
    cleaned.segment.seal_time_index();
    cleaned.segment.readable_bytes = cleaned.segment.size;
    stats.bytes_after += cleaned.segment.size;
    Ok(Some(cleaned))
}

/// Gives up the cleaned copy of `closed`: the segment stays as it is.
fn keep_whole(
    path: &Path,
    closed: &Closed,
    cleaned: CleanedSegment,
    stats: &mut CleanStats,
) -> Result<Option<CleanedSegment>, CleanerError> {
    stats.bytes_before += closed.bytes;
    stats.bytes_after += closed.bytes;
    std::fs::remove_file(path).context(|| format!("removing {}", path.display()))?;
    Ok(Some(CleanedSegment { changed: false, ..cleaned }))
}

/// Where a batch the round cannot read lies, and what is wrong with it.
fn unreadable_batch(dir: &Path, closed: &Closed, position: u64, error: &CleanerError) -> String {
    format!("{} at {position}: {error}", segment::log_path(dir, closed.base_offset).display())
}

/// Writes `buf` at `*written` and hands the buffer back, emptied.
async fn write_at(file: &File, path: &Path, buf: Vec<u8>, written: &mut u64) -> Result<Vec<u8>, StorageError> {
    let len = buf.len() as u64;
    let (result, mut buf) = file.write_all_at(buf, *written).await;
    result.context(|| format!("writing {} at {written}", path.display()))?;
    *written += len;
    buf.clear();
    Ok(buf)
}

/// Puts the cleaned copy in the place of `closed`, if the log still holds
/// that very segment (retention may have removed it meanwhile); false
/// aborts the round. An emptied segment is removed instead, unless it is the
/// first, whose base offset is the log start offset.
async fn install(
    log: &PartitionLog,
    closed: &Closed,
    mut cleaned: Segment,
    stats: &mut CleanStats,
) -> Result<bool, CleanerError> {
    let (dir, base) = (log.dir(), closed.base_offset);
    let cleaned_path = files::cleaned_path(dir, base);
    let indexes = {
        let closing = log.is_closing();
        let mut segments = log.segments_mut();
        let at = segments.all().iter().position(|s| s.base_offset == base && Rc::ptr_eq(&s.file, &closed.file));
        let Some(at) = at.filter(|_| !closing) else {
            drop(segments);
            tracing::info!(dir = %dir.display(), base, "segment changed while it was cleaned: round aborted");
            std::fs::remove_file(&cleaned_path).context(|| format!("removing {}", cleaned_path.display()))?;
            return Ok(false);
        };
        if cleaned.size == 0 && at > 0 {
            segments.remove(at);
            drop(segments);
            std::fs::remove_file(&cleaned_path).context(|| format!("removing {}", cleaned_path.display()))?;
            segment::remove_files(dir, base)
                .context(|| format!("removing emptied segment {base} of {}", dir.display()))?;
            stats.segments_removed += 1;
            None
        } else {
            // Renames only, in the same step as the check above: nothing else
            // runs on the shard in between.
            files::commit_swap(dir, base)
                .context(|| format!("swapping in cleaned segment {base} of {}", dir.display()))?;
            let old = &segments.all()[at];
            cleaned.next_offset = old.next_offset;
            cleaned.first_append_ms = old.first_append_ms;
            let indexes = cleaned.encoded_indexes();
            segments.replace(at, cleaned);
            stats.segments_rewritten += 1;
            Some(indexes)
        }
    };
    files::sync_dir(dir).await?;
    if let Some(indexes) = indexes {
        segment::write_index_files(dir, base, indexes).await?;
    }
    Ok(true)
}

/// Reads the batches of a closed segment in large io_uring reads.
struct BatchReader<'a> {
    dir: &'a Path,
    base_offset: i64,
    file: Rc<File>,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    at: usize,
}

impl<'a> BatchReader<'a> {
    fn new(dir: &'a Path, closed: &Closed) -> BatchReader<'a> {
        BatchReader {
            dir,
            base_offset: closed.base_offset,
            file: closed.file.clone(),
            end: closed.bytes,
            buf: Vec::new(),
            buf_start: 0,
            at: 0,
        }
    }

    /// The next whole batch, None at the segment's end.
    async fn next(&mut self) -> Result<Option<&[u8]>, StorageError> {
        let position = self.buf_start + self.at as u64;
        if position >= self.end {
            return Ok(None);
        }
        if self.buf.len() - self.at < HEADER_BYTES {
            self.fill(position, HEADER_BYTES).await?;
        }
        let header = BatchHeader::parse(&self.buf[self.at..]).map_err(|e| self.corrupt(position, e.to_string()))?;
        let bytes = header.total_bytes();
        if position + bytes as u64 > self.end {
            return Err(self.corrupt(position, format!("batch of {bytes} bytes crosses the segment end {}", self.end)));
        }
        if self.buf.len() - self.at < bytes {
            self.fill(position, bytes).await?;
        }
        let batch = &self.buf[self.at..self.at + bytes];
        self.at += bytes;
        Ok(Some(batch))
    }

    async fn fill(&mut self, position: u64, needed: usize) -> Result<(), StorageError> {
        let len = (needed.max(IO_BYTES) as u64).min(self.end - position) as usize;
        if len < needed {
            return Err(self.corrupt(position, format!("only {len} bytes left, {needed} needed")));
        }
        let result = segment::read_exact_into(&self.file, &mut self.buf, position, len).await;
        self.buf_start = position;
        self.at = 0;
        if let Err(e) = result {
            let path = segment::log_path(self.dir, self.base_offset);
            return Err(StorageError::io(format!("cleaner reading {} at {position}", path.display()), e));
        }
        Ok(())
    }

    /// Where in the segment the batch `next` returns next begins.
    fn position(&self) -> u64 {
        self.buf_start + self.at as u64
    }

    fn corrupt(&self, position: u64, reason: String) -> StorageError {
        StorageError::Corrupt {
            path: segment::log_path(self.dir, self.base_offset).display().to_string(),
            position,
            reason,
        }
    }
}
