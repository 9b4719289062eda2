//! The storage module's one error type. Kafka error codes are chosen by the
//! request handlers, never here.

use thiserror::Error;

use crate::model::batch::BatchError;

#[derive(Debug, Error)]
pub enum StorageError {
    /// An operating-system call failed; `context` names the file and the step.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("offset {offset} is out of range: log start {log_start}, written end {written_end_offset}")]
    OffsetOutOfRange { offset: i64, log_start: i64, written_end_offset: i64 },
    /// The log was closed: no more appends, and no writer to wait for.
    #[error("the partition log is closed")]
    Closed,
    /// `wait_written` asked for an offset the log does not hold: it was never
    /// appended, or its write failed and the log end rolled back before the
    /// wait began.
    #[error("offset {offset} is not in the log (log end offset {log_end_offset})")]
    NotAppended { offset: i64, log_end_offset: i64 },
    /// `append` was given bytes that are not whole record batches.
    #[error("append refused: {0}")]
    InvalidBatch(#[from] BatchError),
    /// A follower's append whose first batch starts below the log end: its
    /// log and the leader's overlap there, so it must truncate first (or
    /// fetch from its log end); nothing was written.
    #[error("replicated batch at offset {base_offset} overlaps the log, whose end is {log_end_offset}")]
    ReplicaOverlap { base_offset: i64, log_end_offset: i64 },
    /// A follower's append whose batches do not follow one another (Kafka's
    /// OffsetsOutOfOrderException); nothing was written.
    #[error("replicated batch at offset {base_offset} does not follow the one before it (next offset {next_offset})")]
    ReplicaOffsetsOutOfOrder { base_offset: i64, next_offset: i64 },
    /// A truncation below the log start offset (Kafka refuses it too).
    #[error("cannot truncate to offset {offset}, below the log start offset {log_start}")]
    TruncateBelowStart { offset: i64, log_start: i64 },
    /// An append while a truncation is queued or running: the log end is
    /// about to move back, so offsets cannot be assigned.
    #[error("the partition log is being truncated")]
    Truncating,
    /// A single append that cannot fit in one segment (positions are 32-bit).
    #[error("append of {bytes} bytes cannot fit in one segment")]
    AppendTooLarge { bytes: usize },
    /// An fdatasync of this log failed, so the disk may not hold what the page
    /// cache shows: appends are refused until a restart recovers the files
    /// (Kafka takes the log directory offline).
    #[error("{dir} is offline after a failed fdatasync ({reason}); restart the broker to recover it")]
    Offline { dir: String, reason: String },
    /// A segment file does not hold what its index or the written end promise.
    #[error("{path}: corrupt at position {position}: {reason}")]
    Corrupt { path: String, position: u64, reason: String },
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> StorageError {
        StorageError::Io { context: context.into(), source }
    }

    /// No space left on the device: the write is rolled back, and the next
    /// append may succeed once space is freed.
    pub(crate) fn is_out_of_space(&self) -> bool {
        matches!(self, StorageError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
    }

    /// A copy for the second and later waiters of one failed write:
    /// `std::io::Error` is not `Clone`, so the kind and message are kept.
    pub(crate) fn duplicate(&self) -> StorageError {
        match self {
            StorageError::Io { context, source } => StorageError::Io {
                context: context.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StorageError::Closed => StorageError::Closed,
            StorageError::Offline { dir, reason } => StorageError::Offline { dir: dir.clone(), reason: reason.clone() },
            other => StorageError::Corrupt { path: String::new(), position: 0, reason: other.to_string() },
        }
    }
}

/// Attaches a context to std I/O results, so every error names its file.
pub(crate) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StorageError> {
        self.map_err(|source| StorageError::io(what(), source))
    }
}
