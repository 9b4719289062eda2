//! CreatePartitions: grows a topic; new partitions are placed like the
//! first, with as many replicas.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::place_partitions;
use super::{ApiError, Context, ErrorCode, Response};
use crate::config::PARTITIONS_PER_TOPIC_MAX;
use crate::metadata::{self, MetadataRecord};

async fn grow(
    ctx: &Context<'_>,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), (ErrorCode, String)> {
    let name = topic.name.as_str();
    if metadata::is_internal(name) {
        // Kafka 4 would grow it; corelog's groups are placed by
        // `hash % 50` over its partitions, so more would move every group's
        // offsets away from its coordinator. Refused as a broker-side policy
        // refuses a change: POLICY_VIOLATION.
        let why = format!("topic {name} is internal: its partition count is the broker's");
        return Err((ErrorCode::PolicyViolation, why));
    }
    let (current, replication_factor) = ctx
        .shard
        .snapshot()
        .topic(name)
        .map(|t| (t.partition_count(), t.partitions.first().map_or(1, |p| p.replicas.len() as i16)))
        .ok_or((ErrorCode::UnknownTopicOrPartition, format!("topic '{name}' does not exist")))?;
    if topic.count > PARTITIONS_PER_TOPIC_MAX {
        let why = format!("at most {} partitions per topic, asked for {}", PARTITIONS_PER_TOPIC_MAX, topic.count);
        return Err((ErrorCode::InvalidPartitions, why));
    }
    if topic.count <= current {
        return Err((
            ErrorCode::InvalidPartitions,
            format!("topic has {current} partitions; {} would not add any", topic.count),
        ));
    }
    if topic.assignments.is_some() {
        return Err((ErrorCode::InvalidReplicaAssignment, "manual replica assignment is not supported".into()));
    }
    if validate_only {
        return Ok(());
    }
    // As many replicas as the topic's first partition has, spread as a new topic's.
    let partitions = place_partitions(ctx.shard, name, current, topic.count - current, replication_factor)
        .map_err(|e| ((&e).into(), e.to_string()))?;
    let record = MetadataRecord::CreatePartitions { name: name.into(), partitions };
    ctx.shard.change_metadata(record).await.map_err(|e| ((&e).into(), e.to_string()))
}

pub async fn handle(ctx: &Context<'_>, request: CreatePartitionsRequest) -> Result<Response, ApiError> {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        results.push(match grow(ctx, topic, request.validate_only).await {
            Ok(()) => result,
            Err((code, message)) => {
                result.with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)))
            }
        });
    }
    ctx.respond(&CreatePartitionsResponse::default().with_results(results))
}
