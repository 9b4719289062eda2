//! A follower's truncations (Kafka's `UnifiedLog.truncateTo` and
//! `truncateFullyAndStartAt`): when OffsetsForLeaderEpoch says its log
//! diverged from the new leader's, or the leader's log starts past its end.
//!
//! A truncation is a job of the writer task (writer/truncate.rs): it runs after every
//! write, seal and deletion queued before it, and appends are refused
//! (`StorageError::Truncating`) from the call until it has run, so nothing
//! is in flight while the files change. It is durable before it answers,
//! and a crash at any step leaves what recovery opens as a prefix of the old
//! log:
//!
//! ```text
//! truncate_to(offset):    0. the cleaner checkpoint is lowered to the new
//!                            log end if it is above (a lower one only costs
//!                            cleaning again)
//!                         1. later segments' files go, newest first (index
//!                            files, then the .log): a crash leaves a shorter
//!                            run of whole segments, never a gap
//!                         2. the cut segment's index files go (it is active
//!                            again, and recovery rebuilds a missing index)
//!                         3. its .log is cut at the batch boundary, fdatasynced
//!                         4. the directory is fsynced
//! truncate_fully_and_start_at(offset):
//!                         the cleaner checkpoint is lowered to the offset
//!                         if above; the old segments' files go, newest first; the
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

use super::error::StorageError;
use super::log::PartitionLog;

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
            let mut state = self.state().borrow_mut();
            if let Some(refusal) = state.writer.refusal(self.dir()) {
                return Err(refusal);
            }
            state.writer.truncate(truncation)
        };
        self.wake_writer();
        reply.await.unwrap_or(Err(StorageError::Closed))
    }
}
