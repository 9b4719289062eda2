//! Kafka RecordBatch v2 framing: the format of the wire *and* of the log.
//!
//! ```text
//! offset  size  field
//!      0     8  base_offset            (not covered by the CRC: the broker rewrites it)
//!      8     4  batch_length           (bytes after this field)
//!     12     4  partition_leader_epoch (not covered by the CRC: the leader stamps it)
//!     16     1  magic (= 2)
//!     17     4  crc (CRC32C of bytes 21..end)
//!     21     2  attributes (bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control)
//!     23     4  last_offset_delta
//!     27     8  base_timestamp
//!     35     8  max_timestamp
//!     43     8  producer_id
//!     51     2  producer_epoch
//!     53     4  base_sequence
//!     57     4  records_count
//!     61     …  records
//! ```
//!
//! Only the header is ever parsed on the hot path; records stay opaque bytes.

use thiserror::Error;

/// Where each header field starts: the one definition of the layout above,
/// for everything that reads or rewrites a header in place (storage, the
/// cleaner, recompression, test fixtures).
pub mod field {
    pub const BASE_OFFSET: usize = 0;
    pub const BATCH_LENGTH: usize = 8;
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORDS_COUNT: usize = 57;
    pub const RECORDS: usize = 61;
}

pub const HEADER_BYTES: usize = field::RECORDS;
/// Bytes before `batch_length` ends: a batch occupies `LOG_OVERHEAD + batch_length` bytes.
pub const LOG_OVERHEAD: usize = field::PARTITION_LEADER_EPOCH;
/// The CRC32C covers the bytes from here to the end of the batch (attributes
/// on): the base offset and leader epoch before it are the broker's to rewrite.
pub const CRC_START: usize = field::ATTRIBUTES;
const MAGIC_V2: i8 = 2;

/// Attribute bits 0-2: the compression codec.
pub const CODEC_MASK: i16 = 0x7;
/// Attribute bit 3: LogAppendTime (the broker's clock in max_timestamp).
pub const LOG_APPEND_TIME_FLAG: i16 = 0x8;
/// Attribute bit 4: part of a transaction.
pub const TRANSACTIONAL_FLAG: i16 = 0x10;
/// Attribute bit 5: a control batch (transaction marker).
pub const CONTROL_FLAG: i16 = 0x20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch truncated: {available} bytes available, header says {needed}")]
    Truncated { available: usize, needed: usize },
    #[error("batch_length {0} is smaller than the v2 header")]
    BadLength(i32),
    #[error("unsupported magic {0} (only v2 record batches are accepted)")]
    BadMagic(i8),
    #[error("CRC32C mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    BadCrc { expected: u32, actual: u32 },
    #[error("records_count {count} does not match last_offset_delta {last_offset_delta}")]
    BadCount { count: i32, last_offset_delta: i32 },
}

/// Compression codec from the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
    Unknown(u8),
}

/// A parsed view of one batch header. Cheap: reads fixed offsets only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

impl BatchHeader {
    /// Parses the header at the start of `bytes`. Checks only that the header
    /// is present and that `batch_length` is plausible; not the CRC.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < HEADER_BYTES {
            return Err(BatchError::Truncated { available: bytes.len(), needed: HEADER_BYTES });
        }
        let batch_length = be_i32(bytes, field::BATCH_LENGTH);
        if (batch_length as i64) < (HEADER_BYTES - LOG_OVERHEAD) as i64 {
            return Err(BatchError::BadLength(batch_length));
        }
        Ok(BatchHeader {
            base_offset: be_i64(bytes, field::BASE_OFFSET),
            batch_length,
            magic: bytes[field::MAGIC] as i8,
            crc: be_i32(bytes, field::CRC) as u32,
            attributes: be_i16(bytes, field::ATTRIBUTES),
            last_offset_delta: be_i32(bytes, field::LAST_OFFSET_DELTA),
            base_timestamp: be_i64(bytes, field::BASE_TIMESTAMP),
            max_timestamp: be_i64(bytes, field::MAX_TIMESTAMP),
            producer_id: be_i64(bytes, field::PRODUCER_ID),
            producer_epoch: be_i16(bytes, field::PRODUCER_EPOCH),
            base_sequence: be_i32(bytes, field::BASE_SEQUENCE),
            records_count: be_i32(bytes, field::RECORDS_COUNT),
        })
    }

    /// Total bytes the batch occupies, header included.
    pub fn total_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn compression(&self) -> Compression {
        match self.attributes & CODEC_MASK {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            n => Compression::Unknown(n as u8),
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// When a compacting cleaner may drop this batch's tombstones (KIP-534):
    /// set by the first cleaning that kept one, carried in `base_timestamp`.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON_FLAG != 0).then_some(self.base_timestamp)
    }
}

/// Attribute bit 6: `base_timestamp` holds the delete horizon (KIP-534), and
/// record timestamp deltas are relative to it.
pub const DELETE_HORIZON_FLAG: i16 = 0x40;

/// Validates one complete batch at the start of `bytes`: header, magic, length,
/// CRC32C and record count. Returns the header; the batch is
/// `bytes[..header.total_bytes()]`.
pub fn validate(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if header.magic != MAGIC_V2 {
        return Err(BatchError::BadMagic(header.magic));
    }
    let total = header.total_bytes();
    if bytes.len() < total {
        return Err(BatchError::Truncated { available: bytes.len(), needed: total });
    }
    let actual = crc32c::crc32c(&bytes[CRC_START..total]);
    if actual != header.crc {
        return Err(BatchError::BadCrc { expected: header.crc, actual });
    }
    if header.records_count < 0 || header.records_count as i64 != header.last_offset_delta as i64 + 1 {
        return Err(BatchError::BadCount { count: header.records_count, last_offset_delta: header.last_offset_delta });
    }
    Ok(header)
}

/// Validates a batch read back from a segment: as [`validate`], except that
/// a compacted batch may hold fewer records than its offset range (the
/// cleaner keeps `last_offset_delta` and drops records, as Kafka does).
pub fn validate_stored(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    match validate(bytes) {
        Err(BatchError::BadCount { count, last_offset_delta }) if count >= 0 && count <= last_offset_delta => {
            BatchHeader::parse(bytes)
        }
        other => other,
    }
}

/// Iterates over the batch headers in a buffer holding consecutive batches,
/// validating each. Stops with an error at the first bad or partial batch.
pub fn validate_all(mut bytes: &[u8]) -> impl Iterator<Item = Result<BatchHeader, BatchError>> + '_ {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        let result = validate(bytes);
        match &result {
            Ok(h) => bytes = &bytes[h.total_bytes()..],
            Err(_) => bytes = &[],
        }
        Some(result)
    })
}

/// Overwrites the base offset of the batch at the start of `batch`. The CRC
/// does not cover this field, so nothing else changes.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    debug_assert!(batch.len() >= HEADER_BYTES);
    put(batch, field::BASE_OFFSET, &base_offset.to_be_bytes());
}

/// Overwrites the partition leader epoch of the batch at the start of
/// `batch`: the leader's, not the producer's (which sends -1). The CRC does
/// not cover this field either.
pub fn set_partition_leader_epoch(batch: &mut [u8], leader_epoch: i32) {
    debug_assert!(batch.len() >= HEADER_BYTES);
    put(batch, field::PARTITION_LEADER_EPOCH, &leader_epoch.to_be_bytes());
}

/// The partition leader epoch of the batch at the start of `batch` (a
/// follower records the epochs of the batches it copies); None when the
/// header is cut short.
pub fn partition_leader_epoch(batch: &[u8]) -> Option<i32> {
    let at = field::PARTITION_LEADER_EPOCH;
    Some(i32::from_be_bytes(batch.get(at..at + 4)?.try_into().ok()?))
}

/// Overwrites the field at `at` with `value`'s bytes.
pub fn put(batch: &mut [u8], at: usize, value: &[u8]) {
    batch[at..at + value.len()].copy_from_slice(value);
}

/// Recomputes the CRC of the batch at the start of `batch` (all of it) after
/// a rewrite of a field the CRC covers.
pub fn refresh_crc(batch: &mut [u8]) {
    debug_assert!(batch.len() >= HEADER_BYTES);
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    put(batch, field::CRC, &crc.to_be_bytes());
}

/// Builds an uncompressed batch holding `values` as records with null keys.
/// Used by tests and by tools; the broker never builds batches of clients' data.
pub fn build(base_timestamp: i64, values: &[&[u8]]) -> Vec<u8> {
    let records: Vec<_> = values.iter().map(|v| (None, Some(*v))).collect();
    super::records::build_keyed(base_timestamp, &records)
}

/// Wraps an uncompressed records section in a v2 header (no producer id,
/// create time `timestamp_ms`) and computes the CRC.
pub fn assemble(timestamp_ms: i64, records_count: i32, records: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + records.len());
    out.extend_from_slice(&0i64.to_be_bytes());
    out.extend_from_slice(&((HEADER_BYTES - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
    out.extend_from_slice(&0i16.to_be_bytes()); // attributes
    out.extend_from_slice(&(records_count - 1).to_be_bytes());
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    out.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&records_count.to_be_bytes());
    out.extend_from_slice(records);
    refresh_crc(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_batch_validates() {
        let batch = build(1000, &[b"a", b"bc", b"def"]);
        let h = validate(&batch).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.total_bytes(), batch.len());
        assert_eq!(h.compression(), Compression::None);
    }

    #[test]
    fn flipped_byte_fails_crc() {
        let mut batch = build(1000, &[b"hello"]);
        let last = batch.len() - 2;
        batch[last] ^= 0x40;
        assert!(matches!(validate(&batch), Err(BatchError::BadCrc { .. })));
    }

    #[test]
    fn base_offset_is_outside_the_crc() {
        let mut batch = build(1000, &[b"x"]);
        set_base_offset(&mut batch, 42);
        assert_eq!(validate(&batch).unwrap().base_offset, 42);
    }

    #[test]
    fn truncated_and_bad_magic_are_refused() {
        let batch = build(1000, &[b"x"]);
        assert!(matches!(validate(&batch[..30]), Err(BatchError::Truncated { .. })));
        assert!(matches!(validate(&batch[..batch.len() - 1]), Err(BatchError::Truncated { .. })));
        let mut v1 = batch.clone();
        v1[field::MAGIC] = 1;
        assert_eq!(validate(&v1), Err(BatchError::BadMagic(1)));
    }

    #[test]
    fn stored_batches_may_have_fewer_records_than_offsets() {
        let mut batch = build(1000, &[b"a", b"b"]);
        put(&mut batch, field::RECORDS_COUNT, &1i32.to_be_bytes());
        refresh_crc(&mut batch);
        assert!(matches!(validate(&batch), Err(BatchError::BadCount { .. })));
        assert_eq!(validate_stored(&batch).unwrap().records_count, 1);
        put(&mut batch, field::RECORDS_COUNT, &3i32.to_be_bytes());
        refresh_crc(&mut batch);
        assert!(validate_stored(&batch).is_err(), "more records than offsets");
    }

    #[test]
    fn validate_all_walks_consecutive_batches() {
        let mut two = build(1, &[b"a"]);
        two.extend(build(2, &[b"b", b"c"]));
        let headers: Vec<_> = validate_all(&two).collect::<Result<_, _>>().unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[1].records_count, 2);
    }
}
