//! Metadata: every shard is advertised as its own broker (broker id and
//! port derived from (node, shard) in `cluster`), and each partition's
//! leader is the (node, shard) its assignment names, so clients send data
//! straight to the right core.

use std::collections::HashSet;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::auto_create;
use super::{ApiError, Context, ErrorCode, Response};
use crate::cluster::{BrokerAddress, ReplicaPlacement, ShardId};
use crate::metadata::{self, Snapshot, TopicMeta};
use crate::shard::Shard;

/// Fixed so clients that cache it see one cluster across restarts. A
/// cluster's id is the one its quorum fixed at its first start.
pub const CLUSTER_ID: &str = "corelog-single-node";

/// The brokers clients are told of: this node's shards, or in a cluster
/// every unfenced node's.
fn brokers(shard: &Shard, snapshot: &Snapshot) -> Vec<MetadataResponseBroker> {
    let brokers: Vec<BrokerAddress<'_>> = match snapshot.nodes.is_empty() {
        true => shard.node.brokers().collect(),
        false => snapshot.brokers().collect(),
    };
    brokers
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.broker_id))
                .with_host(StrBytes::from_string(b.host.into()))
                .with_port(b.port.into())
        })
        .collect()
}

/// The cluster's id and the broker id clients are told is the controller
/// (also DescribeCluster's).
pub(super) fn cluster_identity(shard: &Shard, snapshot: &Snapshot) -> (StrBytes, i32) {
    match &snapshot.cluster_id {
        // A single node's first shard answers for the metadata it owns.
        None => (StrBytes::from_static_str(CLUSTER_ID), shard.node.replica(ShardId(0)).broker_id()),
        // The quorum leader's first shard, as the controller.
        Some(id) => {
            let leader = snapshot.controller.map_or(-1, |n| ReplicaPlacement::new(n, ShardId(0)).broker_id());
            (StrBytes::from_string(id.clone()), leader)
        }
    }
}

fn describe(topic: &TopicMeta) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(p, assignment)| {
            let replicas: Vec<BrokerId> = assignment.replicas.iter().map(|r| BrokerId(r.broker_id())).collect();
            MetadataResponsePartition::default()
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(assignment.leader.map_or(-1, |l| l.broker_id())))
                .with_leader_epoch(assignment.leader_epoch)
                .with_isr_nodes(assignment.isr.iter().map(|r| BrokerId(r.broker_id())).collect())
                .with_replica_nodes(replicas)
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
    let (cluster_id, controller) = cluster_identity(shard, &snapshot);
    let response = MetadataResponse::default()
        .with_brokers(brokers(shard, &snapshot))
        .with_cluster_id(Some(cluster_id))
        .with_controller_id(BrokerId(controller))
        .with_cluster_authorized_operations(super::describe_cluster::cluster_authorized_operations(
            request.include_cluster_authorized_operations,
        ))
        .with_topics(topics);
    ctx.respond(&response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{NodeId, PartitionAssignment};
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
        let partitions = vec![PartitionAssignment::single(ReplicaPlacement::new(NodeId(0), ShardId(0)))];
        snapshot.apply(&metadata::MetadataRecord::CreateTopic { name: "clicks".into(), id, partitions, configs });
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

    #[test]
    fn partitions_are_described_from_their_assignment() {
        let at = |node, shard| ReplicaPlacement::new(NodeId(node), ShardId(shard));
        let replicas = vec![at(1, 0), at(2, 3)];
        let follower = PartitionAssignment {
            leader: Some(at(2, 3)),
            leader_epoch: 7,
            ..PartitionAssignment::led_by_first(replicas)
        };
        let single = PartitionAssignment::single(at(0, 1));
        let topic = TopicMeta {
            name: "t".into(),
            id: uuid::Uuid::from_u128(1),
            partitions: vec![single, follower],
            configs: Default::default(),
        };
        let described = describe(&topic);
        let p0 = &described.partitions[0];
        assert_eq!((p0.leader_id, p0.leader_epoch, p0.replica_nodes.clone()), (BrokerId(1), 0, vec![BrokerId(1)]));
        let p1 = &described.partitions[1];
        assert_eq!((p1.leader_id, p1.leader_epoch), (BrokerId(2003), 7), "broker id of node 2 shard 3");
        assert_eq!(p1.replica_nodes, [BrokerId(1000), BrokerId(2003)]);
        assert_eq!(p1.isr_nodes, p1.replica_nodes);
    }
}
