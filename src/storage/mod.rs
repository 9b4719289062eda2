//! The partition log: segments of RecordBatch v2 bytes exactly as they travel
//! on the wire, a sparse offset index and a time index per segment, recovery
//! of a torn tail at start-up. Knows nothing of the Kafka protocol or of
//! shards; writes go through the runtime's io_uring files.

mod cleaner;
mod direct_read;
mod error;
mod headers;
mod hot_tail;
mod index;
mod log;
pub mod read_memory;
mod read_slice;
mod recovery;
mod retention;
mod segment;
mod sync_journal;
#[cfg(test)]
mod tests;
mod timestamps;
mod writer;

pub use cleaner::{CleanSettings, CleanStats, Cleaner, CleanerError};
pub use error::StorageError;
pub use hot_tail::HotTail;
pub use log::{AppendInfo, LogConfig, PartitionLog, RecoveryReport};
pub use read_slice::ReadSlice;
pub use retention::{HeadDeletion, RetentionPolicy};
