//! What an append puts in the write buffer, for both kinds of append:
//!
//! - a leader's (`PartitionLog::append`): batches a producer sent, already
//!   validated by the partition layer; the log assigns their offsets from
//!   its end and stamps the replica's leader epoch (neither field is under
//!   the CRC, so nothing is recomputed);
//! - a follower's (`PartitionLog::append_replicated`): batches fetched from
//!   the leader, which already carry their offsets and leader epochs. They
//!   are stored as they are, after the checks Kafka's `appendAsFollower`
//!   makes: every batch whole and CRC-valid, the first at or after the log
//!   end, offsets increasing. A gap is accepted, as Kafka does: a compacted
//!   leader log has gaps where the cleaner dropped whole batches, and a
//!   fetch in one answers the next batch that exists. An overlap is refused:
//!   the follower must truncate (or fetch from its log end) instead.
//!
//! One memcpy per batch into the pending write job, no allocation.

use crate::model::batch::{self, BatchError, BatchHeader, HEADER_BYTES};

use super::error::StorageError;
use super::segment::{BatchMeta, Segment};
use super::writer::WriteJob;

/// The record batches of one append, checked to tile the buffer exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AppendShape {
    /// The offsets the batches take: their records for a leader's append,
    /// gaps included for a follower's.
    pub offsets: u64,
    /// A follower's batches keep their offsets: the first one's base offset
    /// and the last one's last offset.
    pub kept_offsets: Option<(i64, i64)>,
}

/// A leader's append: whole batches back to back (validated by the caller).
pub(super) fn leader_shape(batches: &[u8]) -> Result<AppendShape, StorageError> {
    if batches.is_empty() {
        return Err(BatchError::Truncated { available: 0, needed: HEADER_BYTES }.into());
    }
    let mut offsets = 0u64;
    let mut at = 0;
    while at < batches.len() {
        let header = BatchHeader::parse(&batches[at..])?;
        let bytes = header.total_bytes();
        if at + bytes > batches.len() || header.last_offset_delta < 0 {
            return Err(BatchError::Truncated { available: batches.len() - at, needed: bytes }.into());
        }
        debug_assert!(batch::validate(&batches[at..]).is_ok(), "callers validate batches before append");
        offsets += header.last_offset_delta as u64 + 1;
        at += bytes;
    }
    Ok(AppendShape { offsets, kept_offsets: None })
}

/// A follower's append at `log_end_offset`: every batch framed and
/// CRC-valid (a compacted batch may hold fewer records than its offset
/// range, as the leader stores it), the first at or after the log end, each
/// after the one before.
pub(super) fn replicated_shape(batches: &[u8], log_end_offset: i64) -> Result<AppendShape, StorageError> {
    if batches.is_empty() {
        return Err(BatchError::Truncated { available: 0, needed: HEADER_BYTES }.into());
    }
    let mut next_offset = log_end_offset;
    let mut first_offset = None;
    let mut at = 0;
    while at < batches.len() {
        let header = batch::validate_stored(&batches[at..])?;
        if header.base_offset < next_offset || header.last_offset_delta < 0 {
            return Err(match first_offset {
                None => StorageError::ReplicaOverlap { base_offset: header.base_offset, log_end_offset },
                Some(_) => StorageError::ReplicaOffsetsOutOfOrder { base_offset: header.base_offset, next_offset },
            });
        }
        first_offset.get_or_insert(header.base_offset);
        next_offset = header.last_offset() + 1;
        at += header.total_bytes();
    }
    let first_offset = first_offset.expect("at least one batch");
    Ok(AppendShape {
        offsets: (next_offset - log_end_offset) as u64,
        kept_offsets: Some((first_offset, next_offset - 1)),
    })
}

/// How the batches' offset and leader epoch fields are written.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stamp {
    /// A leader's append: offsets from the log end on, the replica's epoch.
    Assign { leader_epoch: i32 },
    /// A follower's: the bytes as the leader stored them.
    Keep,
}

/// Copies each batch into the pending buffer (one memcpy per batch),
/// stamping it as `stamp` says, and indexes it. Returns the next offset.
pub(super) fn copy_batches(
    batches: &[u8],
    stamp: Stamp,
    job: &mut WriteJob,
    active: &mut Segment,
    index_interval_bytes: u32,
) -> i64 {
    let mut next_offset = active.next_offset;
    let mut at = 0;
    while at < batches.len() {
        let header = BatchHeader::parse(&batches[at..]).expect("the append's shape checked every header");
        let bytes = header.total_bytes();
        let start = job.buf.len();
        job.buf.extend_from_slice(&batches[at..at + bytes]);
        let base_offset = match stamp {
            Stamp::Assign { leader_epoch, .. } => {
                batch::set_base_offset(&mut job.buf[start..], next_offset);
                batch::set_partition_leader_epoch(&mut job.buf[start..], leader_epoch);
                next_offset
            }
            Stamp::Keep => header.base_offset,
        };
        debug_assert!(base_offset >= next_offset, "offsets only grow");
        let last_offset = base_offset + header.last_offset_delta as i64;
        let meta = BatchMeta {
            position: active.size,
            base_offset,
            last_offset,
            max_timestamp: header.max_timestamp,
            bytes: bytes as u64,
        };
        active.track(&meta, index_interval_bytes);
        next_offset = last_offset + 1;
        at += bytes;
    }
    job.last_offset = next_offset - 1;
    next_offset
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base_offset: i64, records: usize) -> Vec<u8> {
        let values: Vec<&[u8]> = (0..records).map(|_| b"v".as_slice()).collect();
        let mut bytes = batch::build(1, &values);
        batch::set_base_offset(&mut bytes, base_offset);
        bytes
    }

    #[test]
    fn a_followers_batches_keep_their_offsets_and_may_skip_a_compacted_gap() {
        let batches = [at(10, 2), at(12, 1), at(20, 3)].concat();
        let shape = replicated_shape(&batches, 10).unwrap();
        assert_eq!(shape, AppendShape { offsets: 13, kept_offsets: Some((10, 22)) });
        assert_eq!(replicated_shape(&at(15, 1), 10).unwrap().kept_offsets, Some((15, 15)));
    }

    #[test]
    fn a_followers_overlap_or_disorder_is_refused() {
        assert!(matches!(
            replicated_shape(&at(9, 2), 10),
            Err(StorageError::ReplicaOverlap { base_offset: 9, log_end_offset: 10 })
        ));
        let disordered = [at(10, 2), at(11, 1)].concat();
        assert!(matches!(
            replicated_shape(&disordered, 10),
            Err(StorageError::ReplicaOffsetsOutOfOrder { base_offset: 11, next_offset: 12 })
        ));
    }

    #[test]
    fn a_followers_torn_or_corrupt_batch_is_refused() {
        let good = at(0, 2);
        let torn = &good[..good.len() - 1];
        assert!(matches!(replicated_shape(torn, 0), Err(StorageError::InvalidBatch(BatchError::Truncated { .. }))));
        let mut corrupt = good.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        assert!(matches!(replicated_shape(&corrupt, 0), Err(StorageError::InvalidBatch(BatchError::BadCrc { .. }))));
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0; 10]);
        assert!(matches!(replicated_shape(&trailing, 0), Err(StorageError::InvalidBatch(_))));
        assert!(replicated_shape(&[], 0).is_err());
    }
}
