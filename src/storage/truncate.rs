//! A follower's truncations (Kafka's `UnifiedLog.truncateTo` and
//! `truncateFullyAndStartAt`): when OffsetsForLeaderEpoch says its log
//! diverged from the new leader's, or the leader's log starts past its end.
//!
//! A truncation is a job of the writer task (writer.rs): it runs after every
//! write, seal and deletion queued before it, and appends are refused
//! (`StorageError::Truncating`) from the call until it has run, so nothing
//! is in flight while the files change. It is durable before it answers,
//! and a crash at any step leaves what recovery opens as a prefix of the old
//! log:
//!
//! ```text
//! truncate_to(offset):    1. later segments' files go, newest first (index
//!                            files, then the .log): a crash leaves a shorter
//!                            run of whole segments, never a gap
//!                         2. the cut segment's index files go (it is active
//!                            again, and recovery rebuilds a missing index)
//!                         3. its .log is cut at the batch boundary, fdatasynced
//!                         4. the directory is fsynced
//! truncate_fully_and_start_at(offset):
//!                         the old segments' files go, newest first; the
//!                         directory is fsynced; the new empty segment is
//!                         created (directory fsynced); then the log start
//!                         checkpoint. A crash before the end leaves a prefix
//!                         of the old log (perhaps empty), which the follower
//!                         truncates fully again.
//! ```
//!
//! The log in memory changes at once (reads see the truncated log), before
//! the files do; the hot tail and the read-ahead are dropped, so no read
//! answers bytes that later appends replace at the same offsets.

use std::rc::Rc;

use crate::runtime::file_from_std;

use super::error::{IoContext, StorageError};
use super::headers::HeaderWalk;
use super::log::{PartitionLog, ReadPlan};
use super::segment::{self, Segment};

/// What a queued truncation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// Remove every batch at or after this offset.
    To(i64),
    /// Remove everything; the log starts (and ends) at this offset.
    FullyAt(i64),
}

impl PartitionLog {
    /// Removes every batch at or after `offset`: a batch holding `offset`
    /// goes whole, as in Kafka, and the log end moves back to `offset` (or
    /// that batch's base offset). Waits for pending writes first; appends
    /// are refused while it runs. Durable and crash-safe (see the module
    /// comment). Nothing to do when `offset` is at or past the log end;
    /// refused below the log start offset.
    pub async fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let log_start = self.log_start_offset();
        if offset < log_start {
            return Err(StorageError::TruncateBelowStart { offset, log_start });
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.queue_truncation(Truncation::To(offset)).await
    }

    /// Removes the whole log and starts it afresh, empty, at `offset`: its
    /// log start offset and log end (a follower whose leader's log starts
    /// past this log's end). Waits for pending writes first; durable and
    /// crash-safe (see the module comment).
    pub async fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        assert!(offset >= 0, "a log starts at a non-negative offset, not {offset}");
        self.queue_truncation(Truncation::FullyAt(offset)).await
    }

    async fn queue_truncation(&self, truncation: Truncation) -> Result<(), StorageError> {
        let reply = {
            let mut inner = self.inner.borrow_mut();
            if let Some(refusal) = inner.writer.refusal(&self.dir) {
                return Err(refusal);
            }
            inner.writer.truncate(truncation)
        };
        self.wake.notify_one();
        reply.await.unwrap_or(Err(StorageError::Closed))
    }

    /// The writer task's part: every earlier write has completed (or failed
    /// and rolled back).
    pub(super) async fn run_truncation(&self, truncation: Truncation) -> Result<(), StorageError> {
        let result = match truncation {
            Truncation::To(offset) => self.cut_at(offset).await,
            Truncation::FullyAt(offset) => self.restart_at(offset).await,
        };
        let gone = match result {
            Ok(gone) => gone,
            Err(error @ StorageError::TruncateBelowStart { .. }) => {
                self.inner.borrow_mut().writer.truncated(&[]);
                return Err(error);
            }
            Err(error) => {
                // The files may now hold more than the log in memory says:
                // no more appends until a restart recovers them.
                self.go_offline(&error);
                self.inner.borrow_mut().writer.truncated(&[]);
                return Err(error);
            }
        };
        self.inner.borrow_mut().writer.truncated(&gone);
        Ok(())
    }

    /// Returns the segments that left the log.
    async fn cut_at(&self, offset: i64) -> Result<Vec<Segment>, StorageError> {
        let direct_io = self.config().direct_io;
        // Retention may remove segments and the cleaner swap one in while
        // the cut is looked for: it is looked for again then.
        let (gone, base, bytes, next_offset, cut_file) = loop {
            let Some(ReadPlan { segment_base: base, file, from, end }) = self.cut_segment(offset)? else {
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
            let next_offset = next_offset.max(self.log_start_offset());
            let mut inner = self.inner.borrow_mut();
            let segments = &mut inner.segments;
            let Some(at) = segments.all().iter().position(|s| s.base_offset == base && Rc::ptr_eq(&s.file, &file))
            else {
                continue;
            };
            if next_offset < segments.log_start_offset() {
                let log_start = segments.log_start_offset();
                return Err(StorageError::TruncateBelowStart { offset: next_offset, log_start });
            }
            let gone = segments.truncate(at, bytes, next_offset, self.config().index_interval_bytes);
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
                inner.writer.forget_unsynced(file);
            }
            break (gone, base, bytes, next_offset, cut_file);
        };
        self.forget_cached_reads();
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
    async fn restart_at(&self, offset: i64) -> Result<Vec<Segment>, StorageError> {
        let old: Vec<i64> = self.segments().all().iter().rev().map(|s| s.base_offset).collect();
        // Newest first: a crash half-way leaves a prefix of the old log.
        for base in old {
            self.remove_files(base, true).await?;
        }
        self.sync_own_dir().await?;
        let segment = Segment::create(&self.dir, offset, self.config().direct_io, self.io)?;
        let gone = self.inner.borrow_mut().segments.restart(segment);
        self.forget_cached_reads();
        self.sync_own_dir().await?;
        {
            let _writing = self.checkpoint_lock.lock().await;
            super::retention::write_checkpoint(&self.dir, offset).await?;
        }
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

    /// The segment holding `offset`, where its index says to look for it,
    /// and its readable end; None when `offset` is at or past the log end.
    fn cut_segment(&self, offset: i64) -> Result<Option<ReadPlan>, StorageError> {
        let inner = self.inner.borrow();
        let segments = &inner.segments;
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

    /// Reads served from memory must not answer removed bytes at offsets
    /// that later appends reuse.
    fn forget_cached_reads(&self) {
        self.hot_tail.forget(&self.hot);
        self.read_ahead.forget();
    }
}
