//! OffsetsForLeaderEpoch (KIP-101, KIP-279; consumers' log truncation
//! detection, KIP-320): for each partition, the end offset of the asked
//! epoch on the leader (the first offset of the next epoch it knows, or its
//! log end for its current epoch), from the replica's leader epoch cache.
//! A follower truncates to it before fetching after a leader change.

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{local_replica, ApiError, Context, ErrorCode, Response};

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET: what a refused
/// partition answers.
const EPOCH_UNDEFINED: i32 = -1;
const OFFSET_UNDEFINED: i64 = -1;

pub async fn handle(ctx: &Context<'_>, request: OffsetForLeaderEpochRequest) -> Result<Response, ApiError> {
    let snapshot = ctx.shard.snapshot();
    let mut topics = Vec::with_capacity(request.topics.len());
    for (steps, topic) in request.topics.iter().enumerate() {
        if steps % super::STEPS_PER_YIELD == super::STEPS_PER_YIELD - 1 {
            tokio::task::yield_now().await;
        }
        let partitions = topic.partitions.iter().map(|p| {
            let answer = EpochEndOffset::default().with_partition(p.partition);
            let found = local_replica(ctx.shard, &snapshot, &topic.topic, p.partition).and_then(|replica| {
                replica.check_leader_epoch(p.current_leader_epoch).map_err(|e| ErrorCode::from(&e))?;
                Ok(replica.end_offset_for(p.leader_epoch))
            });
            match found {
                Ok((epoch, end_offset)) => answer.with_leader_epoch(epoch).with_end_offset(end_offset),
                Err(code) => answer
                    .with_error_code(code.code())
                    .with_leader_epoch(EPOCH_UNDEFINED)
                    .with_end_offset(OFFSET_UNDEFINED),
            }
        });
        topics.push(
            OffsetForLeaderTopicResult::default().with_topic(topic.topic.clone()).with_partitions(partitions.collect()),
        );
    }
    ctx.respond(&OffsetForLeaderEpochResponse::default().with_topics(topics))
}
