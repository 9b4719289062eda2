//! ListPartitionReassignments (KIP-455): the partitions whose reassignment
//! is under way, with their replicas and the ones being added and removed
//! (broker ids). Partitions named but not reassigning, or unknown, are left
//! out, as KRaft's controller does.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse};

use super::{ApiError, Context, Response};
use crate::cluster::{PartitionAssignment, ReplicaPlacement};
use crate::metadata::TopicMeta;

fn broker_ids(replicas: &[ReplicaPlacement]) -> Vec<BrokerId> {
    replicas.iter().map(|r| BrokerId(r.broker_id())).collect()
}

fn ongoing(partition: i32, a: &PartitionAssignment) -> OngoingPartitionReassignment {
    OngoingPartitionReassignment::default()
        .with_partition_index(partition)
        .with_replicas(broker_ids(&a.replicas))
        .with_adding_replicas(broker_ids(&a.adding_replicas))
        .with_removing_replicas(broker_ids(&a.removing_replicas))
}

/// The reassigning partitions of `topic` among `wanted` (None: all of them).
fn reassigning(topic: &TopicMeta, wanted: Option<&[i32]>) -> Option<OngoingTopicReassignment> {
    let partitions: Vec<_> = match wanted {
        None => (0..topic.partition_count()).collect(),
        Some(wanted) => wanted.to_vec(),
    }
    .into_iter()
    .filter_map(|p| topic.partition(p).filter(|a| a.is_reassigning()).map(|a| ongoing(p, a)))
    .collect();
    let name = kafka_protocol::messages::TopicName(topic.name.clone().into());
    (!partitions.is_empty()).then(|| OngoingTopicReassignment::default().with_name(name).with_partitions(partitions))
}

pub fn handle(ctx: &Context<'_>, request: ListPartitionReassignmentsRequest) -> Result<Response, ApiError> {
    let snapshot = ctx.shard.snapshot();
    let topics = match &request.topics {
        None => snapshot.topics.values().filter_map(|t| reassigning(t, None)).collect(),
        Some(topics) => topics
            .iter()
            .filter_map(|t| snapshot.topic(t.name.as_str()).and_then(|m| reassigning(m, Some(&t.partition_indexes))))
            .collect(),
    };
    ctx.respond(&ListPartitionReassignmentsResponse::default().with_topics(topics))
}
