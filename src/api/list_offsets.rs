//! ListOffsets: earliest (-2), latest (-1) or the first offset at or after a
//! timestamp.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{local_log, ApiError, Context, ErrorCode, Response};
use crate::storage::PartitionLog;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

async fn lookup(log: &PartitionLog, timestamp: i64) -> Result<(i64, i64), ErrorCode> {
    match timestamp {
        LATEST => Ok((-1, log.high_watermark())),
        EARLIEST => Ok((-1, log.log_start_offset())),
        t if t < 0 => Err(ErrorCode::InvalidRequest),
        t => match log.offset_for_timestamp(t).await {
            Ok(Some((offset, found))) => Ok((found, offset)),
            // Kafka answers "no such offset" with -1/-1 and no error.
            Ok(None) => Ok((-1, -1)),
            Err(e) => Err((&e).into()),
        },
    }
}

pub async fn handle(ctx: &Context<'_>, request: ListOffsetsRequest) -> Result<Response, ApiError> {
    let snapshot = ctx.shard.snapshot();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let answer = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let outcome = match local_log(ctx.shard, &snapshot, &topic.name, p.partition_index) {
                Ok(log) => lookup(&log, p.timestamp).await,
                Err(code) => Err(code),
            };
            partitions.push(match outcome {
                // The leader epoch exists from v4 on; the codec refuses it earlier.
                Ok((timestamp, offset)) if ctx.version >= 4 => {
                    answer.with_timestamp(timestamp).with_offset(offset).with_leader_epoch(0)
                }
                Ok((timestamp, offset)) => answer.with_timestamp(timestamp).with_offset(offset),
                Err(code) => answer.with_error_code(code.code()).with_timestamp(-1).with_offset(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions));
    }
    ctx.respond(&ListOffsetsResponse::default().with_topics(topics))
}
