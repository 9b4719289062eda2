//! The writer task of one log: it drains the queue of pending writes in
//! order, one io_uring `write_all_at` per job, fdatasyncs as the flush policy
//! asks, then advances the written end and answers `wait_written`.
//! Writes are whole blocks from the block holding the segment end (see
//! segment.rs, for O_DIRECT); a seal or a clean close cuts the padding off.
//!
//! Jobs are tagged with their segment, so bytes appended before a roll reach
//! the old file before any byte reaches the new one, and the old segment is
//! sealed (fsynced, index files written) in between. When a write or fsync
//! fails, every queued write fails with it, the file is cut back to the
//! written end and the log end rolls back there: no half-written batch stays,
//! and the next append can succeed once the cause (say ENOSPC) is gone.
//! A failed fdatasync is different: the kernel may already have dropped the
//! pages it could not write, so the log goes offline and refuses appends
//! until a restart (see `StorageError::Offline`).
//!
//! The task holds only a `Weak` reference while idle, so dropping the log
//! without `close` ends it too (no fsync then: the next start recovers).

use std::collections::VecDeque;
use std::path::Path;
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::runtime::{align_down, AlignedBuf, File, DIRECT_IO_ALIGN};

use super::error::{IoContext, StorageError};
use super::hot_tail::HotRange;
use super::log::PartitionLog;
use super::segment::{self, Segment};
use super::truncate::Truncation;

pub(super) enum Job {
    Write(WriteJob),
    /// fsync a rolled segment and write its index files.
    Seal {
        base_offset: i64,
    },
    /// Unlink the files of segments retention took out of the log (retention.rs).
    Delete(Vec<i64>),
    /// A follower's truncation (truncate.rs), after every write queued before.
    Truncate(Truncation, oneshot::Sender<Result<(), StorageError>>),
    /// The last job: fsync, write the active segment's indexes, stop.
    Close(oneshot::Sender<Result<(), StorageError>>),
}

/// Batches for one segment file, contiguous in offsets and bytes. `buf`
/// starts at `position`, a block boundary, with the bytes already written
/// in that block, then the new batches.
pub(super) struct WriteJob {
    pub segment_base: i64,
    /// The segment's write descriptor (O_DIRECT where allowed).
    pub file: Rc<File>,
    pub position: u64,
    /// Where this job's own batches start (`buf` first repeats the bytes
    /// before it in the block), and the first one's offset.
    pub first_batch: u64,
    pub first_offset: i64,
    pub buf: AlignedBuf,
    pub last_offset: i64,
    pub messages: u64,
}

/// What has been written but not yet fdatasynced.
#[derive(Default)]
struct SyncState {
    files: Vec<Rc<File>>,
    messages: u64,
    oldest: Option<Instant>,
    /// A segment was created since the last sync: sync the directory too.
    new_segment: bool,
}

impl SyncState {
    pub fn note_new_segment(&mut self) {
        self.new_segment = true;
    }

    fn note_write(&mut self, file: &Rc<File>, messages: u64, now: Instant) {
        if !self.files.iter().any(|f| Rc::ptr_eq(f, file)) {
            self.files.push(file.clone());
        }
        self.messages += messages;
        self.oldest.get_or_insert(now);
    }

    pub fn forget(&mut self, file: &Rc<File>) {
        self.files.retain(|f| !Rc::ptr_eq(f, file));
        if self.files.is_empty() {
            *self = SyncState { new_segment: self.new_segment, ..SyncState::default() };
        }
    }

    /// When flush_ms asks for an fdatasync, if anything is unsynced.
    fn deadline(&self, flush_ms: u64) -> Option<Instant> {
        self.oldest?.checked_add(Duration::from_millis(flush_ms))
    }

    fn due(&self, flush_messages: u64, flush_ms: u64, now: Instant) -> bool {
        !self.files.is_empty() && (self.messages >= flush_messages || self.deadline(flush_ms).is_some_and(|d| now >= d))
    }
}

/// Spare write buffers kept for reuse, and the largest one worth keeping
/// (a burst must not pin its memory for ever).
const SPARE_BUFFERS_MAX: usize = 2;
const SPARE_BUFFER_BYTES_MAX: usize = 16 << 20;

/// The writer's side of a log: its queue of jobs and what it knows of their
/// fate. The log drives it through these methods (append, roll, wait,
/// delete, close); the writer task below works the queue.
#[derive(Default)]
pub(super) struct WriterState {
    /// Writes, seals, deletions and the close, in the order the writer must do them.
    queue: VecDeque<Job>,
    spare_buffers: Vec<AlignedBuf>,
    /// wait_written callers: (last offset, reply).
    waiters: Vec<(i64, oneshot::Sender<Result<(), StorageError>>)>,
    sync: SyncState,
    /// close() was called: appends are refused.
    closing: bool,
    /// A truncation is queued or running: appends are refused until it ends.
    truncating: bool,
    /// The writer task has finished.
    done: bool,
    /// Failed writes so far; each rolled the log end back to the written end.
    rollbacks: u64,
    /// Why appends are refused after a failed fdatasync (see `StorageError::Offline`).
    offline: Option<String>,
    /// The last write failed with ENOSPC: logged once, until a write succeeds.
    out_of_space: bool,
    /// Rolled segments whose seal (fdatasync, index files) is still running.
    sealing: Vec<i64>,
    /// The size of the last write: a new write buffer starts that large, so
    /// that appends do not copy it again as it grows.
    write_size_hint: usize,
}

impl WriterState {
    /// Why an append must be refused now, if it must.
    pub fn refusal(&self, dir: &Path) -> Option<StorageError> {
        if self.closing {
            return Some(StorageError::Closed);
        }
        if self.truncating {
            return Some(StorageError::Truncating);
        }
        let reason = self.offline.as_ref()?;
        Some(StorageError::Offline { dir: dir.display().to_string(), reason: reason.clone() })
    }

    /// The rollback count that `AppendInfo::write_epoch` is compared with.
    pub fn write_epoch(&self) -> u64 {
        self.rollbacks
    }

    pub fn is_closing(&self) -> bool {
        self.closing
    }

    pub fn is_truncating(&self) -> bool {
        self.truncating
    }

    /// A roll: the segment at `old_base` is sealed after its queued writes,
    /// and the new one's directory entry is synced with the next fdatasync.
    pub fn rolled(&mut self, old_base: i64) {
        self.queue.push_back(Job::Seal { base_offset: old_base });
        self.sync.note_new_segment();
    }

    /// A reply once every offset <= `last_offset` is written; the caller
    /// checked that it was appended and is not written yet.
    pub fn wait_written(
        &mut self,
        last_offset: i64,
    ) -> Result<oneshot::Receiver<Result<(), StorageError>>, StorageError> {
        if self.done {
            return Err(StorageError::Closed);
        }
        let (sender, reply) = oneshot::channel();
        self.waiters.push((last_offset, sender));
        Ok(reply)
    }

    /// Retention took `gone` out of the log: nothing of theirs needs syncing
    /// any more (and the list must not keep their descriptors, and disk
    /// space, once they are unlinked); their files go after every job queued
    /// before.
    pub fn delete(&mut self, gone: &[Segment]) {
        for segment in gone {
            self.sync.forget(&segment.file);
            self.sync.forget(&segment.write_file());
        }
        self.queue.push_back(Job::Delete(gone.iter().map(|s| s.base_offset).collect()));
    }

    /// Queues a truncation after every job queued so far; appends are
    /// refused until it has run.
    pub fn truncate(&mut self, truncation: Truncation) -> oneshot::Receiver<Result<(), StorageError>> {
        debug_assert!(!self.truncating && !self.closing, "the caller checked `refusal`");
        self.truncating = true;
        let (sender, reply) = oneshot::channel();
        self.queue.push_back(Job::Truncate(truncation, sender));
        reply
    }

    /// `file` was replaced (a truncation cut its segment): the next
    /// fdatasync need not, and must not keep it open to, sync it.
    pub fn forget_unsynced(&mut self, file: &Rc<File>) {
        self.sync.forget(file);
    }

    /// A truncation has run: offsets below the old log end will be reused,
    /// so earlier appends' `write_epoch` no longer matches (as after a
    /// rollback), and appends are taken again.
    pub fn truncated(&mut self, gone: &[Segment]) {
        self.truncating = false;
        self.rollbacks += 1;
        for segment in gone {
            self.sync.forget(&segment.file);
            self.sync.forget(&segment.write_file());
        }
    }

    /// Queues the close (the last job); None if close was already called.
    pub fn close(&mut self) -> Option<oneshot::Receiver<Result<(), StorageError>>> {
        if std::mem::replace(&mut self.closing, true) {
            return None;
        }
        let (sender, reply) = oneshot::channel();
        self.queue.push_back(Job::Close(sender));
        Some(reply)
    }

    fn recycle(&mut self, mut buf: AlignedBuf) {
        if self.spare_buffers.len() < SPARE_BUFFERS_MAX && buf.capacity() <= SPARE_BUFFER_BYTES_MAX {
            buf.clear();
            self.spare_buffers.push(buf);
        }
    }

    /// The queued write for the active segment that appends can still extend,
    /// or a new one (with a recycled buffer) when there is none: the last queued
    /// write is another segment's (a roll), or the writer has taken it. A new one
    /// starts at the block holding the segment end, with that block's bytes so
    /// far (`Segment::tail`, which the writer refreshes when it takes a job).
    ///
    /// Deletions of old segments' files (retention, DeleteRecords) may be queued
    /// after the last write: they touch other files, so the write is extended
    /// past them. Starting a new job there instead would take `tail` from before
    /// the queued write's bytes and overwrite them in the file (issue 13: the
    /// acknowledged records of a queued write were cut by the next one).
    pub fn open_job(&mut self, active: &Segment, next_offset: i64) -> &mut WriteJob {
        let queue = &mut self.queue;
        let last_write = queue.iter().rposition(|job| !matches!(job, Job::Delete(_)));
        let extendable = last_write
            .is_some_and(|at| matches!(&queue[at], Job::Write(job) if job.segment_base == active.base_offset));
        let at = match last_write {
            Some(at) if extendable => at,
            _ => {
                let hint = self.write_size_hint;
                let mut buf = self.spare_buffers.pop().unwrap_or_else(|| AlignedBuf::with_capacity(hint));
                buf.extend_from_slice(&active.tail);
                queue.push_back(Job::Write(WriteJob {
                    segment_base: active.base_offset,
                    file: active.write_file(),
                    position: active.write_position(),
                    first_batch: active.size,
                    first_offset: next_offset,
                    buf,
                    last_offset: -1,
                    messages: 0,
                }));
                queue.len() - 1
            }
        };
        match &mut queue[at] {
            Job::Write(job) => {
                // Cheap (once per append) and the last line of defence against
                // writing a job over bytes that another one holds.
                assert_eq!(job.position + job.buf.len() as u64, active.size, "pending bytes end at the segment end");
                job
            }
            _ => unreachable!("a write job was just found or queued"),
        }
    }
}

/// `created`: the log is new, so its directory entries are synced before
/// its first write (and so before its first acknowledgement).
pub(super) async fn run(log: Weak<PartitionLog>, wake: Rc<Notify>, created: bool) {
    if let Some(log) = log.upgrade().filter(|_| created) {
        if let Err(error) = log.sync_new_dir().await {
            log.go_offline(&error);
            log.fail(error);
        }
    }
    // Seals run beside the writes: a rolled segment's fdatasync can take
    // hundreds of milliseconds (a whole segment of dirty pages), and writes
    // to the next segment must not wait for it.
    let mut seals: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    loop {
        let Some(log) = log.upgrade() else { return };
        let job = { log.inner.borrow_mut().writer.queue.pop_front() };
        seals.retain(|seal| !seal.is_finished());
        if matches!(job, Some(Job::Delete(_) | Job::Truncate(..) | Job::Close(_))) {
            // Deleted files, a truncation and a clean close come after every seal.
            for seal in seals.drain(..) {
                let _ = seal.await;
            }
        }
        match job {
            Some(Job::Write(job)) => log.write(job).await,
            Some(Job::Seal { base_offset }) => {
                log.inner.borrow_mut().writer.sealing.push(base_offset);
                let log = log.clone();
                seals.push(crate::runtime::spawn(async move {
                    log.seal(base_offset).await;
                    log.inner.borrow_mut().writer.sealing.retain(|b| *b != base_offset);
                }));
            }
            Some(Job::Delete(bases)) => log.remove_segment_files(bases).await,
            Some(Job::Truncate(truncation, reply)) => {
                let _ = reply.send(log.run_truncation(truncation).await);
            }
            Some(Job::Close(reply)) => {
                let _ = reply.send(log.finish().await);
                return;
            }
            None => {
                let deadline = log.inner.borrow().writer.sync.deadline(log.config().flush_ms);
                if log.sync_due() {
                    if let Err(error) = log.sync_files().await {
                        // Already acknowledged: nothing to roll back, but no more acks either.
                        log.go_offline(&error);
                    }
                    continue;
                }
                drop(log);
                match deadline {
                    Some(deadline) => {
                        let _ = tokio::time::timeout_at(deadline, wake.notified()).await;
                    }
                    None => wake.notified().await,
                }
            }
        }
    }
}

impl PartitionLog {
    /// close() was called: appends are refused, the cleaner stops.
    pub(super) fn is_closing(&self) -> bool {
        self.inner.borrow().writer.is_closing()
    }

    /// The writer still has a write or a seal for the segment at `base`
    /// (queued or running): its file and index files are not final yet.
    pub(super) fn segment_pending(&self, base: i64) -> bool {
        let inner = self.inner.borrow();
        inner.writer.sealing.contains(&base)
            || inner.writer.queue.iter().any(|job| match job {
                Job::Seal { base_offset } => *base_offset == base,
                Job::Write(write) => write.segment_base == base,
                Job::Delete(_) | Job::Truncate(..) | Job::Close(_) => false,
            })
    }

    fn sync_due(&self) -> bool {
        let inner = self.inner.borrow();
        let config = self.config();
        inner.writer.sync.due(config.flush_messages, config.flush_ms, Instant::now())
    }

    async fn write(&self, mut job: WriteJob) {
        let (segment_base, position) = (job.segment_base, job.position);
        let mut buf = std::mem::take(&mut job.buf);
        debug_assert!(!buf.is_empty() && position % DIRECT_IO_ALIGN as u64 == 0);
        let end = position + buf.len() as u64;
        // Appends after this one open a new job, which starts with this tail.
        if let Some(segment) = self.inner.borrow_mut().segments.segment_mut(segment_base) {
            debug_assert!(segment.size >= end);
            let tail_start = (align_down(end) - position) as usize;
            segment.tail.clear();
            segment.tail.extend_from_slice(&buf[tail_start..]);
        }
        buf.pad_to_block();
        let (result, buf) = self.io.write_all_at(&job.file, buf, position).await;
        if let Err(e) = result {
            self.inner.borrow_mut().writer.recycle(buf);
            let path = segment::log_path(&self.dir, segment_base);
            return self.fail(StorageError::io(format!("writing {} at {position}", path.display()), e));
        }
        {
            let mut inner = self.inner.borrow_mut();
            inner.writer.write_size_hint = buf.len();
            inner.writer.sync.note_write(&job.file, job.messages, Instant::now());
        }
        if self.sync_due() {
            if let Err(error) = self.sync_files().await {
                self.inner.borrow_mut().writer.recycle(buf);
                self.go_offline(&error);
                return self.fail(error);
            }
        }
        self.keep_hot(&job, buf, (end - position) as usize);
        self.advance(segment_base, end, job.last_offset);
    }

    /// With O_DIRECT, fetches at the tail read a write's bytes from memory
    /// (the page cache does not have them): its buffer, `written` bytes of
    /// it, joins the hot tail. Otherwise the buffer is reused.
    fn keep_hot(&self, job: &WriteJob, mut buf: AlignedBuf, written: usize) {
        if !self.config().direct_io || !self.hot_tail.enabled() {
            return self.inner.borrow_mut().writer.recycle(buf);
        }
        // A buffer sized for a larger write would hold the budget for nothing.
        if buf.capacity() > 2 * buf.len() {
            buf.shrink_to_fit();
        }
        let range = HotRange {
            first_batch: (job.first_batch - job.position) as usize,
            first_offset: job.first_offset,
            last_offset: job.last_offset,
            footprint: buf.capacity(),
            bytes: Bytes::from_owner(buf).slice(..written),
        };
        self.hot_tail.keep(&self.hot, range);
    }

    async fn sync_files(&self) -> Result<(), StorageError> {
        let unsynced = std::mem::take(&mut self.inner.borrow_mut().writer.sync);
        for file in &unsynced.files {
            self.io.sync_data(file).await.context(|| format!("fdatasync in {}", self.dir.display()))?;
        }
        if unsynced.new_segment {
            self.sync_own_dir().await?;
        }
        Ok(())
    }

    /// fsync of the partition directory through the descriptor the log
    /// holds for it, so that new segments' entries can be made durable even
    /// when the process is out of descriptors (opening the directory then
    /// failed, and that took the partition offline until a restart).
    pub(super) async fn sync_own_dir(&self) -> Result<(), StorageError> {
        self.dir_file.sync_all().await.context(|| format!("fsync of directory {}", self.dir.display()))
    }

    /// A new log: its directory, then its entry in the parent. Opening the
    /// parent can fail for want of a descriptor, which loses nothing: it is
    /// retried, with one log line per interval, and the first
    /// acknowledgements wait for it.
    async fn sync_new_dir(&self) -> Result<(), StorageError> {
        self.sync_own_dir().await?;
        let Some(parent) = self.dir.parent() else { return Ok(()) };
        let mut pause = Duration::from_millis(10);
        let mut logged: Option<Instant> = None;
        loop {
            match segment::sync_dir(parent).await {
                Err(StorageError::Io { source, context }) if is_out_of_descriptors(&source) => {
                    if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(%context, error = %source, "out of file descriptors: retrying");
                        logged = Some(Instant::now());
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// An fdatasync failed: what was acknowledged may not be on disk, and a
    /// retry could report success for pages the kernel already dropped. So,
    /// as Kafka takes the log directory offline, refuse appends from now on.
    pub(super) fn go_offline(&self, error: &StorageError) {
        let mut inner = self.inner.borrow_mut();
        if inner.writer.offline.is_none() {
            tracing::error!(
                dir = %self.dir.display(),
                %error,
                "fdatasync failed: the partition refuses produce (KAFKA_STORAGE_ERROR) until the broker restarts"
            );
            inner.writer.offline = Some(error.to_string());
        }
    }

    /// The job's bytes are in the file: move the written end past them.
    fn advance(&self, segment_base: i64, end: u64, last_offset: i64) {
        let mut inner = self.inner.borrow_mut();
        if std::mem::take(&mut inner.writer.out_of_space) {
            tracing::info!(dir = %self.dir.display(), "space available again: writes resume");
        }
        inner.segments.written(segment_base, end, last_offset);
        let written_end_offset = inner.segments.written_end_offset();
        let mut at = 0;
        while at < inner.writer.waiters.len() {
            if inner.writer.waiters[at].0 < written_end_offset {
                let (_, reply) = inner.writer.waiters.swap_remove(at);
                let _ = reply.send(Ok(()));
            } else {
                at += 1;
            }
        }
        drop(inner);
        self.on_written.notify_waiters();
    }

    /// A write or its fdatasync failed: fail it and everything queued after
    /// it, and put the log back as it was at the written end.
    fn fail(&self, error: StorageError) {
        let mut inner = self.inner.borrow_mut();
        if !error.is_out_of_space() {
            tracing::error!(dir = %self.dir.display(), %error, "log write failed; rolling back to the written end");
        } else if !std::mem::replace(&mut inner.writer.out_of_space, true) {
            // Once per episode, not once per batch: a full disk fails every produce.
            tracing::error!(
                dir = %self.dir.display(),
                %error,
                "disk full: produce gets KAFKA_STORAGE_ERROR until space is freed; failed writes are rolled back"
            );
        }
        // Hot ranges only hold written bytes, but the offsets after the
        // written end are about to be reused: start the hot tail afresh.
        self.hot_tail.forget(&self.hot);
        for job in std::mem::take(&mut inner.writer.queue) {
            match job {
                Job::Write(write) => inner.writer.recycle(write.buf),
                Job::Seal { .. } => {}
                // Those segments are already out of the log: their files must
                // still go; a truncation still runs (on what was written).
                kept @ (Job::Close(_) | Job::Delete(_) | Job::Truncate(..)) => inner.writer.queue.push_back(kept),
            }
        }
        for (_, reply) in inner.writer.waiters.drain(..) {
            let _ = reply.send(Err(error.duplicate()));
        }
        // Segments rolled after the written end hold nothing written.
        for dropped in inner.segments.roll_back(self.config().index_interval_bytes) {
            if let Err(e) = segment::remove_files(&self.dir, dropped.base_offset) {
                tracing::warn!(dir = %self.dir.display(), base = dropped.base_offset, error = %e, "removing an unwritten segment");
            }
        }
        let active = inner.segments.active();
        let keep = active.size;
        let path = segment::log_path(&self.dir, active.base_offset);
        // Whatever stays beyond `keep` if this fails is overwritten by the
        // next write or cut off by recovery's CRC checks.
        let cut = std::fs::OpenOptions::new().read(true).write(true).open(&path).and_then(|f| {
            f.set_len(keep)?;
            active.reload_tail(&f)
        });
        if let Err(e) = cut {
            // The next write would start with the wrong block: refuse writes.
            tracing::error!(path = %path.display(), error = %e, "cutting back a failed write");
            inner.writer.offline.get_or_insert_with(|| format!("cutting back a failed write: {e}"));
        }
        inner.writer.rollbacks += 1;
    }

    /// A rolled segment, beside the writes to the next one: make its bytes
    /// durable, then the directory entry of the segment that follows it, then
    /// its index files, since recovery trusts sealed segments' indexes. Under
    /// a flush policy nothing in the next segment is acknowledged before its
    /// directory entry is synced (`SyncState::new_segment`), seal or not.
    async fn seal(&self, base_offset: i64) {
        let sealed = {
            let mut inner = self.inner.borrow_mut();
            inner.segments.segment_mut(base_offset).map(|s| {
                s.close_writer();
                (s.file.clone(), s.write_file(), s.size, s.encoded_indexes())
            })
        };
        let Some((file, written, size, indexes)) = sealed else {
            return;
        };
        let path = segment::log_path(&self.dir, base_offset);
        let cut = crate::runtime::set_len(&file, size);
        let synced = match cut.and(self.io.sync_data(&file).await) {
            Ok(()) => self.sync_own_dir().await,
            Err(e) => Err(StorageError::io(format!("fdatasync of {}", path.display()), e)),
        };
        // Writes went through `written` (the O_DIRECT descriptor where there
        // is one): the unsynced list must let go of it too, or every rolled
        // segment's descriptor, and the disk space of every deleted one,
        // stays held until a flush that the default policy never makes.
        {
            let mut inner = self.inner.borrow_mut();
            inner.writer.sync.forget(&file);
            inner.writer.sync.forget(&written);
        }
        if let Err(error) = synced {
            // Writes to the next segment may be in flight, so nothing is
            // rolled back here; refusing appends from now on is what is left.
            return self.go_offline(&error);
        }
        if let Err(error) = segment::write_index_files(&self.dir, base_offset, indexes).await {
            // The index is rebuilt at the next start; the data was acknowledged.
            tracing::error!(path = %path.display(), %error, "writing a rolled segment's indexes");
        }
    }

    async fn finish(&self) -> Result<(), StorageError> {
        let result = self.flush_for_close().await;
        let mut inner = self.inner.borrow_mut();
        inner.writer.done = true;
        for (_, reply) in inner.writer.waiters.drain(..) {
            let _ = reply.send(Err(StorageError::Closed));
        }
        result
    }

    async fn flush_for_close(&self) -> Result<(), StorageError> {
        self.sync_files().await?;
        let (base_offset, file, size, indexes) = {
            let mut inner = self.inner.borrow_mut();
            let active = inner.segments.active();
            active.seal_time_index();
            (active.base_offset, active.file.clone(), active.size, active.encoded_indexes())
        };
        let path = segment::log_path(&self.dir, base_offset);
        crate::runtime::set_len(&file, size).context(|| format!("cutting the padding off {}", path.display()))?;
        self.io.sync_data(&file).await.context(|| format!("fdatasync of {}", path.display()))?;
        segment::write_index_files(&self.dir, base_offset, indexes).await
    }
}

/// EMFILE / ENFILE: a descriptor could not be had, nothing was written.
pub(super) fn is_out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}
