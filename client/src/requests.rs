//! Requests more than one tool builds the same way.

use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ListOffsetsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

/// ListOffsets timestamp asking for the offset after the last record.
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets timestamp asking for the first offset still held.
pub const EARLIEST_TIMESTAMP: i64 = -2;

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Metadata for `topics`, or for all topics when `None`, never creating one
/// by asking for it where the version can say so.
pub fn metadata_request(topics: Option<&[String]>, version: i16) -> MetadataRequest {
    let mut request = MetadataRequest::default();
    request.topics = match topics {
        // v0 has no null array: an empty one means all topics there.
        None if version == 0 => Some(Vec::new()),
        None => None,
        Some(names) => {
            Some(names.iter().map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n)))).collect())
        }
    };
    // Only v4 and later can say "do not create topics by asking for them".
    request.allow_auto_topic_creation = version < 4;
    request
}

/// ListOffsets for `partitions` (topic, index) at `timestamp`
/// ([`LATEST_TIMESTAMP`], [`EARLIEST_TIMESTAMP`] or a time in ms), with a
/// server-side `timeout_ms`.
pub fn list_offsets_request<'a>(
    partitions: impl IntoIterator<Item = &'a (String, i32)>,
    timestamp: i64,
    timeout_ms: i32,
) -> ListOffsetsRequest {
    let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for (name, index) in partitions {
        let partition = ListOffsetsPartition::default().with_partition_index(*index).with_timestamp(timestamp);
        by_topic.entry(name.as_str()).or_default().push(partition);
    }
    ListOffsetsRequest::default()
        // -1: a consumer, not a follower replica.
        .with_replica_id((-1).into())
        .with_timeout_ms(timeout_ms)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    ListOffsetsTopic::default().with_name(topic_name(name)).with_partitions(partitions)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn metadata_request_encodes_at_every_version() {
        for version in 0..=13 {
            let all = metadata_request(None, version);
            all.compute_size(version).unwrap();
            let some = metadata_request(Some(&["a".to_string()]), version);
            some.encode(&mut BytesMut::new(), version).unwrap();
        }
    }

    #[test]
    fn list_offsets_groups_partitions_by_topic() {
        let partitions = [("b".to_string(), 1), ("a".to_string(), 0), ("b".to_string(), 0)];
        let request = list_offsets_request(&partitions, LATEST_TIMESTAMP, 5);
        let topics: Vec<(String, Vec<i32>)> = request
            .topics
            .iter()
            .map(|t| (t.name.to_string(), t.partitions.iter().map(|p| p.partition_index).collect()))
            .collect();
        assert_eq!(topics, [("a".to_string(), vec![0]), ("b".to_string(), vec![1, 0])]);
        assert_eq!(request.timeout_ms, 5);
    }
}
