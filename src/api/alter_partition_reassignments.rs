//! AlterPartitionReassignments (KIP-455): sets (or, with null replicas,
//! cancels) the target replicas of partitions. The change is recorded
//! through the metadata (the quorum in a cluster); the new replicas fetch
//! from the leader, and the controller completes the reassignment once
//! they are in sync (metadata/reassignment.rs, controller/reassignment.rs).
//! Broker ids name shards: node × 1000 + shard.

use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response};
use crate::metadata::{self, MetadataError};

/// Times a reassignment is tried again when an ISR change of the same
/// partition was committed first (its partition epoch moved on).
const STALE_EPOCH_TRIES: usize = 5;
/// Pause before such a retry: the committed change reaches this shard.
const STALE_EPOCH_BACKOFF: Duration = Duration::from_millis(100);

async fn reassign(
    ctx: &Context<'_>,
    name: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_replication_factor_change: bool,
) -> Result<(), (ErrorCode, String)> {
    let refused = |e: &MetadataError| (ErrorCode::from(e), e.to_string());
    for _ in 0..STALE_EPOCH_TRIES {
        let snapshot = ctx.shard.snapshot();
        let record = metadata::reassign(&snapshot, name, partition, target, allow_replication_factor_change)
            .map_err(|e| refused(&e))?;
        let Some(record) = record else { return Ok(()) };
        match ctx.shard.change_metadata(record).await {
            Err(e) if ErrorCode::from(&e) == ErrorCode::InvalidUpdateVersion => {}
            other => return other.map_err(|e| ((&e).into(), e.to_string())),
        }
        tokio::time::sleep(STALE_EPOCH_BACKOFF).await;
    }
    Err((ErrorCode::InvalidUpdateVersion, format!("topic '{name}' partition {partition} kept changing; try again")))
}

pub async fn handle(ctx: &Context<'_>, request: AlterPartitionReassignmentsRequest) -> Result<Response, ApiError> {
    let allow_change = request.allow_replication_factor_change;
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let target: Option<Vec<i32>> = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let result = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            partitions.push(
                match reassign(ctx, topic.name.as_str(), p.partition_index, target.as_deref(), allow_change).await {
                    Ok(()) => result,
                    Err((code, message)) => {
                        result.with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)))
                    }
                },
            );
        }
        responses.push(ReassignableTopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions));
    }
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_change)
        .with_responses(responses);
    ctx.respond(&response)
}
