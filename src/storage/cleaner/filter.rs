//! Which records of a batch a cleaning keeps, and the batch rebuilt from them.
//! Pure: bytes in, bytes out.
//!
//! A record is kept when its offset is past the mapped (dirty) section, or
//! when it holds the latest offset of its key and is not a tombstone whose
//! delete horizon has passed. Records without a key are dropped, as Kafka's
//! cleaner does (a compacted topic refuses them at produce time).
//!
//! A rebuilt batch keeps its base offset and its `last_offset_delta` (Kafka's
//! `overrideLastOffset`: the producer's last sequence stays known), and each
//! kept record keeps its offset delta, so no offset ever moves. Its records
//! are compressed again with the batch's own codec and its CRC recomputed.
//! The first cleaning that keeps a tombstone stamps the batch with a delete
//! horizon (KIP-534: attribute bit 6, `base_timestamp` = now +
//! delete.retention.ms, record timestamp deltas re-based so every record's
//! timestamp is unchanged); a later cleaning after the horizon drops it.
//!
//! A batch left with no record is dropped whole. Kafka keeps such a batch
//! (empty) when it is an active producer's last, to keep its sequence state
//! across a restart; corelog keeps producer state in memory only (see
//! `shard/producers.rs`), so that retention is ignored here. Control batches
//! are kept as they are: corelog has no transactions, so no marker ever
//! becomes removable.

use crate::model::batch::{
    self, field, BatchHeader, DELETE_HORIZON_FLAG, HEADER_BYTES, LOG_APPEND_TIME_FLAG, LOG_OVERHEAD,
};
use crate::model::compression::{self, Codec, Decompressor};
use crate::model::records::{self, RawRecord};

use super::offset_map::OffsetMap;
use super::CleanerError;

/// What a cleaning round decides with.
pub struct Rules<'a> {
    pub map: &'a OffsetMap,
    /// Records at or after this offset were not mapped: all are kept.
    pub map_end: i64,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
}

/// What became of one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// Every record stays and nothing needs stamping: copy the bytes.
    Keep,
    /// No record stays.
    Drop,
    /// Some records stay, in these new batch bytes.
    Rebuilt(Vec<u8>),
}

/// A filtered batch and, when tombstones stay in it, the delete horizon
/// after which the next cleaning can drop them.
#[derive(Debug)]
pub struct Outcome {
    pub batch: Filtered,
    pub records_removed: u32,
    pub tombstone_horizon_ms: Option<i64>,
}

impl Outcome {
    /// The batch stays as it is, and tells nothing of tombstones.
    pub fn unchanged() -> Outcome {
        Outcome { batch: Filtered::Keep, records_removed: 0, tombstone_horizon_ms: None }
    }
}

impl Rules<'_> {
    fn keeps(&self, record: &records::Record<'_>, horizon_ms: Option<i64>) -> bool {
        if record.offset >= self.map_end {
            return true;
        }
        let Some(key) = record.key else { return false };
        let latest = self.map.get(key).is_none_or(|latest| record.offset >= latest);
        latest && (record.value.is_some() || horizon_ms.is_none_or(|horizon| self.now_ms < horizon))
    }
}

/// Filters one whole batch (`bytes` is exactly the batch), decompressing it
/// with `decompressor` if need be. An error means the batch cannot be read:
/// the caller keeps it as it is.
pub fn filter_batch(bytes: &[u8], rules: &Rules<'_>, decompressor: &mut Decompressor) -> Result<Outcome, CleanerError> {
    let header = batch::validate_stored(bytes)?;
    debug_assert_eq!(header.total_bytes(), bytes.len());
    if header.is_control() || header.base_offset >= rules.map_end {
        return Ok(Outcome::unchanged());
    }
    decompressor.with_records(&header, bytes, |section| filter_records(bytes, &header, section, rules))?
}

/// Filters the records of a batch, given its uncompressed records section.
fn filter_records(
    bytes: &[u8],
    header: &BatchHeader,
    section: &[u8],
    rules: &Rules<'_>,
) -> Result<Outcome, CleanerError> {
    // The whole section first: nothing is dropped from a batch only partly readable.
    records::check(header, section)?;
    let horizon = header.delete_horizon_ms();
    let mut kept: Vec<RawRecord<'_>> = Vec::with_capacity(header.records_count.max(0) as usize);
    for record in records::walk(*header, section) {
        let record = record?;
        if rules.keeps(&record.record, horizon) {
            kept.push(record);
        }
    }
    let records_removed = header.records_count as u32 - kept.len() as u32;
    let tombstones = kept.iter().any(|r| r.record.value.is_none());
    let stamp = tombstones && horizon.is_none();
    let tombstone_horizon_ms = tombstones.then(|| horizon.unwrap_or(rules.now_ms + rules.delete_retention_ms));
    let batch = if kept.is_empty() {
        Filtered::Drop
    } else if records_removed == 0 && !stamp {
        Filtered::Keep
    } else {
        Filtered::Rebuilt(rebuild(bytes, header, &kept, tombstone_horizon_ms.filter(|_| stamp))?)
    };
    Ok(Outcome { batch, records_removed, tombstone_horizon_ms })
}

/// The batch with only `kept`, stamped with `new_horizon_ms` if given.
fn rebuild(
    original: &[u8],
    header: &BatchHeader,
    kept: &[RawRecord<'_>],
    new_horizon_ms: Option<i64>,
) -> Result<Vec<u8>, CleanerError> {
    let base_timestamp = new_horizon_ms.unwrap_or(header.base_timestamp);
    let mut section = Vec::with_capacity(kept.iter().map(|r| r.tail.len() + 16).sum());
    for record in kept {
        let delta = record.record.timestamp.wrapping_sub(base_timestamp);
        let delta = if header.attributes & LOG_APPEND_TIME_FLAG != 0 { record.timestamp_delta } else { delta };
        record.write_with_delta(delta, &mut section);
    }
    let max_timestamp = match header.attributes & LOG_APPEND_TIME_FLAG {
        0 => kept.iter().map(|r| r.record.timestamp).max().expect("a rebuilt batch keeps records"),
        _ => header.max_timestamp,
    };
    let mut attributes = header.attributes;
    if new_horizon_ms.is_some() {
        attributes |= DELETE_HORIZON_FLAG;
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + section.len());
    out.extend_from_slice(&original[..HEADER_BYTES]);
    batch::put(&mut out, field::ATTRIBUTES, &attributes.to_be_bytes());
    batch::put(&mut out, field::BASE_TIMESTAMP, &base_timestamp.to_be_bytes());
    batch::put(&mut out, field::MAX_TIMESTAMP, &max_timestamp.to_be_bytes());
    batch::put(&mut out, field::RECORDS_COUNT, &(kept.len() as i32).to_be_bytes());
    let codec = Codec::try_from(header.compression())?;
    compression::compress(codec, &section, &mut out)?;
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| CleanerError::BatchTooLarge)?;
    batch::put(&mut out, field::BATCH_LENGTH, &batch_length.to_be_bytes());
    batch::refresh_crc(&mut out);
    debug_assert!(batch::validate_stored(&out).is_ok());
    Ok(out)
}
