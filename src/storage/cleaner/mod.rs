//! Log compaction (cleanup.policy=compact), as Kafka's LogCleaner does it:
//! keep the newest record of every key in a log's closed segments.
//!
//! - A round maps key -> latest offset over the log's dirty section, from the
//!   cleaner checkpoint up to the first uncleanable offset (the active
//!   segment, or the first segment holding records younger than
//!   min.compaction.lag.ms), in a map bounded by log.cleaner.dedupe.buffer.size.
//!   A log is cleaned when dirty bytes / all bytes >= min.cleanable.dirty.ratio,
//!   when its first dirty segment's first batch is older than
//!   max.compaction.lag.ms, or when tombstones it kept have reached their
//!   delete horizon.
//! - Every closed segment below the mapped end is then rewritten without the
//!   records the map supersedes (see `filter.rs`) and swapped in crash-safely
//!   (see `files.rs`); offsets never move, so a cleaned log has gaps.
//! - A batch the round cannot read (a payload that does not decompress or
//!   decompresses past the bound, malformed records) is kept as it is and its
//!   keys left out of the map, which only keeps more records; a segment
//!   holding a batch whose CRC fails, or whose batches cannot be told apart,
//!   is kept whole. The round counts them for one log line and goes on:
//!   retrying cannot mend them.
//! - The checkpoint is advanced before the first swap of a round: recovery
//!   takes a gap below it as compaction's, not as a lost tail. A round cut
//!   short after that (a segment removed by retention meanwhile, shutdown)
//!   leaves some superseded records until their keys are written again.
//!
//! The round runs on the shard thread as a task of its own, reading and
//! writing through io_uring and yielding after every batch, so produce and
//! fetch on the shard keep being served. Readers of a replaced segment keep
//! its file open (`Rc<File>`) until they finish.

mod files;
mod filter;
mod offset_map;
mod round;

use thiserror::Error;

use crate::model::batch::BatchError;
use crate::model::compression::CompressionError;
use crate::model::records::RecordError;

use super::error::StorageError;

pub use files::{finish_interrupted, read_checkpoint, write_checkpoint};
pub use round::{CleanSettings, CleanStats, Cleaner};

#[derive(Debug, Error)]
pub enum CleanerError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("corrupt batch in a closed segment: {0}")]
    Batch(#[from] BatchError),
    #[error("corrupt records in a closed segment: {0}")]
    Records(#[from] RecordError),
    #[error("cannot decompress or recompress a batch: {0}")]
    Compression(#[from] CompressionError),
    #[error("a cleaned batch would not fit a batch's 32-bit length")]
    BatchTooLarge,
    #[error("log.cleaner.dedupe.buffer.size holds {keys} keys, too few for one batch of {records} records")]
    MapTooSmall { keys: usize, records: i32 },
}

#[cfg(test)]
mod tests;
