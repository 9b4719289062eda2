//! Metadata: every shard is advertised as its own broker (node id = shard,
//! port = base port + shard), and each partition's leader is the shard that
//! owns it, so clients send data straight to the right core.

use std::collections::HashSet;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::auto_create;
use super::{ApiError, Context, ErrorCode, Response};
use crate::metadata::{self, Snapshot, TopicMeta};
use crate::partition::LEADER_EPOCH_INITIAL;
use crate::shard::Shard;

/// Fixed so clients that cache it see one cluster across restarts.
pub const CLUSTER_ID: &str = "corelog-single-node";

pub fn brokers(shard: &Shard) -> Vec<MetadataResponseBroker> {
    let host = StrBytes::from_string(shard.config.advertised_host());
    (0..shard.count)
        .map(|s| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(s as i32))
                .with_host(host.clone())
                .with_port(shard.config.port as i32 + s as i32)
        })
        .collect()
}

fn describe(topic: &TopicMeta) -> MetadataResponseTopic {
    let partitions = topic
        .shards
        .iter()
        .enumerate()
        .map(|(p, shard)| {
            let node = BrokerId(*shard as i32);
            MetadataResponsePartition::default()
                .with_partition_index(p as i32)
                .with_leader_id(node)
                // Each partition has had one leader since its creation (issue 16
                // takes leader and epoch from the controller's metadata).
                .with_leader_epoch(LEADER_EPOCH_INITIAL)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
}

fn missing(name: &str, id: uuid::Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name((!name.is_empty()).then(|| TopicName(StrBytes::from_string(name.into()))))
        .with_topic_id(id)
}

/// Names requested, each once in first-seen order (Kafka reads them into a
/// set), or None for "all topics" (v0 spells that as an empty list). A topic
/// named 8,000 times is described once, not 8,000 times.
///
/// An entry with a topic id (v12+) is looked up by its id whatever its name
/// says, as Kafka does: the Java AdminClient's describeTopics by id sends
/// the name as "", not null.
fn requested(request: &MetadataRequest, version: i16, snapshot: &Snapshot) -> Option<Vec<(String, uuid::Uuid)>> {
    let topics = request.topics.as_ref()?;
    if version == 0 && topics.is_empty() {
        return None;
    }
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    let mut wanted = Vec::new();
    for t in topics {
        // The name of a first mention; None for a repeat.
        let first = match &t.name {
            Some(name) if t.topic_id.is_nil() => names.insert(name.as_str()).then(|| name.to_string()),
            _ => ids
                .insert(t.topic_id)
                .then(|| snapshot.topic_by_id(&t.topic_id).map(|m| m.name.clone()).unwrap_or_default()),
        };
        if let Some(name) = first {
            wanted.push((name, t.topic_id));
        }
    }
    Some(wanted)
}

pub async fn handle(ctx: &Context<'_>, request: MetadataRequest) -> Result<Response, ApiError> {
    let shard = ctx.shard;
    // Before v4 the request has no flag and Kafka always auto-created.
    let allow_create = shard.config.auto_create_topics_enable && (ctx.version < 4 || request.allow_auto_topic_creation);
    let wanted = requested(&request, ctx.version, &shard.snapshot());
    if let (Some(wanted), true) = (&wanted, allow_create) {
        for (name, _) in wanted {
            if !name.is_empty() && shard.snapshot().topic(name).is_none() && metadata::validate_topic_name(name).is_ok()
            {
                if let Err(e) = auto_create(shard, name).await {
                    tracing::warn!(topic = %name, error = %e, "auto-create failed");
                }
            }
        }
    }
    let snapshot = shard.snapshot();
    let topics = match wanted {
        None => snapshot.topics.values().map(|t| describe(t)).collect(),
        Some(wanted) => wanted
            .iter()
            .map(|(name, id)| match snapshot.topic(name) {
                Some(t) => describe(t),
                None if name.is_empty() => missing(name, *id, ErrorCode::UnknownTopicId),
                None if metadata::validate_topic_name(name).is_err() => {
                    missing(name, *id, ErrorCode::InvalidTopicException)
                }
                None => missing(name, *id, ErrorCode::UnknownTopicOrPartition),
            })
            .collect(),
    };
    let response = MetadataResponse::default()
        .with_brokers(brokers(shard))
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(BrokerId(0))
        .with_topics(topics);
    ctx.respond(&response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;

    fn named(name: &'static str) -> MetadataRequestTopic {
        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str(name))))
    }

    #[test]
    fn a_topic_named_many_times_is_described_once() {
        let id = uuid::Uuid::from_u128(7);
        let mut topics: Vec<_> = (0..8000).map(|i| named(if i % 2 == 0 { "a" } else { "b" })).collect();
        topics.push(MetadataRequestTopic::default().with_topic_id(id));
        topics.push(MetadataRequestTopic::default().with_topic_id(id));
        let request = MetadataRequest::default().with_topics(Some(topics));
        let wanted = requested(&request, 12, &Snapshot::default()).unwrap();
        let names: Vec<&str> = wanted.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", ""], "each name once, then the unknown id once");
        assert_eq!(wanted[2].1, id);
        let all = MetadataRequest::default().with_topics(Some(Vec::new()));
        assert_eq!(requested(&all, 0, &Snapshot::default()), None, "v0: an empty list is every topic");
    }

    /// The Java AdminClient's describeTopics(TopicCollection.ofTopicIds(..))
    /// names each topic "" beside its id (the name is not null).
    #[test]
    fn a_topic_id_is_looked_up_whatever_the_name_says() {
        let mut snapshot = Snapshot::default();
        let id = uuid::Uuid::from_u128(42);
        let configs = std::collections::BTreeMap::new();
        snapshot.apply(&metadata::MetadataRecord::CreateTopic { name: "clicks".into(), id, shards: vec![0], configs });
        let by_id = |name: Option<&'static str>, id| {
            MetadataRequestTopic::default()
                .with_name(name.map(|n| TopicName(StrBytes::from_static_str(n))))
                .with_topic_id(id)
        };
        let unknown = uuid::Uuid::from_u128(43);
        let topics = vec![by_id(Some(""), id), by_id(None, id), by_id(Some(""), unknown)];
        let request = MetadataRequest::default().with_topics(Some(topics));
        let wanted = requested(&request, 12, &snapshot).unwrap();
        let found = [("clicks".to_string(), id), (String::new(), unknown)];
        assert_eq!(wanted, found, "the id found once (named \"\" or null), then the unknown id");
    }
}
