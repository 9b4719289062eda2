//! The writer task of one log: it drains the queue of pending writes in
//! order, one io_uring `write_all_at` per job, fdatasyncs as the flush policy
//! asks, then advances the high watermark and answers `wait_written`.
//!
//! Jobs are tagged with their segment, so bytes appended before a roll reach
//! the old file before any byte reaches the new one, and the old segment is
//! sealed (fsynced, index files written) in between. When a write or fsync
//! fails, every queued write fails with it, the file is cut back to the high
//! watermark and the log end rolls back there: no half-written batch stays,
//! and the next append can succeed once the cause (say ENOSPC) is gone.
//! A failed fdatasync is different: the kernel may already have dropped the
//! pages it could not write, so the log goes offline and refuses appends
//! until a restart (see `StorageError::Offline`).
//!
//! The task holds only a `Weak` reference while idle, so dropping the log
//! without `close` ends it too (no fsync then: the next start recovers).

use std::rc::{Rc, Weak};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::runtime::File;

use super::error::{IoContext, StorageError};
use super::log::PartitionLog;
use super::segment;
use super::sync_journal;

pub(super) enum Job {
    Write(WriteJob),
    /// fsync a rolled segment and write its index files.
    Seal {
        base_offset: i64,
    },
    /// Unlink the files of segments retention took out of the log (retention.rs).
    Delete(Vec<i64>),
    /// The last job: fsync, write the active segment's indexes, stop.
    Close(oneshot::Sender<Result<(), StorageError>>),
}

/// Batches for one segment file, contiguous in offsets and bytes.
pub(super) struct WriteJob {
    pub segment_base: i64,
    pub file: Rc<File>,
    pub position: u64,
    pub buf: Vec<u8>,
    pub last_offset: i64,
    pub messages: u64,
}

/// What has been written but not yet fdatasynced.
#[derive(Default)]
pub(super) struct SyncState {
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

    fn forget(&mut self, file: &Rc<File>) {
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
        let job = log.inner.borrow_mut().queue.pop_front();
        seals.retain(|seal| !seal.is_finished());
        if matches!(job, Some(Job::Delete(_) | Job::Close(_))) {
            // Deleted files and a clean close come after every seal.
            for seal in seals.drain(..) {
                let _ = seal.await;
            }
        }
        match job {
            Some(Job::Write(job)) => log.write(job).await,
            Some(Job::Seal { base_offset }) => {
                log.inner.borrow_mut().sealing.push(base_offset);
                let log = log.clone();
                seals.push(crate::runtime::spawn(async move {
                    log.seal(base_offset).await;
                    log.inner.borrow_mut().sealing.retain(|b| *b != base_offset);
                }));
            }
            Some(Job::Delete(bases)) => log.remove_segment_files(bases).await,
            Some(Job::Close(reply)) => {
                let _ = reply.send(log.finish().await);
                return;
            }
            None => {
                let deadline = log.inner.borrow().sync.deadline(log.config().flush_ms);
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
    fn sync_due(&self) -> bool {
        let inner = self.inner.borrow();
        let config = self.config();
        inner.sync.due(config.flush_messages, config.flush_ms, Instant::now())
    }

    async fn write(&self, job: WriteJob) {
        let WriteJob { segment_base, file, position, buf, last_offset, messages } = job;
        debug_assert!(!buf.is_empty());
        let end = position + buf.len() as u64;
        #[cfg(test)]
        let (result, buf) = fault::write_all_at(&file, buf, position).await;
        #[cfg(not(test))]
        let (result, buf) = file.write_all_at(buf, position).await;
        self.inner.borrow_mut().recycle(buf);
        if let Err(e) = result {
            let path = segment::log_path(&self.dir, segment_base);
            return self.fail(StorageError::io(format!("writing {} at {position}", path.display()), e));
        }
        self.inner.borrow_mut().sync.note_write(&file, messages, Instant::now());
        if self.sync_due() {
            if let Err(error) = self.sync_files().await {
                self.go_offline(&error);
                return self.fail(error);
            }
        }
        self.advance(segment_base, end, last_offset);
    }

    async fn sync_files(&self) -> Result<(), StorageError> {
        let unsynced = std::mem::take(&mut self.inner.borrow_mut().sync);
        for file in &unsynced.files {
            #[cfg(test)]
            let result = fault::sync_data(file).await;
            #[cfg(not(test))]
            let result = file.sync_data().await;
            result.context(|| format!("fdatasync in {}", self.dir.display()))?;
            sync_journal::note_synced(&**file);
        }
        if unsynced.new_segment {
            segment::sync_dir(&self.dir).await?;
        }
        Ok(())
    }

    async fn sync_new_dir(&self) -> Result<(), StorageError> {
        segment::sync_dir(&self.dir).await?;
        match self.dir.parent() {
            Some(parent) => segment::sync_dir(parent).await,
            None => Ok(()),
        }
    }

    /// An fdatasync failed: what was acknowledged may not be on disk, and a
    /// retry could report success for pages the kernel already dropped. So,
    /// as Kafka takes the log directory offline, refuse appends from now on.
    fn go_offline(&self, error: &StorageError) {
        let mut inner = self.inner.borrow_mut();
        if inner.offline.is_none() {
            tracing::error!(
                dir = %self.dir.display(),
                %error,
                "fdatasync failed: the partition refuses produce (KAFKA_STORAGE_ERROR) until the broker restarts"
            );
            inner.offline = Some(error.to_string());
        }
    }

    /// The job's bytes are in the file: move the high watermark past them.
    fn advance(&self, segment_base: i64, end: u64, last_offset: i64) {
        let mut inner = self.inner.borrow_mut();
        debug_assert!(last_offset >= inner.high_watermark && last_offset < inner.log_end_offset);
        if std::mem::take(&mut inner.out_of_space) {
            tracing::info!(dir = %self.dir.display(), "space available again: writes resume");
        }
        inner.high_watermark = last_offset + 1;
        if let Some(segment) = inner.segment_mut(segment_base) {
            debug_assert!(end <= segment.size && end >= segment.readable_bytes);
            segment.readable_bytes = end;
        }
        let high_watermark = inner.high_watermark;
        let mut at = 0;
        while at < inner.waiters.len() {
            if inner.waiters[at].0 < high_watermark {
                let (_, reply) = inner.waiters.swap_remove(at);
                let _ = reply.send(Ok(()));
            } else {
                at += 1;
            }
        }
        drop(inner);
        self.on_written.notify_waiters();
    }

    /// A write or its fdatasync failed: fail it and everything queued after
    /// it, and put the log back as it was at the high watermark.
    fn fail(&self, error: StorageError) {
        let mut inner = self.inner.borrow_mut();
        if !error.is_out_of_space() {
            tracing::error!(dir = %self.dir.display(), %error, "log write failed; rolling back to the high watermark");
        } else if !std::mem::replace(&mut inner.out_of_space, true) {
            // Once per episode, not once per batch: a full disk fails every produce.
            tracing::error!(
                dir = %self.dir.display(),
                %error,
                "disk full: produce gets KAFKA_STORAGE_ERROR until space is freed; failed writes are rolled back"
            );
        }
        let high_watermark = inner.high_watermark;
        for job in std::mem::take(&mut inner.queue) {
            match job {
                Job::Write(write) => inner.recycle(write.buf),
                Job::Seal { .. } => {}
                // Those segments are already out of the log: their files must still go.
                kept @ (Job::Close(_) | Job::Delete(_)) => inner.queue.push_back(kept),
            }
        }
        for (_, reply) in inner.waiters.drain(..) {
            let _ = reply.send(Err(error.duplicate()));
        }
        // Segments rolled after the high watermark hold nothing written.
        while inner.segments.len() > 1 && inner.active().base_offset > high_watermark {
            let dropped = inner.segments.pop().expect("more than one segment");
            if let Err(e) = segment::remove_files(&self.dir, dropped.base_offset) {
                tracing::warn!(dir = %self.dir.display(), base = dropped.base_offset, error = %e, "removing an unwritten segment");
            }
        }
        let interval = self.config().index_interval_bytes;
        let active = inner.active();
        let keep = active.readable_bytes;
        let path = segment::log_path(&self.dir, active.base_offset);
        // Whatever stays beyond `keep` if this fails is overwritten by the
        // next write or cut off by recovery's CRC checks.
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(keep)) {
            tracing::error!(path = %path.display(), error = %e, "cutting back a failed write");
        }
        active.truncate_to(keep, high_watermark, interval);
        inner.log_end_offset = high_watermark;
        inner.rollbacks += 1;
    }

    /// A rolled segment, beside the writes to the next one: make its bytes
    /// durable, then the directory entry of the segment that follows it, then
    /// its index files, since recovery trusts sealed segments' indexes. Under
    /// a flush policy nothing in the next segment is acknowledged before its
    /// directory entry is synced (`SyncState::new_segment`), seal or not.
    async fn seal(&self, base_offset: i64) {
        let sealed = {
            let mut inner = self.inner.borrow_mut();
            inner.segment_mut(base_offset).map(|s| (s.file.clone(), s.encoded_indexes()))
        };
        let Some((file, indexes)) = sealed else {
            return;
        };
        let path = segment::log_path(&self.dir, base_offset);
        let synced = match file.sync_data().await {
            Ok(()) => {
                sync_journal::note_synced(&*file);
                segment::sync_dir(&self.dir).await
            }
            Err(e) => Err(StorageError::io(format!("fdatasync of {}", path.display()), e)),
        };
        self.inner.borrow_mut().sync.forget(&file);
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
        inner.writer_done = true;
        for (_, reply) in inner.waiters.drain(..) {
            let _ = reply.send(Err(StorageError::Closed));
        }
        result
    }

    async fn flush_for_close(&self) -> Result<(), StorageError> {
        self.sync_files().await?;
        let (base_offset, file, indexes) = {
            let mut inner = self.inner.borrow_mut();
            let active = inner.active();
            active.seal_time_index();
            (active.base_offset, active.file.clone(), active.encoded_indexes())
        };
        let path = segment::log_path(&self.dir, base_offset);
        file.sync_data().await.context(|| format!("fdatasync of {}", path.display()))?;
        sync_journal::note_synced(&*file);
        segment::write_index_files(&self.dir, base_offset, indexes).await
    }
}

/// Fault injection for the tests: each test runs its own runtime on its own
/// thread, so thread-locals keep tests apart.
#[cfg(test)]
pub(super) mod fault {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::path::PathBuf;

    use crate::runtime::File;

    thread_local! {
        /// Each segment file's length at its last completed fdatasync: what
        /// a power failure would leave of it.
        pub static SYNCED: RefCell<HashMap<PathBuf, u64>> = RefCell::new(HashMap::new());
        /// Writes to fail: each writes half of its bytes, then reports ENOSPC.
        pub static FAILING_WRITES: Cell<u32> = const { Cell::new(0) };
        /// fdatasyncs (of the write path and flush_ms) to fail with EIO.
        pub static FAILING_SYNCS: Cell<u32> = const { Cell::new(0) };
        pub static WRITES: Cell<u32> = const { Cell::new(0) };
        pub static SYNCS: Cell<u32> = const { Cell::new(0) };
    }

    pub fn note_synced(fd: i32) {
        let link = format!("/proc/self/fd/{fd}");
        let path = std::fs::read_link(&link).expect("a synced file has a name");
        let length = std::fs::metadata(&link).expect("a synced file has a length").len();
        SYNCED.with(|synced| synced.borrow_mut().insert(path, length));
    }

    pub async fn sync_data(file: &File) -> std::io::Result<()> {
        SYNCS.with(|n| n.set(n.get() + 1));
        if take_one(&FAILING_SYNCS) {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        file.sync_data().await
    }

    fn take_one(counter: &'static std::thread::LocalKey<Cell<u32>>) -> bool {
        counter.with(|n| {
            let failing = n.get();
            n.set(failing.saturating_sub(1));
            failing > 0
        })
    }

    pub async fn write_all_at(file: &File, buf: Vec<u8>, position: u64) -> (std::io::Result<()>, Vec<u8>) {
        WRITES.with(|n| n.set(n.get() + 1));
        if !take_one(&FAILING_WRITES) {
            return file.write_all_at(buf, position).await;
        }
        let half = buf[..buf.len() / 2].to_vec();
        let (result, _) = file.write_all_at(half, position).await;
        result.expect("writing the torn half");
        (Err(std::io::Error::from_raw_os_error(libc::ENOSPC)), buf)
    }
}
