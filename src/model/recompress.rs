//! Topic-level `compression.type`: re-encoding a produced batch with the
//! topic's codec, as Kafka's broker does when the topic names a specific codec
//! and the producer used another one.
//!
//! Only the codec bits of `attributes`, the records section, `batch_length`
//! and the CRC change. Every other header field (base offset, partition leader
//! epoch, producer id/epoch, base sequence, base and max timestamps, timestamp
//! type, transactional/control/delete-horizon bits, last offset delta, record
//! count) is copied verbatim, and the *uncompressed* records section is carried
//! over byte for byte: records are identical whatever the codec, so they are
//! never decoded into owned values, only checked (`records::check`) before the
//! broker stores them.
//!
//! This is a cold path (only topics that demand a codec): the section is
//! decompressed into the caller's bounded [`Decompressor`], and one buffer is
//! allocated per batch for the output.

use thiserror::Error;

use super::batch::{self, field, BatchError, CODEC_MASK, HEADER_BYTES, LOG_OVERHEAD};
use super::compression::{self, Codec, CompressionError, Decompressor};
use super::records::{self, RecordError};

/// Parses a topic's `compression.type` value: `None` for `producer` (keep
/// batches as they came). Kafka's values are `producer`, `uncompressed`,
/// `gzip`, `snappy`, `lz4` and `zstd` (matched ignoring ASCII case). Any other
/// value also yields `None` (no recompression); config validation should use
/// [`is_valid_compression_type`] to refuse it up front.
pub fn target_codec(compression_type: &str) -> Option<Codec> {
    Codec::ALL.into_iter().find(|c| compression_type.eq_ignore_ascii_case(c.name()))
}

/// Whether `value` is an acceptable topic `compression.type`.
pub fn is_valid_compression_type(value: &str) -> bool {
    value.eq_ignore_ascii_case("producer") || target_codec(value).is_some()
}

/// Why a batch could not be recompressed.
#[derive(Debug, Error)]
pub enum RecompressError {
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("recompressed batch would be {0} bytes, more than a batch can hold")]
    TooLarge(usize),
}

/// Re-encodes one batch (`batch` starts with exactly one RecordBatch v2; bytes
/// after it are ignored) with `codec`. The batch is validated first (CRC,
/// magic, count), its records section is decompressed and checked, then
/// compressed with `codec`; the header is copied with only the codec bits,
/// `batch_length` and the CRC changed. If the batch already uses `codec` it is
/// still checked, and returned unchanged.
pub fn recompress(batch: &[u8], codec: Codec, decompressor: &mut Decompressor) -> Result<Vec<u8>, RecompressError> {
    let header = batch::validate(batch)?;
    let batch = &batch[..header.total_bytes()];
    let source = Codec::try_from(header.compression())?;
    decompressor.with_records(&header, batch, |records| {
        records::check(&header, records)?;
        if source == codec {
            return Ok(batch.to_vec());
        }
        let estimate = match codec {
            Codec::None => records.len(),
            _ => records.len() / 2 + 64,
        };
        let mut out = Vec::with_capacity(HEADER_BYTES + estimate);
        out.extend_from_slice(&batch[..HEADER_BYTES]);
        let attributes = (header.attributes & !CODEC_MASK) | codec.id() as i16;
        batch::put(&mut out, field::ATTRIBUTES, &attributes.to_be_bytes());
        compression::compress(codec, records, &mut out)?;
        let batch_length = out.len() - LOG_OVERHEAD;
        if batch_length > i32::MAX as usize {
            return Err(RecompressError::TooLarge(out.len()));
        }
        batch::put(&mut out, field::BATCH_LENGTH, &(batch_length as i32).to_be_bytes());
        batch::refresh_crc(&mut out);
        debug_assert!(batch::validate(&out).is_ok());
        Ok(out)
    })?
}

#[cfg(test)]
mod tests;
