//! The partition log: segments of RecordBatch v2 bytes exactly as they travel
//! on the wire, a sparse offset index and a time index per segment, recovery
//! of a torn tail at start-up. Knows nothing of the Kafka protocol, of
//! replication or of shards; writes go through the runtime's io_uring files.
//!
//! - `log.rs`: `PartitionLog`, the API (append, wait, read, close) that
//!   drives the parts below; its fields are its own, and the parts reach
//!   the segments and the writer's queue through `PartitionLog::state`
//!   (one `RefCell` on the shard) and methods named for what they do;
//! - `append.rs`: the checks and the copy of a leader's and a follower's
//!   append into the pending write;
//! - `segment_set.rs`: the segments and the log start / written end / log
//!   end offsets, changed only through methods that check their invariants;
//! - `writer/`: the `Writer` (the directory descriptor, the notifications,
//!   the `LogIo`, the hot tail handles) and its task: its queue and state
//!   (`queue.rs`), group-committed writes, fdatasyncs, seals, rollback of a
//!   failed write (`write.rs`), truncation jobs (`truncate.rs`);
//! - `recovery.rs`: from a directory to a recovered `SegmentSet` and report;
//! - `truncate.rs`: a follower's truncations (the API, the crash-safe order
//!   of their steps), run as jobs of the writer;
//! - `retention.rs`: retention and DeleteRecords as removals from the
//!   segment set, the log start checkpoint; `cleaner/`: compaction;
//! - `io.rs`: the `LogIo` seam (writes, fdatasyncs, O_DIRECT opens) that
//!   tests implement to inject faults (`tests/faulty_io.rs`);
//! - reads: `read_plan.rs` (where a read starts and stops in a segment),
//!   `direct_read.rs` (O_DIRECT), `hot_tail.rs` (recent writes in memory),
//!   `headers.rs` (walking batch headers), `read_slice.rs`.

mod append;
mod cleaner;
mod direct_read;
mod error;
mod headers;
mod hot_tail;
mod index;
mod io;
mod log;
pub mod read_memory;
mod read_plan;
mod read_slice;
mod recovery;
mod retention;
mod segment;
mod segment_set;
mod sync_journal;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) use tests::faulty_io;
mod timestamps;
mod truncate;
mod writer;

pub use cleaner::{CleanSettings, CleanStats, Cleaner, CleanerError};
pub use error::StorageError;
pub use hot_tail::HotTail;
pub use log::{AppendInfo, LogConfig, PartitionLog, RecoveryReport};
pub use read_slice::ReadSlice;
pub use retention::{HeadDeletion, RetentionPolicy};

/// The size of the file system holding `dir` and the bytes still free there
/// for an unprivileged writer (statvfs), as Kafka reports a log directory's
/// volume; None when it cannot be read. One system call: cheap enough for a
/// shard's thread on an admin request.
pub fn volume_bytes(dir: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated; statvfs fills `stat` when it returns 0.
    if unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it wrote the whole struct.
    let stat = unsafe { stat.assume_init() };
    let block_bytes = stat.f_frsize;
    Some((stat.f_blocks * block_bytes, stat.f_bavail * block_bytes))
}

#[cfg(test)]
mod volume_tests {
    #[test]
    fn a_volume_has_a_size_and_at_most_that_much_free() {
        let (total, usable) = super::volume_bytes(&std::env::temp_dir()).expect("the temp dir's volume");
        assert!(total > 0 && usable <= total, "{total} {usable}");
        assert_eq!(super::volume_bytes(std::path::Path::new("/no/such/directory")), None);
    }
}
