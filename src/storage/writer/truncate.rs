//! A follower's truncation as a job of the writer (see `../truncate.rs` for
//! what it does and the order of its steps): it runs after every write,
//! seal and deletion queued before it, and appends are refused meanwhile.

use std::rc::Rc;

use crate::runtime::file_from_std;

use super::super::error::{IoContext, StorageError};
use super::super::headers::HeaderWalk;
use super::super::log::PartitionLog;
use super::super::read_plan::ReadPlan;
use super::super::segment::{self, Segment};
use super::super::truncate::Truncation;
use super::Writer;

impl Writer {
    /// The writer task's part: every earlier write has completed (or failed
    /// and rolled back).
    pub(super) async fn truncate(&self, log: &PartitionLog, truncation: Truncation) -> Result<(), StorageError> {
        let result = match truncation {
            Truncation::To(offset) => self.cut_at(log, offset).await,
            Truncation::FullyAt(offset) => self.restart_at(log, offset).await,
        };
        let gone = match result {
            Ok(gone) => gone,
            Err(error @ StorageError::TruncateBelowStart { .. }) => {
                truncated(log, &[]);
                return Err(error);
            }
            Err(error) => {
                // The files may now hold more than the log in memory says:
                // no more appends until a restart recovers them.
                self.go_offline(log, &error);
                truncated(log, &[]);
                return Err(error);
            }
        };
        truncated(log, &gone);
        Ok(())
    }

    /// Returns the segments that left the log.
    async fn cut_at(&self, log: &PartitionLog, offset: i64) -> Result<Vec<Segment>, StorageError> {
        let direct_io = log.config().direct_io;
        // Retention may remove segments and the cleaner swap one in while
        // the cut is looked for: it is looked for again then.
        let (gone, base, bytes, next_offset, cut_file) = loop {
            let Some(ReadPlan { segment_base: base, file, from, end }) = cut_segment(log, offset)? else {
                // A failed write rolled the log end back below it meanwhile.
                return Ok(Vec::new());
            };
            // Where the first batch to go starts: the one holding `offset`
            // or, in a gap, the first after it. None: the segment keeps all.
            let mut walk = HeaderWalk::new(&self.dir, base, file.clone(), end);
            // The log end moves back to that batch's base offset, not below
            // the log start (which DeleteRecords may put inside a batch).
            let (bytes, next_offset) = match walk.find_offset(from.min(end), offset).await? {
                Some((position, header)) => (position, offset.min(header.base_offset)),
                None => (end, offset),
            };
            let next_offset = next_offset.max(log.log_start_offset());
            let mut state = log.state().borrow_mut();
            let segments = &mut state.segments;
            let Some(at) = segments.all().iter().position(|s| s.base_offset == base && Rc::ptr_eq(&s.file, &file))
            else {
                continue;
            };
            if next_offset < segments.log_start_offset() {
                let log_start = segments.log_start_offset();
                return Err(StorageError::TruncateBelowStart { offset: next_offset, log_start });
            }
            let gone = segments.truncate(at, bytes, next_offset, log.config().index_interval_bytes);
            let path = segment::log_path(&self.dir, base);
            let active = segments.active();
            // A descriptor of its own for the cut segment: a cleaning round
            // that read the old one must not swap its copy in (it checks the
            // descriptor), and the O_DIRECT one is opened again on demand.
            let reopened = segment::open_log_file(&path, false)?;
            let old_files = [active.file.clone(), active.write_file()];
            active.file = Rc::new(file_from_std(reopened));
            active.direct = None;
            active.open_writer(&path, direct_io, self.io)?;
            let cut_file = active.file.clone();
            // Nothing written through the old descriptors is unsynced now
            // (the cut is fdatasynced below): they must not stay held open.
            for file in &old_files {
                state.writer.forget_unsynced(file);
            }
            break (gone, base, bytes, next_offset, cut_file);
        };
        log.forget_cached_reads();
        log.lower_cleaned_to(next_offset).await?;
        for later in gone.iter().rev() {
            self.remove_files(later.base_offset, true).await?;
        }
        self.remove_files(base, false).await?;
        let path = segment::log_path(&self.dir, base);
        crate::runtime::set_len(&cut_file, bytes).context(|| format!("cutting {} at {bytes}", path.display()))?;
        self.io.sync_data(&cut_file).await.context(|| format!("fdatasync of {}", path.display()))?;
        self.sync_own_dir().await?;
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset = next_offset, "log truncated");
        Ok(gone)
    }

    /// Returns the segments that left the log.
    async fn restart_at(&self, log: &PartitionLog, offset: i64) -> Result<Vec<Segment>, StorageError> {
        log.lower_cleaned_to(offset).await?;
        let old: Vec<i64> = log.segments().all().iter().rev().map(|s| s.base_offset).collect();
        // Newest first: a crash half-way leaves a prefix of the old log.
        for base in old {
            self.remove_files(base, true).await?;
        }
        self.sync_own_dir().await?;
        let segment = Segment::create(&self.dir, offset, log.config().direct_io, self.io)?;
        let gone = log.state().borrow_mut().segments.restart(segment);
        log.forget_cached_reads();
        self.sync_own_dir().await?;
        log.write_log_start_checkpoint(offset).await?;
        tracing::info!(dir = %self.dir.display(), offset, "log truncated fully: it starts afresh");
        Ok(gone)
    }

    /// Unlinks a segment's index files and, when `with_log`, then its `.log`
    /// (so a crash between leaves a `.log` whose index is rebuilt). Any
    /// failure but a missing file stops the truncation.
    async fn remove_files(&self, base: i64, with_log: bool) -> Result<(), StorageError> {
        let log = segment::log_path(&self.dir, base);
        let paths = [segment::time_index_path(&self.dir, base), segment::index_path(&self.dir, base), log];
        for path in &paths[..if with_log { 3 } else { 2 }] {
            match crate::runtime::remove_file(path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StorageError::io(format!("removing {}", path.display()), e));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The segment holding `offset`, where its index says to look for it,
/// and its readable end; None when `offset` is at or past the log end.
fn cut_segment(log: &PartitionLog, offset: i64) -> Result<Option<ReadPlan>, StorageError> {
    let state = log.state().borrow();
    let segments = &state.segments;
    let log_start = segments.log_start_offset();
    if offset < log_start {
        return Err(StorageError::TruncateBelowStart { offset, log_start });
    }
    if offset >= segments.log_end_offset() {
        return Ok(None);
    }
    let segment = &segments.all()[segments.segment_for(offset)];
    let from = segment.index.position_for(segment.relative(offset)) as u64;
    let (segment_base, file, end) = (segment.base_offset, segment.file.clone(), segment.readable_bytes);
    Ok(Some(ReadPlan { segment_base, file, from, end }))
}

/// The truncation has run (or failed): appends are taken again, from the
/// log end as it now is.
fn truncated(log: &PartitionLog, gone: &[Segment]) {
    let mut state = log.state().borrow_mut();
    let log_end_offset = state.segments.log_end_offset();
    state.writer.truncated(gone, log_end_offset);
}
