//! What the broker checks of every batch a client produces, before any of it
//! reaches a log, as Kafka's `LogValidator` does for a client's append: the
//! batch's framing (`batch::validate`: magic, length, CRC32C, records_count
//! against last_offset_delta), its size, at least one record, no control
//! batch, and then every record (`records::check`: varint lengths, attributes,
//! timestamp and offset deltas, key, value and headers inside the record,
//! records_count records and nothing after them). A compressed batch is
//! decompressed for that, with the bound of `compression.rs`.
//!
//! A batch of random bytes with a valid CRC is thus refused with the partition
//! untouched, where storing it would stop every consumer at its offset.
//!
//! Cost: an uncompressed batch is walked in place, allocating nothing; a
//! compressed one is decompressed into the shard's reused buffer (the codec's
//! own per-batch state aside: gzip's and lz4's decoders are created per batch,
//! zstd's context is reused).

use thiserror::Error;

use super::batch::{self, BatchError, BatchHeader};
use super::compression::{CompressionError, Decompressor};
use super::records::{self, RecordError};

#[derive(Debug, Error)]
pub enum ValidateError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("batch of {bytes} bytes exceeds max.message.bytes {max_bytes}")]
    TooLarge { bytes: usize, max_bytes: usize },
    #[error("a batch must hold at least one record")]
    NoRecords,
    #[error("clients may not write control batches")]
    ControlBatch,
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// A produced batch that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducedBatch {
    pub header: BatchHeader,
    /// Some record has no key (a compacted topic refuses the batch).
    pub keyless: bool,
}

/// Validates the batch at the start of `bytes` (bytes after it are the next
/// batches'), at most `max_batch_bytes` long (the topic's max.message.bytes).
pub fn produced_batch(
    bytes: &[u8],
    max_batch_bytes: usize,
    decompressor: &mut Decompressor,
) -> Result<ProducedBatch, ValidateError> {
    let header = batch::validate(bytes)?;
    if header.total_bytes() > max_batch_bytes {
        return Err(ValidateError::TooLarge { bytes: header.total_bytes(), max_bytes: max_batch_bytes });
    }
    if header.records_count < 1 {
        return Err(ValidateError::NoRecords);
    }
    if header.is_control() {
        return Err(ValidateError::ControlBatch);
    }
    let summary = decompressor.with_records(&header, bytes, |section| records::check(&header, section))??;
    Ok(ProducedBatch { header, keyless: summary.keyless })
}

#[cfg(test)]
mod tests;
