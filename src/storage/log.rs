//! `PartitionLog`: one partition's segments, owned by one shard thread.
//!
//! Appends are synchronous: they assign offsets and copy the batches into a
//! pending write buffer. A writer task per log (see `writer/`) drains the
//! pending writes in order, one io_uring write each, fsyncs as the flush
//! policy asks, and then advances the written end. Whatever is appended
//! while a write or fsync is in flight goes down in the next write: that is
//! the group commit. Fetch reads only below the written end: from the
//! page cache by splice, or, when the log is written with O_DIRECT, from the
//! shard's hot tail (hot_tail.rs) or by O_DIRECT reads (direct_read.rs).

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tokio::sync::{Mutex, Notify};

use crate::runtime::File;

use super::append::{self, AppendShape, Stamp};
use super::direct_read;
use super::error::{IoContext, StorageError};
use super::hot_tail::{HotRead, HotTail, LogHotTail};
use super::io::{self, LogIo};
use super::read_slice::ReadSlice;
use super::recovery;
use super::retention::{self, Bounds, HeadDeletion, SegmentView};
use super::segment::{self, Segment};
use super::segment_set::SegmentSet;
use super::writer::{self, WriterHandles, WriterState};

/// Per-log settings, named and defaulted as Kafka's topic configs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll when the active segment would exceed this (segment.bytes). At
    /// most u32::MAX: index positions are 32-bit.
    pub segment_bytes: u64,
    /// Roll when the active segment's first batch is older than this (segment.ms).
    pub segment_ms: i64,
    /// A sparse index entry every this many bytes (index.interval.bytes).
    pub index_interval_bytes: u32,
    /// fdatasync once this many messages are unsynced (flush.messages;
    /// u64::MAX = never). 1 = durable: every acknowledgement follows a
    /// group-committed fdatasync.
    pub flush_messages: u64,
    /// fdatasync when the oldest unsynced write is this old (flush.ms;
    /// u64::MAX = never).
    pub flush_ms: u64,
    /// Write the active segment with O_DIRECT where the file system allows
    /// it (see segment.rs), and read it back from the hot tail or with
    /// O_DIRECT; false: the page cache and splice.
    pub direct_io: bool,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            direct_io: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    /// The log's rollback count when these offsets were assigned: a failed
    /// write rolls the log end back, and later appends reuse the offsets, so
    /// the offsets alone cannot say whose bytes landed.
    pub write_epoch: u64,
}

/// What `open` found and fixed, for a log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes cut from torn tails (and dropped segments after one).
    pub truncated_bytes: u64,
    /// Segments whose indexes were rebuilt by scanning the log.
    pub rebuilt_indexes: u32,
    /// Segments in the log after recovery.
    pub segments: u32,
    /// The directory held no segment: a new, empty log was created.
    pub created: bool,
}

/// One partition's log, owned by exactly one shard thread.
pub struct PartitionLog {
    dir: PathBuf,
    /// Changed at run time by topic config changes (see `set_config`).
    config: Cell<LogConfig>,
    state: RefCell<LogState>,
    /// Wakes the writer task (one waiter: notify_one keeps a permit).
    wake: Rc<Notify>,
    /// Serializes writes of the log start offset checkpoint (retention.rs)
    /// and of the cleaner checkpoint (cleaner/files.rs).
    checkpoint_lock: Mutex<()>,
    /// The cleaner checkpoint as its file says: every offset below it was in
    /// a cleaning's mapped section. The cleaner advances it; a truncation
    /// below it lowers it (see `lower_cleaned_to`).
    cleaned_to: Cell<i64>,
    /// This log's recent writes, while the shard's budget keeps them (the
    /// writer adds to them).
    hot: Rc<RefCell<LogHotTail>>,
    hot_tail: Rc<HotTail>,
    read_ahead: direct_read::ReadAhead,
    /// Segment creations and O_DIRECT opens go through it (see io.rs).
    io: &'static dyn LogIo,
    /// When a failed roll was last logged: a producer retries at once, so
    /// one line per interval says the partition is refusing appends.
    roll_failure_logged: Cell<Option<std::time::Instant>>,
}

/// At most one "segment roll failed" line per log per this interval.
const ROLL_FAILURE_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// What the log's parts share on the shard: the segments with their
/// offsets, and the writer's queue and state. One `RefCell`, borrowed for a
/// step at a time, never across an await (see `PartitionLog::state`).
pub(super) struct LogState {
    pub segments: SegmentSet,
    pub writer: WriterState,
}

impl PartitionLog {
    /// Opens (creating the directory if missing) and recovers the log in
    /// `dir`, then spawns its writer task on the current shard. Synchronous
    /// std I/O: start-up and topic creation are cold paths.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
        on_written: Rc<Notify>,
        hot_tail: Rc<HotTail>,
    ) -> Result<(Rc<PartitionLog>, RecoveryReport), StorageError> {
        Self::open_with_io(dir, config, clean_shutdown, on_written, hot_tail, io::from_environment())
    }

    /// As [`Self::open`], with the file operations of `io` (storage's tests
    /// pass one that fails writes and fdatasyncs on demand).
    pub(crate) fn open_with_io(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
        on_written: Rc<Notify>,
        hot_tail: Rc<HotTail>,
        io: &'static dyn LogIo,
    ) -> Result<(Rc<PartitionLog>, RecoveryReport), StorageError> {
        assert!(
            config.segment_bytes > 0 && config.segment_bytes <= u32::MAX as u64,
            "segment_bytes must fit 32-bit index positions"
        );
        assert!(config.index_interval_bytes > 0 && config.segment_ms > 0);
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        let (segments, report) = recovery::recover_log(dir, clean_shutdown, &config, io)?;
        let dir_file = std::fs::File::open(dir).context(|| format!("opening {}", dir.display()))?;
        let log = Rc::new(PartitionLog {
            dir: dir.to_path_buf(),
            config: Cell::new(config),
            state: RefCell::new(LogState { segments, writer: WriterState::default() }),
            wake: Rc::new(Notify::new()),
            checkpoint_lock: Mutex::new(()),
            cleaned_to: Cell::new(super::cleaner::read_checkpoint(dir)),
            hot: Rc::default(),
            hot_tail,
            read_ahead: direct_read::ReadAhead::default(),
            io,
            roll_failure_logged: Cell::new(None),
        });
        let handles = WriterHandles {
            dir_file: crate::runtime::file_from_std(dir_file),
            wake: log.wake.clone(),
            on_written,
            io,
            hot: log.hot.clone(),
            hot_tail: log.hot_tail.clone(),
        };
        writer::spawn(&log, handles, report.created);
        Ok((log, report))
    }

    /// The partition directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segments with their offsets and the writer's queue, in the one
    /// `RefCell` they share: how the log's other parts (the writer task,
    /// truncation, retention, reads) reach them. Borrowed for a step at a
    /// time, never across an await.
    pub(super) fn state(&self) -> &RefCell<LogState> {
        &self.state
    }

    /// Something was queued for the writer task (or the log is going).
    pub(super) fn wake_writer(&self) {
        self.wake.notify_one();
    }

    /// Reads served from memory (the hot tail, the O_DIRECT read-ahead)
    /// must not answer bytes a truncation removed, at offsets that later
    /// appends reuse.
    pub(super) fn forget_cached_reads(&self) {
        self.hot_tail.forget(&self.hot);
        self.read_ahead.forget();
    }

    /// close() was called: appends are refused, the cleaner stops.
    pub(super) fn is_closing(&self) -> bool {
        self.state.borrow().writer.is_closing()
    }

    /// The writer still has a write or a seal for the segment at `base`
    /// (queued or running): its file and index files are not final yet.
    pub(super) fn segment_pending(&self, base: i64) -> bool {
        self.state.borrow().writer.segment_pending(base)
    }

    /// Whether a read at `offset` would be answered from the hot tail.
    #[cfg(test)]
    pub(super) fn is_hot(&self, offset: i64) -> bool {
        matches!(self.hot.borrow().read(offset, 1, i64::MAX), HotRead::Batches { .. })
    }

    /// Retention's change to the log: the oldest segments leave it, as many
    /// as `choose` picks from their views and the offsets that bound what may
    /// go (all of them: the active one is rolled first, and if that fails
    /// the others go anyway, which frees what the next roll needs). The
    /// writer task unlinks their files after any job queued before. None
    /// when nothing goes, or the log is closing or being truncated.
    pub(super) fn remove_oldest_segments(
        &self,
        choose: impl FnOnce(&[SegmentView], Bounds) -> usize,
    ) -> Result<Option<HeadDeletion>, StorageError> {
        let mut guard = self.state.borrow_mut();
        let state = &mut *guard;
        // Nor while a truncation is queued: a roll now would queue a seal of
        // the segment the truncation may make active again.
        if state.writer.is_closing() || state.writer.is_truncating() {
            return Ok(None);
        }
        let views: Vec<SegmentView> = state.segments.all().iter().map(retention::view).collect();
        let bounds = Bounds {
            log_start_offset: state.segments.log_start_offset(),
            written_end_offset: state.segments.written_end_offset(),
            log_end_offset: state.segments.log_end_offset(),
        };
        let mut count = choose(&views, bounds);
        if count == views.len() {
            // Everything is written (the written end is the log end), so
            // the new active segment starts where the next append will.
            if let Err(error) = self.roll(state) {
                count -= 1;
                if count == 0 {
                    return Err(error);
                }
            }
        }
        if count == 0 {
            return Ok(None);
        }
        let gone: Vec<Segment> = state.segments.remove_oldest(count);
        state.writer.delete(&gone);
        let deletion = HeadDeletion {
            segments: gone.len(),
            bytes: gone.iter().map(|s| s.size).sum(),
            log_start_offset: state.segments.log_start_offset(),
        };
        drop(guard);
        self.wake.notify_one();
        Ok(Some(deletion))
    }

    /// DeleteRecords' change to the log: the log start moves up to `target`
    /// once `persist` (the checkpoint write, which does not run before) has
    /// made it durable. One at a time, so an older start never lands last.
    /// False when `target` is not above the log start.
    pub(super) async fn raise_log_start(
        &self,
        target: i64,
        persist: impl std::future::Future<Output = Result<(), StorageError>>,
    ) -> Result<bool, StorageError> {
        let _writing = self.checkpoint_lock.lock().await;
        if target <= self.log_start_offset() {
            return Ok(false);
        }
        persist.await?;
        self.state.borrow_mut().segments.move_log_start(target);
        Ok(true)
    }

    /// The cleaner checkpoint: every offset below it was in a cleaning's
    /// mapped section (0: never cleaned).
    pub(super) fn cleaned_to(&self) -> i64 {
        self.cleaned_to.get()
    }

    /// The cleaner's round moves its checkpoint to `offset`, durably, before
    /// its first swap. False, and nothing written, when the log was or is
    /// being truncated since the round was planned (after `truncations`):
    /// what the round mapped may be gone. Under the checkpoint lock, so that
    /// a truncation's `lower_cleaned_to` comes after it or refuses it.
    pub(super) async fn advance_cleaned_to(&self, offset: i64, truncations: u64) -> Result<bool, StorageError> {
        let _writing = self.checkpoint_lock.lock().await;
        {
            let state = self.state.borrow();
            if state.writer.truncations() != truncations || state.writer.is_truncating() {
                return Ok(false);
            }
        }
        super::cleaner::write_checkpoint(&self.dir, offset).await?;
        self.cleaned_to.set(offset);
        Ok(true)
    }

    /// A truncation's part: the log now ends at `log_end_offset`, so the
    /// cleaner checkpoint must not stay above it. Otherwise offsets appended
    /// again below it would count as cleaned (never compacted), and recovery
    /// would take a lost tail below it for compaction's gap. Durable before
    /// the truncation's files change; a lower checkpoint only costs cleaning
    /// again.
    pub(super) async fn lower_cleaned_to(&self, log_end_offset: i64) -> Result<(), StorageError> {
        let _writing = self.checkpoint_lock.lock().await;
        if self.cleaned_to.get() > log_end_offset {
            super::cleaner::write_checkpoint(&self.dir, log_end_offset).await?;
            self.cleaned_to.set(log_end_offset);
        }
        Ok(())
    }

    /// A full truncation's part (writer/truncate.rs): the log now starts at
    /// `offset`, durably.
    pub(super) async fn write_log_start_checkpoint(&self, offset: i64) -> Result<(), StorageError> {
        let _writing = self.checkpoint_lock.lock().await;
        retention::write_checkpoint(&self.dir, offset).await
    }

    /// Truncations run so far (see `advance_cleaned_to`).
    pub(super) fn truncations(&self) -> u64 {
        self.state.borrow().writer.truncations()
    }

    /// The segments and offsets, for the cleaner and retention to read.
    pub(super) fn segments(&self) -> Ref<'_, SegmentSet> {
        Ref::map(self.state.borrow(), |state| &state.segments)
    }

    /// The segments, for the cleaner to swap in what it rewrote (through
    /// `SegmentSet`'s checked methods). Not across an await.
    pub(super) fn segments_mut(&self) -> RefMut<'_, SegmentSet> {
        RefMut::map(self.state.borrow_mut(), |state| &mut state.segments)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.state.borrow().segments.log_start_offset()
    }

    pub fn config(&self) -> LogConfig {
        self.config.get()
    }

    /// A topic config change at run time: later rolls and flushes follow it.
    pub fn set_config(&self, config: LogConfig) {
        if config != self.config.get() {
            self.config.set(config);
            // The writer may be sleeping until a flush.ms deadline that just changed.
            self.wake.notify_one();
        }
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.state.borrow().segments.log_end_offset()
    }

    /// The written end: every offset below it is in the segment files,
    /// readable by fetch. Storage knows nothing of replication: a replica's
    /// high watermark is the partition layer's value, at most this.
    pub fn written_end_offset(&self) -> i64 {
        self.state.borrow().segments.written_end_offset()
    }

    /// Bytes of all its segments, appends not yet written included (Kafka's
    /// log size, which DescribeLogDirs reports).
    pub fn size_bytes(&self) -> u64 {
        self.segments().all().iter().map(|s| s.size).sum()
    }

    /// Appends consecutive batches the caller has already validated, assigning
    /// offsets from the log end on and stamping `leader_epoch` (the
    /// replica's). Rolls the segment first when needed. The bytes reach the
    /// file later: await `wait_appended(&info)`.
    pub fn append(&self, batches: &[u8], leader_epoch: i32, now_ms: i64) -> Result<AppendInfo, StorageError> {
        let shape = append::leader_shape(batches)?;
        self.append_shaped(batches, shape, Stamp::Assign { leader_epoch }, now_ms)
    }

    /// A follower's append (Kafka's `appendAsFollower`): batches fetched
    /// from the leader, stored as they are, with the offsets and leader
    /// epochs the leader gave them. Each must be whole and CRC-valid, the
    /// first at or after the log end ([`StorageError::ReplicaOverlap`]
    /// otherwise: truncate first), each after the one before; nothing is
    /// written when one is not. Written and flushed as `append`'s: await
    /// `wait_appended(&info)`.
    pub fn append_replicated(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, StorageError> {
        let shape = append::replicated_shape(batches, self.log_end_offset())?;
        self.append_shaped(batches, shape, Stamp::Keep, now_ms)
    }

    fn append_shaped(
        &self,
        batches: &[u8],
        shape: AppendShape,
        stamp: Stamp,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let mut guard = self.state.borrow_mut();
        let state = &mut *guard;
        if let Some(refusal) = state.writer.refusal(&self.dir) {
            return Err(refusal);
        }
        if self.needs_roll(state, batches.len() as u64, shape.offsets, now_ms) {
            self.roll(state)?;
        }
        let log_end_offset = state.segments.log_end_offset();
        let (base_offset, last_offset) =
            shape.kept_offsets.unwrap_or((log_end_offset, log_end_offset + shape.offsets as i64 - 1));
        let LogState { segments, writer } = &mut *state;
        let active = segments.active();
        if active.size + batches.len() as u64 > u32::MAX as u64 {
            return Err(StorageError::AppendTooLarge { bytes: batches.len() });
        }
        active.first_append_ms.get_or_insert(now_ms);
        let job = writer.open_job(active, base_offset);
        let next_offset = append::copy_batches(batches, stamp, job, active, self.config().index_interval_bytes);
        debug_assert_eq!(next_offset, last_offset + 1, "the copy took the offsets the shape gave");
        job.messages += shape.offsets;
        segments.appended();
        let write_epoch = state.writer.write_epoch();
        drop(guard);
        self.wake.notify_one();
        Ok(AppendInfo { base_offset, last_offset, log_start_offset: self.log_start_offset(), write_epoch })
    }

    fn needs_roll(&self, state: &mut LogState, bytes: u64, offsets: u64, now_ms: i64) -> bool {
        let last_offset = state.segments.log_end_offset() + offsets as i64 - 1;
        let config = self.config();
        let active = state.segments.active();
        if active.size == 0 {
            return false;
        }
        active.size + bytes > config.segment_bytes
            || active.first_append_ms.is_some_and(|first| now_ms.saturating_sub(first) > config.segment_ms)
            || last_offset - active.base_offset > u32::MAX as i64
    }

    /// Starts a new active segment at the log end. The old one's pending bytes
    /// stay queued for the old file, then its seal (fsync + index files).
    pub(super) fn roll(&self, state: &mut LogState) -> Result<(), StorageError> {
        let base_offset = state.segments.log_end_offset();
        // Nothing has changed yet if this fails (out of descriptors, say):
        // the append is refused and the next one tries again.
        let segment = Segment::create(&self.dir, base_offset, self.config().direct_io, self.io).inspect_err(|error| {
            let now = std::time::Instant::now();
            if self.roll_failure_logged.get().is_none_or(|at| now.duration_since(at) >= ROLL_FAILURE_LOG_INTERVAL) {
                self.roll_failure_logged.set(Some(now));
                tracing::error!(dir = %self.dir.display(), %error, "segment roll failed: appends are refused (KAFKA_STORAGE_ERROR) until one succeeds");
            }
        })?;
        let old = state.segments.active();
        old.seal_time_index();
        let old_base = old.base_offset;
        // Under a flush policy the new file's directory entry must be durable
        // with the first sync that acknowledges anything in it.
        state.writer.rolled(old_base);
        // Hot ranges are of the active segment only (the cleaner rewrites
        // sealed ones).
        self.hot_tail.forget(&self.hot);
        state.segments.roll(segment);
        tracing::debug!(dir = %self.dir.display(), base_offset, "rolled segment");
        Ok(())
    }

    /// Resolves once the batches of `appended` are written (and synced when
    /// the flush policy says so). Err if their write failed, even when later
    /// appends have since reused their offsets; Ok if they were written
    /// before a later write failed (its rollback kept them): the answer
    /// must say what the log holds, or the producer retries a batch that
    /// is there (chaos finding 3, docs/chaos.md).
    pub async fn wait_appended(&self, appended: &AppendInfo) -> Result<(), StorageError> {
        if self.write_epoch() != appended.write_epoch {
            // Every write pending at a rollback fails: these were written
            // before it, or are gone.
            return match self.surviving_end_since(appended.write_epoch) {
                Some(end) if appended.last_offset < end => Ok(()),
                _ => Err(StorageError::NotAppended {
                    offset: appended.last_offset,
                    log_end_offset: self.log_end_offset(),
                }),
            };
        }
        self.wait_written(appended.last_offset).await
    }

    /// The rollback count that [`AppendInfo::write_epoch`] is compared with.
    pub fn write_epoch(&self) -> u64 {
        self.state.borrow().writer.write_epoch()
    }

    /// The end below which offsets assigned in write epoch `epoch` still
    /// hold what was appended then (all of them: `i64::MAX`); None when the
    /// epoch is too old to tell. What an idempotent producer table keeps
    /// in step with (see `WriterState::surviving_end_since`).
    pub fn surviving_end_since(&self, epoch: u64) -> Option<i64> {
        self.state.borrow().writer.surviving_end_since(epoch)
    }

    /// Resolves once every offset <= `last_offset` is in the segment file (and
    /// fsynced when the flush policy says so); Err if that write failed. It
    /// cannot tell whose bytes hold the offsets after a rollback: to wait for
    /// one append, use [`Self::wait_appended`].
    pub async fn wait_written(&self, last_offset: i64) -> Result<(), StorageError> {
        let reply = {
            let mut state = self.state.borrow_mut();
            if last_offset < state.segments.written_end_offset() {
                return Ok(());
            }
            let log_end_offset = state.segments.log_end_offset();
            if last_offset >= log_end_offset {
                return Err(StorageError::NotAppended { offset: last_offset, log_end_offset });
            }
            state.writer.wait_written(last_offset)?
        };
        reply.await.unwrap_or(Err(StorageError::Closed))
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` but at
    /// least one batch (KIP-74), all below the written end and within one
    /// segment. None when `offset` is the written end.
    pub async fn read(&self, offset: i64, max_bytes: u32) -> Result<Option<ReadSlice>, StorageError> {
        self.read_below(offset, max_bytes, i64::MAX).await
    }

    /// As [`Self::read`], with whole batches whose last offset is below
    /// `end_offset` only (exclusive; a leader serves consumers below its high
    /// watermark): a batch is never cut, so None when the batch holding
    /// `offset` reaches `end_offset`, or `offset` is at or past it (but not
    /// past the written end, which is out of range).
    pub async fn read_below(
        &self,
        offset: i64,
        max_bytes: u32,
        end_offset: i64,
    ) -> Result<Option<ReadSlice>, StorageError> {
        let Some(mut plan) = self.plan_read(offset, end_offset)? else {
            return Ok(None);
        };
        match self.hot.borrow().read(offset, max_bytes, end_offset) {
            HotRead::Batches { bytes, more, held_bytes } => {
                return Ok(Some(ReadSlice::Memory { bytes, more, held_bytes }))
            }
            HotRead::Beyond => return Ok(None),
            HotRead::Missing => {}
        }
        loop {
            if let Some(direct) = self.direct_reader(plan.segment_base)? {
                let what = || format!("reading {}", segment::log_path(&self.dir, plan.segment_base).display());
                let offsets = (offset, end_offset);
                let read =
                    self.read_ahead.read(&direct, plan.from, plan.end, offsets, max_bytes).await.context(what)?;
                if let Some((bytes, held_bytes)) = read {
                    return Ok(Some(ReadSlice::Memory { bytes, more: Vec::new(), held_bytes }));
                }
            } else if let Some(slice) = self.read_from_page_cache(&plan, (offset, end_offset), max_bytes).await? {
                return Ok(Some(slice));
            }
            // Offsets missing from this segment's end continue in the next
            // one, unless it starts at or past the end offset.
            match self.plan_after(plan.segment_base) {
                Some(next) if next.segment_base < end_offset => plan = next,
                _ => return Ok(None),
            }
        }
    }

    /// The most memory a `read` of up to `max_bytes` allocates: an O_DIRECT
    /// read's window (a read from the hot tail or through the page cache
    /// allocates none).
    pub fn read_bytes_max(&self, max_bytes: u32) -> usize {
        match self.config().direct_io {
            true => direct_read::window_bytes_max(max_bytes),
            false => 0,
        }
    }

    /// The segment's O_DIRECT descriptor when the log is written that way.
    fn direct_reader(&self, segment_base: i64) -> Result<Option<Rc<File>>, StorageError> {
        if !self.config().direct_io {
            return Ok(None);
        }
        let mut state = self.state.borrow_mut();
        match state.segments.segment_mut(segment_base) {
            Some(segment) => segment.open_direct(&segment::log_path(&self.dir, segment_base), self.io),
            None => Ok(None),
        }
    }

    /// Clean shutdown: pending writes finish, everything is fsynced, the
    /// active segment's index files are written and the writer task stops.
    /// Appends fail with Closed from now on; reads keep working.
    pub async fn close(&self) -> Result<(), StorageError> {
        let reply = {
            let Some(reply) = self.state.borrow_mut().writer.close() else { return Ok(()) };
            reply
        };
        self.wake.notify_one();
        reply.await.unwrap_or(Err(StorageError::Closed))
    }
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        self.hot_tail.forget(&self.hot);
        // Lets an idle writer task notice that the log is gone and end.
        self.wake.notify_one();
    }
}
