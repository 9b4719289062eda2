//! DescribeLogDirs (kafka-log-dirs --describe): the broker's one log
//! directory with the partitions in it and their sizes. Each shard is a
//! broker, so each answers for the replicas on it, (this node, this shard).
//! Every replica is a current one: no offset lag, no future replica.

use std::collections::{BTreeMap, HashMap, HashSet};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, Response};
use crate::storage;

/// Kafka's answer for a volume whose size cannot be read.
const VOLUME_BYTES_UNKNOWN: i64 = -1;

pub fn handle(ctx: &Context<'_>, request: DescribeLogDirsRequest) -> Result<Response, ApiError> {
    let shard = ctx.shard;
    // None: every partition (the tool's default); else only those named.
    let wanted: Option<HashMap<&str, HashSet<i32>>> = request.topics.as_ref().map(|topics| {
        let mut wanted: HashMap<&str, HashSet<i32>> = HashMap::new();
        for t in topics {
            wanted.entry(t.topic.as_str()).or_default().extend(&t.partitions);
        }
        wanted
    });
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for replica in shard.partitions.all() {
        let (topic, partition) = (replica.topic(), replica.partition());
        let named = |w: &HashMap<&str, HashSet<i32>>| w.get(topic).is_some_and(|ps| ps.contains(&partition));
        if wanted.as_ref().is_some_and(|w| !named(w)) {
            continue;
        }
        let size = i64::try_from(replica.log().size_bytes()).unwrap_or(i64::MAX);
        let described = DescribeLogDirsPartition::default().with_partition_index(partition).with_partition_size(size);
        by_topic.entry(topic.to_string()).or_default().push(described);
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    let dir = std::path::absolute(&shard.config.data_dir).unwrap_or_else(|_| shard.config.data_dir.clone());
    let (total, usable) =
        storage::volume_bytes(&dir).map_or((VOLUME_BYTES_UNKNOWN, VOLUME_BYTES_UNKNOWN), |(t, u)| (t as i64, u as i64));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    ctx.respond(&DescribeLogDirsResponse::default().with_results(vec![result]))
}
