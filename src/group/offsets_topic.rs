//! How committed offsets are stored in the internal `__consumer_offsets`
//! topic, in Kafka's own record format so Kafka tools can read it:
//!
//! ```text
//! key   (version 1): version i16, group string, topic string, partition i32
//! value (version 3): version i16, offset i64, leader_epoch i32, metadata string, commit_timestamp i64
//! ```
//! Strings are i16 length + UTF-8. A null value is a tombstone: the offset was
//! deleted (group deleted, topic deleted, offset expired). The topic is
//! compacted, so the newest record per key is the state.

use super::OffsetAndMetadata;
use crate::model::TopicPartition;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's offsets.topic.num.partitions default.
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 50;
const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 3;

/// The offsets-topic partition that holds `group_id`'s offsets, and so picks
/// its coordinator: Kafka's `abs(groupId.hashCode) % partitions`.
pub fn partition_for(group_id: &str) -> i32 {
    let hash = group_id.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32));
    (hash & 0x7fff_ffff) % OFFSETS_TOPIC_PARTITIONS
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub fn encode_key(group_id: &str, partition: &TopicPartition) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + group_id.len() + partition.topic.len());
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_string(&mut out, group_id);
    put_string(&mut out, &partition.topic);
    out.extend_from_slice(&partition.partition.to_be_bytes());
    out
}

pub fn encode_value(offset: &OffsetAndMetadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + offset.metadata.len());
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&offset.offset.to_be_bytes());
    out.extend_from_slice(&offset.leader_epoch.to_be_bytes());
    put_string(&mut out, &offset.metadata);
    out.extend_from_slice(&offset.commit_timestamp_ms.to_be_bytes());
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        (self.0.len() >= n).then(|| {
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            head
        })
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes(b.try_into().unwrap()))
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8).map(|b| i64::from_be_bytes(b.try_into().unwrap()))
    }
    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        self.take(len).and_then(|b| String::from_utf8(b.to_vec()).ok())
    }
}

/// Decodes an offset-commit key; None for other record kinds (Kafka also
/// stores group metadata, key version 2, which corelog does not write).
pub fn decode_key(key: &[u8]) -> Option<(String, TopicPartition)> {
    let mut r = Reader(key);
    if r.i16()? > KEY_VERSION {
        return None;
    }
    let group = r.string()?;
    let topic = r.string()?;
    Some((group, TopicPartition::new(topic, r.i32()?)))
}

pub fn decode_value(value: &[u8]) -> Option<OffsetAndMetadata> {
    let mut r = Reader(value);
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp_ms = r.i64()?;
    Some(OffsetAndMetadata { offset, leader_epoch, metadata, commit_timestamp_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_string_hash_code() {
        // "my-group".hashCode() == -1906497762 in Java.
        assert_eq!(partition_for("my-group"), (-1_906_497_762i32 & 0x7fff_ffff) % 50);
        assert!((0..50).contains(&partition_for("")));
    }

    #[test]
    fn keys_and_values_round_trip() {
        let tp = TopicPartition::new("clicks", 3);
        let key = encode_key("g", &tp);
        assert_eq!(decode_key(&key), Some(("g".to_string(), tp)));
        let om = OffsetAndMetadata { offset: 42, leader_epoch: 7, metadata: "m".into(), commit_timestamp_ms: 99 };
        assert_eq!(decode_value(&encode_value(&om)), Some(om));
        assert_eq!(decode_value(&[0, 3, 1]), None);
    }
}
