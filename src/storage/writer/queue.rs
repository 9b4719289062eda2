//! The writer's queue and what it knows of its jobs' fate (`WriterState`):
//! the log drives it through its methods (append, roll, wait, delete,
//! truncate, close) under the log's one `RefCell`; the writer task
//! (mod.rs) works the queue.

use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::runtime::{AlignedBuf, File};

use super::super::error::StorageError;
use super::super::segment::Segment;
use super::super::truncate::Truncation;

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
pub(in crate::storage) struct WriteJob {
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
pub(super) struct SyncState {
    pub(super) files: Vec<Rc<File>>,
    messages: u64,
    oldest: Option<Instant>,
    /// A segment was created since the last sync: sync the directory too.
    pub(super) new_segment: bool,
}

impl SyncState {
    pub fn note_new_segment(&mut self) {
        self.new_segment = true;
    }

    pub fn note_write(&mut self, file: &Rc<File>, messages: u64, now: Instant) {
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
    pub fn deadline(&self, flush_ms: u64) -> Option<Instant> {
        self.oldest?.checked_add(Duration::from_millis(flush_ms))
    }

    pub fn due(&self, flush_messages: u64, flush_ms: u64, now: Instant) -> bool {
        !self.files.is_empty() && (self.messages >= flush_messages || self.deadline(flush_ms).is_some_and(|d| now >= d))
    }
}

/// Spare write buffers kept for reuse, and the largest one worth keeping
/// (a burst must not pin its memory for ever).
const SPARE_BUFFERS_MAX: usize = 2;
const SPARE_BUFFER_BYTES_MAX: usize = 16 << 20;
/// Rollbacks whose log end is remembered: between an append and its answer,
/// or between two appends to a partition, there are a few at most (each
/// fails every pending write); an older write epoch counts as unknown.
const ROLLBACKS_REMEMBERED: usize = 64;

/// The writer's side of a log: its queue of jobs and what it knows of their
/// fate. The log drives it through these methods (append, roll, wait,
/// delete, close); the writer task below works the queue.
#[derive(Default)]
pub(in crate::storage) struct WriterState {
    /// Writes, seals, deletions and the close, in the order the writer must do them.
    pub(super) queue: VecDeque<Job>,
    spare_buffers: Vec<AlignedBuf>,
    /// wait_written callers: (last offset, reply).
    pub(super) waiters: Vec<(i64, oneshot::Sender<Result<(), StorageError>>)>,
    pub(super) sync: SyncState,
    /// close() was called: appends are refused.
    closing: bool,
    /// A truncation is queued or running: appends are refused until it ends.
    truncating: bool,
    /// The writer task has finished.
    pub(super) done: bool,
    /// Failed writes and truncations so far; each rolled the log end back.
    rollbacks: u64,
    /// The last rollbacks: (the write epoch each ended, the log end it left).
    cuts: VecDeque<(u64, i64)>,
    /// Truncations run so far (the cleaner's guard: see `truncations`).
    truncations: u64,
    /// Why appends are refused after a failed fdatasync (see `StorageError::Offline`).
    pub(super) offline: Option<String>,
    /// The last write failed with ENOSPC: logged once, until a write succeeds.
    pub(super) out_of_space: bool,
    /// Rolled segments whose seal (fdatasync, index files) is still running.
    pub(super) sealing: Vec<i64>,
    /// The size of the last write: a new write buffer starts that large, so
    /// that appends do not copy it again as it grows.
    pub(super) write_size_hint: usize,
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

    /// A failed write or a truncation moved the log end back to
    /// `log_end_offset`: the offsets from there on will be reused.
    pub(super) fn rolled_back(&mut self, log_end_offset: i64) {
        if self.cuts.len() == ROLLBACKS_REMEMBERED {
            self.cuts.pop_front();
        }
        self.cuts.push_back((self.rollbacks, log_end_offset));
        self.rollbacks += 1;
    }

    /// The end below which the offsets assigned in write epoch `epoch`
    /// still hold what was appended then: the lowest log end a rollback
    /// left since (none: every offset). A failed write's rollback keeps
    /// what was written, and a truncation runs after every earlier write,
    /// so below it those appends are written. None when `epoch` is older
    /// than the rollbacks remembered: unknown.
    pub fn surviving_end_since(&self, epoch: u64) -> Option<i64> {
        if epoch == self.rollbacks {
            return Some(i64::MAX);
        }
        let oldest = self.cuts.front()?.0;
        if epoch < oldest || epoch > self.rollbacks {
            return None;
        }
        self.cuts.iter().filter(|(ended, _)| *ended >= epoch).map(|(_, cut)| *cut).min()
    }

    pub fn is_closing(&self) -> bool {
        self.closing
    }

    pub fn is_truncating(&self) -> bool {
        self.truncating
    }

    /// Truncations run so far: a cleaning round that mapped offsets before
    /// one must not record them as cleaned.
    pub fn truncations(&self) -> u64 {
        self.truncations
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
    pub fn truncated(&mut self, gone: &[Segment], log_end_offset: i64) {
        self.truncating = false;
        self.rolled_back(log_end_offset);
        self.truncations += 1;
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

    /// The next job, for the writer task.
    pub(super) fn next_job(&mut self) -> Option<Job> {
        self.queue.pop_front()
    }

    /// The writer still has a write or a seal for the segment at `base`
    /// (queued or running): its file and index files are not final yet.
    pub fn segment_pending(&self, base: i64) -> bool {
        self.sealing.contains(&base)
            || self.queue.iter().any(|job| match job {
                Job::Seal { base_offset } => *base_offset == base,
                Job::Write(write) => write.segment_base == base,
                Job::Delete(_) | Job::Truncate(..) | Job::Close(_) => false,
            })
    }

    pub(super) fn recycle(&mut self, mut buf: AlignedBuf) {
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
