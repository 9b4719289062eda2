//! The writer's jobs on the files: a write (and the fdatasync the flush
//! policy asks for), the rollback of a failed one, a rolled segment's seal,
//! the directory fsyncs, the close.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::runtime::{align_down, AlignedBuf, DIRECT_IO_ALIGN};

use super::super::error::{IoContext, StorageError};
use super::super::hot_tail::HotRange;
use super::super::log::PartitionLog;
use super::super::segment;
use super::queue::Job;
use super::{is_out_of_descriptors, WriteJob, Writer};

impl Writer {
    pub(super) fn sync_due(&self, log: &PartitionLog) -> bool {
        let state = log.state().borrow();
        let config = log.config();
        state.writer.sync.due(config.flush_messages, config.flush_ms, Instant::now())
    }

    pub(super) async fn write(&self, log: &PartitionLog, mut job: WriteJob) {
        let (segment_base, position) = (job.segment_base, job.position);
        let mut buf = std::mem::take(&mut job.buf);
        debug_assert!(!buf.is_empty() && position % DIRECT_IO_ALIGN as u64 == 0);
        let end = position + buf.len() as u64;
        // Appends after this one open a new job, which starts with this tail.
        if let Some(segment) = log.state().borrow_mut().segments.segment_mut(segment_base) {
            debug_assert!(segment.size >= end);
            let tail_start = (align_down(end) - position) as usize;
            segment.tail.clear();
            segment.tail.extend_from_slice(&buf[tail_start..]);
        }
        buf.pad_to_block();
        let (result, buf) = self.io.write_all_at(&job.file, buf, position).await;
        if let Err(e) = result {
            log.state().borrow_mut().writer.recycle(buf);
            let path = segment::log_path(&self.dir, segment_base);
            return self.fail(log, StorageError::io(format!("writing {} at {position}", path.display()), e));
        }
        {
            let mut state = log.state().borrow_mut();
            state.writer.write_size_hint = buf.len();
            state.writer.sync.note_write(&job.file, job.messages, Instant::now());
        }
        if self.sync_due(log) {
            if let Err(error) = self.sync_files(log).await {
                log.state().borrow_mut().writer.recycle(buf);
                self.go_offline(log, &error);
                return self.fail(log, error);
            }
        }
        self.keep_hot(log, &job, buf, (end - position) as usize);
        self.advance(log, segment_base, end, job.last_offset);
    }

    /// With O_DIRECT, fetches at the tail read a write's bytes from memory
    /// (the page cache does not have them): its buffer, `written` bytes of
    /// it, joins the hot tail. Otherwise the buffer is reused.
    fn keep_hot(&self, log: &PartitionLog, job: &WriteJob, mut buf: AlignedBuf, written: usize) {
        if !log.config().direct_io || !self.hot_tail.enabled() {
            return log.state().borrow_mut().writer.recycle(buf);
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

    pub(super) async fn sync_files(&self, log: &PartitionLog) -> Result<(), StorageError> {
        let unsynced = std::mem::take(&mut log.state().borrow_mut().writer.sync);
        for file in &unsynced.files {
            self.io.sync_data(file).await.context(|| format!("fdatasync in {}", self.dir.display()))?;
        }
        if unsynced.new_segment {
            self.sync_own_dir().await?;
        }
        Ok(())
    }

    /// fsync of the partition directory through the descriptor the writer
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
    pub(super) async fn sync_new_dir(&self) -> Result<(), StorageError> {
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
    pub(super) fn go_offline(&self, log: &PartitionLog, error: &StorageError) {
        let mut state = log.state().borrow_mut();
        if state.writer.offline.is_none() {
            tracing::error!(
                dir = %self.dir.display(),
                %error,
                "fdatasync failed: the partition refuses produce (KAFKA_STORAGE_ERROR) until the broker restarts"
            );
            state.writer.offline = Some(error.to_string());
        }
    }

    /// The job's bytes are in the file: move the written end past them.
    fn advance(&self, log: &PartitionLog, segment_base: i64, end: u64, last_offset: i64) {
        let mut state = log.state().borrow_mut();
        if std::mem::take(&mut state.writer.out_of_space) {
            tracing::info!(dir = %self.dir.display(), "space available again: writes resume");
        }
        state.segments.written(segment_base, end, last_offset);
        let written_end_offset = state.segments.written_end_offset();
        let mut at = 0;
        while at < state.writer.waiters.len() {
            if state.writer.waiters[at].0 < written_end_offset {
                let (_, reply) = state.writer.waiters.swap_remove(at);
                let _ = reply.send(Ok(()));
            } else {
                at += 1;
            }
        }
        drop(state);
        self.on_written.notify_waiters();
    }

    /// A write or its fdatasync failed: fail it and everything queued after
    /// it, and put the log back as it was at the written end.
    pub(super) fn fail(&self, log: &PartitionLog, error: StorageError) {
        let mut state = log.state().borrow_mut();
        if !error.is_out_of_space() {
            tracing::error!(dir = %self.dir.display(), %error, "log write failed; rolling back to the written end");
        } else if !std::mem::replace(&mut state.writer.out_of_space, true) {
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
        for job in std::mem::take(&mut state.writer.queue) {
            match job {
                Job::Write(write) => state.writer.recycle(write.buf),
                Job::Seal { .. } => {}
                // Those segments are already out of the log: their files must
                // still go; a truncation still runs (on what was written).
                kept @ (Job::Close(_) | Job::Delete(_) | Job::Truncate(..)) => state.writer.queue.push_back(kept),
            }
        }
        for (_, reply) in state.writer.waiters.drain(..) {
            let _ = reply.send(Err(error.duplicate()));
        }
        // Segments rolled after the written end hold nothing written.
        for dropped in state.segments.roll_back(log.config().index_interval_bytes) {
            if let Err(e) = segment::remove_files(&self.dir, dropped.base_offset) {
                tracing::warn!(dir = %self.dir.display(), base = dropped.base_offset, error = %e, "removing an unwritten segment");
            }
        }
        let active = state.segments.active();
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
            state.writer.offline.get_or_insert_with(|| format!("cutting back a failed write: {e}"));
        }
        let log_end_offset = state.segments.log_end_offset();
        debug_assert_eq!(log_end_offset, state.segments.written_end_offset(), "rolled back to the written end");
        state.writer.rolled_back(log_end_offset);
    }

    /// A rolled segment, beside the writes to the next one: make its bytes
    /// durable, then the directory entry of the segment that follows it, then
    /// its index files, since recovery trusts sealed segments' indexes. Under
    /// a flush policy nothing in the next segment is acknowledged before its
    /// directory entry is synced (`SyncState::new_segment`), seal or not.
    pub(super) async fn seal(&self, log: &PartitionLog, base_offset: i64) {
        let sealed = {
            let mut state = log.state().borrow_mut();
            state.segments.segment_mut(base_offset).map(|s| {
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
            let mut state = log.state().borrow_mut();
            state.writer.sync.forget(&file);
            state.writer.sync.forget(&written);
        }
        if let Err(error) = synced {
            // Writes to the next segment may be in flight, so nothing is
            // rolled back here; refusing appends from now on is what is left.
            return self.go_offline(log, &error);
        }
        if let Err(error) = segment::write_index_files(&self.dir, base_offset, indexes).await {
            // The index is rebuilt at the next start; the data was acknowledged.
            tracing::error!(path = %path.display(), %error, "writing a rolled segment's indexes");
        }
    }

    pub(super) async fn finish(&self, log: &PartitionLog) -> Result<(), StorageError> {
        let result = self.flush_for_close(log).await;
        let mut state = log.state().borrow_mut();
        state.writer.done = true;
        for (_, reply) in state.writer.waiters.drain(..) {
            let _ = reply.send(Err(StorageError::Closed));
        }
        result
    }

    async fn flush_for_close(&self, log: &PartitionLog) -> Result<(), StorageError> {
        self.sync_files(log).await?;
        let (base_offset, file, size, indexes) = {
            let mut state = log.state().borrow_mut();
            let active = state.segments.active();
            active.seal_time_index();
            (active.base_offset, active.file.clone(), active.size, active.encoded_indexes())
        };
        let path = segment::log_path(&self.dir, base_offset);
        crate::runtime::set_len(&file, size).context(|| format!("cutting the padding off {}", path.display()))?;
        self.io.sync_data(&file).await.context(|| format!("fdatasync of {}", path.display()))?;
        segment::write_index_files(&self.dir, base_offset, indexes).await
    }
}
