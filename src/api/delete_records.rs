//! DeleteRecords: moves each partition's log start offset up to the given
//! offset (-1: the high watermark) and deletes the segments wholly below it.
//! Answered by the shard that owns the partition, as Kafka's leader does.

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::{local_replica, ApiError, Context, ErrorCode, Response};
use crate::metadata::Snapshot;

async fn delete_one(
    ctx: &Context<'_>,
    snapshot: &Snapshot,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<i64, ErrorCode> {
    let replica = local_replica(ctx.shard, snapshot, topic, partition)?;
    if snapshot.topic(topic).is_some_and(|t| t.is_internal()) {
        // Kafka refuses it too: the broker's own records live there.
        return Err(ErrorCode::InvalidTopicException);
    }
    let (log_start_offset, deleted) = replica.delete_records(offset).await.map_err(|e| {
        tracing::warn!(topic, partition, offset, error = %e, "delete records refused");
        ErrorCode::from(&e)
    })?;
    tracing::info!(topic, partition, log_start_offset, segments = deleted.map_or(0, |d| d.segments), "records deleted");
    Ok(log_start_offset)
}

pub async fn handle(ctx: &Context<'_>, request: DeleteRecordsRequest) -> Result<Response, ApiError> {
    let snapshot = ctx.shard.snapshot();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let answer = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            partitions.push(match delete_one(ctx, &snapshot, &topic.name, p.partition_index, p.offset).await {
                Ok(low_watermark) => answer.with_low_watermark(low_watermark),
                Err(code) => answer.with_low_watermark(-1).with_error_code(code.code()),
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(topic.name.clone()).with_partitions(partitions));
    }
    ctx.respond(&DeleteRecordsResponse::default().with_topics(topics))
}
