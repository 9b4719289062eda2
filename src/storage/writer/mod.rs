//! The writer of one log: a task that drains the queue of pending writes in
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
//! - `queue.rs`: the queue and its state (`WriterState`), which the log
//!   fills under its one `RefCell` (appends, rolls, waits, deletions,
//!   truncations, the close);
//! - `write.rs`: the jobs' I/O: writes, fdatasyncs, seals, the rollback of a
//!   failed write, the close;
//! - `truncate.rs`: a follower's truncation, as a job (see `../truncate.rs`).
//!
//! The `Writer` owns what only it needs: the partition directory's
//! descriptor for its fsyncs, the notifications (its wake-up, and
//! `on_written` for the shard), the `LogIo`, its handles on the hot tail. It
//! reaches the log only through `PartitionLog::state` (the segments and the
//! queue) and a few methods named for what they do; it holds the log by a
//! `Weak` reference while idle, so dropping the log without `close` ends the
//! task too (no fsync then: the next start recovers).

mod queue;
mod truncate;
mod write;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::{Rc, Weak};

use tokio::sync::Notify;

use crate::runtime::File;

use super::hot_tail::{HotTail, LogHotTail};
use super::io::LogIo;
use super::log::PartitionLog;
use queue::Job;

pub(super) use queue::{WriteJob, WriterState};

/// One log's writer; shared (`Rc`) by its task and the seals it spawns.
pub(super) struct Writer {
    log: Weak<PartitionLog>,
    dir: PathBuf,
    /// The partition directory, held open for its fsyncs.
    dir_file: File,
    /// Wakes the task (one waiter: notify_one keeps a permit).
    wake: Rc<Notify>,
    /// Told when the written end moves (the shard's waiters for new data).
    on_written: Rc<Notify>,
    /// Writes, fdatasyncs and O_DIRECT opens go through it (see io.rs).
    io: &'static dyn LogIo,
    /// The log's recent writes: a write joins them when the log is O_DIRECT.
    hot: Rc<RefCell<LogHotTail>>,
    hot_tail: Rc<HotTail>,
}

/// What a log hands its writer at open.
pub(super) struct WriterHandles {
    pub dir_file: File,
    pub wake: Rc<Notify>,
    pub on_written: Rc<Notify>,
    pub io: &'static dyn LogIo,
    pub hot: Rc<RefCell<LogHotTail>>,
    pub hot_tail: Rc<HotTail>,
}

/// Spawns the writer task of `log` on the current shard. `created`: the log
/// is new, so its directory entries are synced before its first write (and
/// so before its first acknowledgement).
pub(super) fn spawn(log: &Rc<PartitionLog>, handles: WriterHandles, created: bool) {
    let WriterHandles { dir_file, wake, on_written, io, hot, hot_tail } = handles;
    let dir = log.dir().to_path_buf();
    let writer = Rc::new(Writer { log: Rc::downgrade(log), dir, dir_file, wake, on_written, io, hot, hot_tail });
    crate::runtime::spawn(writer.run(created));
}

impl Writer {
    async fn run(self: Rc<Self>, created: bool) {
        if let Some(log) = self.log.upgrade().filter(|_| created) {
            if let Err(error) = self.sync_new_dir().await {
                self.go_offline(&log, &error);
                self.fail(&log, error);
            }
        }
        // Seals run beside the writes: a rolled segment's fdatasync can take
        // hundreds of milliseconds (a whole segment of dirty pages), and writes
        // to the next segment must not wait for it.
        let mut seals: Vec<tokio::task::JoinHandle<()>> = Vec::new();
        loop {
            let Some(log) = self.log.upgrade() else { return };
            let job = log.state().borrow_mut().writer.next_job();
            seals.retain(|seal| !seal.is_finished());
            if matches!(job, Some(Job::Delete(_) | Job::Truncate(..) | Job::Close(_))) {
                // Deleted files, a truncation and a clean close come after every seal.
                for seal in seals.drain(..) {
                    let _ = seal.await;
                }
            }
            match job {
                Some(Job::Write(job)) => self.write(&log, job).await,
                Some(Job::Seal { base_offset }) => {
                    log.state().borrow_mut().writer.sealing.push(base_offset);
                    let writer = self.clone();
                    seals.push(crate::runtime::spawn(async move {
                        writer.seal(&log, base_offset).await;
                        log.state().borrow_mut().writer.sealing.retain(|b| *b != base_offset);
                    }));
                }
                Some(Job::Delete(bases)) => super::retention::remove_segment_files(&self.dir, bases).await,
                Some(Job::Truncate(truncation, reply)) => {
                    let _ = reply.send(self.truncate(&log, truncation).await);
                }
                Some(Job::Close(reply)) => {
                    let _ = reply.send(self.finish(&log).await);
                    return;
                }
                None => {
                    let deadline = log.state().borrow().writer.sync.deadline(log.config().flush_ms);
                    if self.sync_due(&log) {
                        if let Err(error) = self.sync_files(&log).await {
                            // Already acknowledged: nothing to roll back, but no more acks either.
                            self.go_offline(&log, &error);
                        }
                        continue;
                    }
                    drop(log);
                    match deadline {
                        Some(deadline) => {
                            let _ = tokio::time::timeout_at(deadline, self.wake.notified()).await;
                        }
                        None => self.wake.notified().await,
                    }
                }
            }
        }
    }
}

/// EMFILE / ENFILE: a descriptor could not be had, nothing was written.
fn is_out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}
