//! What a replica checks of produced batches before it appends them (Kafka's
//! `LogValidator`): the batch itself (`model::validate`: framing, CRC, size
//! against max.message.bytes, every record, decompressing with a bound), the
//! timestamp bounds, a key on every record of a compacted topic; and the
//! recompression a topic's `compression.type` asks for.

use crate::config::TopicConfig;
use crate::model::batch::BatchHeader;
use crate::model::compression::{Codec, Decompressor};
use crate::model::{recompress, validate};

use super::PartitionError;

/// Validates a partition's record batches against the topic's `config`.
/// Returns the first batch's header (idempotent producers send one batch
/// per partition).
pub fn validate_records(
    records: &[u8],
    config: &TopicConfig,
    decompressor: &mut Decompressor,
    now_ms: i64,
) -> Result<BatchHeader, PartitionError> {
    let mut first = None;
    let mut rest = records;
    while !rest.is_empty() {
        let batch = validate::produced_batch(rest, config.max_message_bytes as usize, decompressor)?;
        check_timestamps(&batch.header, config, now_ms)?;
        if config.is_compacted() && batch.keyless {
            return Err(PartitionError::KeylessRecordInCompactedTopic);
        }
        rest = &rest[batch.header.total_bytes()..];
        first.get_or_insert(batch.header);
    }
    first.ok_or(PartitionError::NoBatches)
}

/// A batch stamped too far from the broker's clock is refused (Kafka's
/// INVALID_TIMESTAMP). Retention goes by the largest timestamp of a segment,
/// so one batch from the far future would keep its segment, and every later
/// one, for ever. Batches without a timestamp (-1) pass.
fn check_timestamps(header: &BatchHeader, config: &TopicConfig, now_ms: i64) -> Result<(), PartitionError> {
    let (after_ms, before_ms) = (config.message_timestamp_after_max_ms, config.message_timestamp_before_max_ms);
    let stamped = |t: i64| t >= 0;
    if stamped(header.max_timestamp) && header.max_timestamp > now_ms.saturating_add(after_ms) {
        return Err(PartitionError::TimestampTooLate { timestamp: header.max_timestamp, bound_ms: after_ms, now_ms });
    }
    if stamped(header.base_timestamp) && header.base_timestamp < now_ms.saturating_sub(before_ms) {
        return Err(PartitionError::TimestampTooEarly {
            timestamp: header.base_timestamp,
            bound_ms: before_ms,
            now_ms,
        });
    }
    Ok(())
}

/// Re-encodes every batch whose codec is not `codec`; None when all already
/// use it. Cold path: only topics that set compression.type to a codec get here.
pub fn recompressed(
    records: &[u8],
    codec: Codec,
    decompressor: &mut Decompressor,
) -> Result<Option<Vec<u8>>, PartitionError> {
    let mut out: Option<Vec<u8>> = None;
    let mut rest = records;
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest)?;
        let (one, tail) = rest.split_at(header.total_bytes());
        if Codec::try_from(header.compression()).ok() != Some(codec) {
            let again = recompress::recompress(one, codec, decompressor)?;
            out.get_or_insert_with(|| records[..records.len() - rest.len()].to_vec()).extend_from_slice(&again);
        } else if let Some(out) = out.as_mut() {
            out.extend_from_slice(one);
        }
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::model::records;

    const NOW_MS: i64 = 1_700_000_000_000;

    fn config(pairs: &[(&str, &str)]) -> TopicConfig {
        let overrides: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TopicConfig::resolve(&overrides, &BrokerConfig::default()).unwrap()
    }

    fn check(records: &[u8], config: &TopicConfig) -> Result<BatchHeader, PartitionError> {
        validate_records(records, config, &mut Decompressor::new(), NOW_MS)
    }

    #[test]
    fn batches_stamped_too_far_from_the_broker_clock_are_refused() {
        let bounds = config(&[("message.timestamp.after.max.ms", "1000"), ("message.timestamp.before.max.ms", "5000")]);
        let at = |t: i64| records::build_keyed(t, &[(Some(b"k"), Some(b"v"))]);
        assert!(check(&at(NOW_MS + 1000), &bounds).is_ok());
        assert!(matches!(check(&at(NOW_MS + 1001), &bounds), Err(PartitionError::TimestampTooLate { .. })));
        assert!(check(&at(NOW_MS - 5000), &bounds).is_ok());
        assert!(matches!(check(&at(NOW_MS - 5001), &bounds), Err(PartitionError::TimestampTooEarly { .. })));
        assert!(check(&at(-1), &bounds).is_ok(), "no timestamp: no bound");
    }

    #[test]
    fn a_compacted_topic_refuses_records_without_a_key() {
        let keyless = records::build_keyed(NOW_MS, &[(Some(b"k"), Some(b"v")), (None, Some(b"v"))]);
        assert!(check(&keyless, &config(&[])).is_ok());
        let compacted = config(&[("cleanup.policy", "delete,compact")]);
        assert!(matches!(check(&keyless, &compacted), Err(PartitionError::KeylessRecordInCompactedTopic)));
        assert!(check(&records::build_keyed(NOW_MS, &[(Some(b"k"), None)]), &compacted).is_ok(), "a tombstone");
    }

    #[test]
    fn the_first_header_is_answered_and_nothing_is_no_batch() {
        let mut two = records::build_keyed(NOW_MS, &[(None, Some(b"a")), (None, Some(b"b"))]);
        two.extend(records::build_keyed(NOW_MS, &[(None, Some(b"c"))]));
        assert_eq!(check(&two, &config(&[])).unwrap().last_offset_delta, 1);
        assert!(matches!(check(&[], &config(&[])), Err(PartitionError::NoBatches)));
        let tight = config(&[("max.message.bytes", "20")]);
        assert!(matches!(check(&two, &tight), Err(PartitionError::Invalid(_))));
    }

    #[test]
    fn only_batches_of_another_codec_are_recompressed() {
        let plain = records::build_keyed(NOW_MS, &[(Some(b"k"), Some(b"v"))]);
        let mut decompressor = Decompressor::new();
        assert_eq!(recompressed(&plain, Codec::None, &mut decompressor).unwrap(), None, "already uncompressed");
        let zstd = recompressed(&plain, Codec::Zstd, &mut decompressor).unwrap().expect("re-encoded");
        let header = BatchHeader::parse(&zstd).unwrap();
        assert_eq!(Codec::try_from(header.compression()).ok(), Some(Codec::Zstd));
        assert_eq!(header.total_bytes(), zstd.len(), "one batch");
        assert_eq!(recompressed(&zstd, Codec::Zstd, &mut decompressor).unwrap(), None);
    }
}
