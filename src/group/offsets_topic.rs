//! How committed offsets are stored in the internal `__consumer_offsets`
//! topic, in Kafka's own record format so Kafka tools can read it:
//!
//! ```text
//! key   (version 1): version i16, group string, topic string, partition i32
//! value (version 3): version i16, offset i64, leader_epoch i32, metadata string, commit_timestamp i64
//! ```
//! Strings are i16 length + UTF-8, so none may be longer than
//! [`STRING_BYTES_MAX`]: the group id is checked before anything is written
//! (INVALID_GROUP_ID), topic names are at most 249 bytes, and commit metadata
//! is bounded by offset.metadata.max.bytes. A key or value must be read to its
//! last byte, so a record written with a wrapped length (as before that
//! check) is skipped rather than read as another group's. A null value is a
//! tombstone: the offset was deleted (group deleted, topic deleted, offset
//! expired). The topic is compacted, so the newest record per key is the state.

use super::OffsetAndMetadata;
use crate::model::TopicPartition;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's offsets.topic.num.partitions default.
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 50;
const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 3;
/// Longest string a key or value can hold: its length is an i16, as in Kafka.
pub const STRING_BYTES_MAX: usize = i16::MAX as usize;
/// Longest group id a coordinator accepts: it is stored in every key.
pub const GROUP_ID_BYTES_MAX: usize = STRING_BYTES_MAX;
/// Bytes of a key besides its two strings: version, two lengths, partition.
const KEY_FIXED_BYTES: usize = 2 + 2 + 2 + 4;
/// Bytes of a value besides its metadata: version, offset, leader epoch,
/// metadata length, commit timestamp.
const VALUE_FIXED_BYTES: usize = 2 + 8 + 4 + 2 + 8;

/// The offsets-topic partition that holds `group_id`'s offsets, and so picks
/// its coordinator: Kafka's `abs(groupId.hashCode) % partitions`.
pub fn partition_for(group_id: &str) -> i32 {
    let hash = group_id.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32));
    (hash & 0x7fff_ffff) % OFFSETS_TOPIC_PARTITIONS
}

/// Callers check lengths before anything is written (see the module); a
/// longer string here would be a stored record that reads back wrong.
fn put_string(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).expect("offsets-topic strings are checked to fit an i16 length");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Bytes of the key and the value of one commit record, as encoded.
pub fn record_bytes(group_id: &str, partition: &TopicPartition, metadata: Option<&str>) -> usize {
    let key = KEY_FIXED_BYTES + group_id.len() + partition.topic.len();
    key + metadata.map_or(0, |m| VALUE_FIXED_BYTES + m.len())
}

pub fn encode_key(group_id: &str, partition: &TopicPartition) -> Vec<u8> {
    let mut out = Vec::with_capacity(KEY_FIXED_BYTES + group_id.len() + partition.topic.len());
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_string(&mut out, group_id);
    put_string(&mut out, &partition.topic);
    out.extend_from_slice(&partition.partition.to_be_bytes());
    out
}

pub fn encode_value(offset: &OffsetAndMetadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(VALUE_FIXED_BYTES + offset.metadata.len());
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
    /// The value read, if it used every byte: trailing bytes mean the lengths
    /// did not describe the record (a length that wrapped when written).
    fn whole<T>(self, value: T) -> Option<T> {
        self.0.is_empty().then_some(value)
    }
}

/// Decodes an offset-commit key; None for other record kinds (Kafka also
/// stores group metadata, key version 2, which corelog does not write) and
/// for keys whose lengths do not add up to the key.
pub fn decode_key(key: &[u8]) -> Option<(String, TopicPartition)> {
    let mut r = Reader(key);
    if r.i16()? > KEY_VERSION {
        return None;
    }
    let group = r.string()?;
    let topic = r.string()?;
    let partition = r.i32()?;
    r.whole((group, TopicPartition::new(topic, partition)))
}

pub fn decode_value(value: &[u8]) -> Option<OffsetAndMetadata> {
    let mut r = Reader(value);
    let version = r.i16()?;
    if version > VALUE_VERSION {
        return None; // Kafka's v4+ values are flexible: not a layout corelog writes
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp_ms = r.i64()?;
    // Kafka's value v1 has an expire timestamp after the commit timestamp.
    if version == 1 {
        r.i64()?;
    }
    r.whole(OffsetAndMetadata { offset, leader_epoch, metadata, commit_timestamp_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offsets_topic_is_internal() {
        assert!(crate::metadata::is_internal(OFFSETS_TOPIC));
    }

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
        assert_eq!(decode_key(&key), Some(("g".to_string(), tp.clone())));
        let om = OffsetAndMetadata { offset: 42, leader_epoch: 7, metadata: "m".into(), commit_timestamp_ms: 99 };
        assert_eq!(decode_value(&encode_value(&om)), Some(om.clone()));
        assert_eq!(decode_value(&[0, 3, 1]), None);
        assert_eq!(record_bytes("g", &tp, Some("m")), key.len() + encode_value(&om).len());
        assert_eq!(record_bytes("g", &tp, None), key.len());
    }

    /// What a group id of 65,541 bytes became before ids were bounded: its
    /// length written as 5 (65,541 as an i16). Read back, the key must not
    /// name group "aaaaa" (nor any other), whatever the id's bytes.
    #[test]
    fn a_key_written_with_a_wrapped_length_is_not_read_as_another_group() {
        let tp = TopicPartition::new("clicks", 0);
        let group = "a".repeat(65_541);
        let mut key = Vec::new();
        key.extend_from_slice(&KEY_VERSION.to_be_bytes());
        key.extend_from_slice(&(group.len() as u16 as i16).to_be_bytes());
        key.extend_from_slice(group.as_bytes());
        key.extend_from_slice(&(tp.topic.len() as i16).to_be_bytes());
        key.extend_from_slice(tp.topic.as_bytes());
        key.extend_from_slice(&tp.partition.to_be_bytes());
        assert_eq!(decode_key(&key), None);
        // A crafted id whose bytes spell a whole key after the wrapped length
        // still leaves the real topic and partition as trailing bytes.
        let mut inner = "vvvvv".as_bytes().to_vec();
        inner.extend_from_slice(&6i16.to_be_bytes());
        inner.extend_from_slice(b"stolen");
        inner.extend_from_slice(&0i32.to_be_bytes());
        inner.resize(65_536 + 5, b'x');
        let mut crafted = KEY_VERSION.to_be_bytes().to_vec();
        crafted.extend_from_slice(&5i16.to_be_bytes());
        crafted.extend_from_slice(&inner);
        crafted.extend_from_slice(&6i16.to_be_bytes());
        crafted.extend_from_slice(b"clicks");
        crafted.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(decode_key(&crafted), None);
        assert_eq!(decode_key(&[&encode_key("g", &tp)[..], b"x"].concat()), None, "trailing bytes");
    }

    #[test]
    #[should_panic(expected = "checked to fit an i16 length")]
    fn a_string_too_long_for_its_length_is_never_written() {
        encode_key(&"g".repeat(GROUP_ID_BYTES_MAX + 1), &TopicPartition::new("t", 0));
    }
}
