//! OffsetCommit: validated against the group's membership, appended to the
//! group's offsets-topic partition, and applied once written.
//!
//! The answer is linear in the request: as Kafka's response builder does, a
//! topic named twice is answered once, with each requested partition in it.

use std::collections::HashMap;
use std::time::Instant;

use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};

use super::{ApiError, Context, ErrorCode, Response};
use crate::group::{GroupError, OffsetAndMetadata};
use crate::model::{now_ms, TopicPartition};
use crate::shard::{OffsetRecord, Shard};

/// Each requested partition and what became of it; Ok ones are to be stored.
type Outcomes = Vec<(TopicPartition, Result<OffsetAndMetadata, ErrorCode>)>;

fn check_partitions(shard: &Shard, topics: &[OffsetCommitRequestTopic], now: i64) -> Outcomes {
    let snapshot = shard.snapshot();
    let coordinator = shard.groups.borrow();
    let mut out = Vec::with_capacity(topics.iter().map(|t| t.partitions.len()).sum());
    for topic in topics {
        let known = snapshot.topic(&topic.name);
        for p in &topic.partitions {
            let tp = TopicPartition::new(topic.name.to_string(), p.partition_index);
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
            let outcome = if known.and_then(|t| t.partition(p.partition_index)).is_none() {
                Err(ErrorCode::UnknownTopicOrPartition)
            } else if let Err(e) = coordinator.check_offset_metadata(&metadata) {
                Err(ErrorCode::from(&e))
            } else {
                Ok(OffsetAndMetadata {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata,
                    commit_timestamp_ms: now,
                })
            };
            out.push((tp, outcome));
        }
    }
    out
}

async fn commit(ctx: &Context<'_>, request: &OffsetCommitRequest) -> Result<Outcomes, GroupError> {
    let shard = ctx.shard;
    let group = request.group_id.as_str();
    let replica = shard.group_replica(group)?;
    let now = now_ms();
    let mut outcomes = check_partitions(shard, &request.topics, now);
    let records: Vec<OffsetRecord> =
        outcomes.iter().filter_map(|(tp, o)| o.as_ref().ok().map(|o| (tp.clone(), Some(o.clone())))).collect();
    // Before validation, which may create the group: a refused commit leaves nothing behind.
    shard.check_commit_size(group, &records)?;
    let instance = request.group_instance_id.as_deref();
    shard.groups.borrow_mut().validate_commit(
        group,
        request.generation_id_or_member_epoch,
        &request.member_id,
        instance,
        now,
    )?;
    if let Err(e) = shard.persist_offsets(&replica, group, &records).await {
        tracing::warn!(shard = shard.id, group, error = %e, "storing committed offsets failed");
        for (_, outcome) in outcomes.iter_mut().filter(|(_, o)| o.is_ok()) {
            *outcome = Err(ErrorCode::CoordinatorNotAvailable);
        }
        return Ok(outcomes);
    }
    // Stored, so answered as such; but a shard that stopped leading the
    // group's partition meanwhile holds the group no more (or is loading it
    // again, from a log that has this commit), as Kafka skips a Dead group.
    if shard.group_replica(group).is_ok() {
        let stored = records.into_iter().filter_map(|(tp, o)| o.map(|o| (tp, o)));
        shard.groups.borrow_mut().apply_commit(group, stored, now);
    }
    Ok(outcomes)
}

/// The answer, one topic per name in first-seen order (Kafka's
/// OffsetCommitResponse.Builder merges a topic named twice the same way).
fn answer(codes: impl Iterator<Item = (TopicName, i32, ErrorCode)>) -> Vec<OffsetCommitResponseTopic> {
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    let mut index: HashMap<TopicName, usize> = HashMap::new();
    for (name, partition, code) in codes {
        let at = *index.entry(name.clone()).or_insert_with(|| {
            topics.push(OffsetCommitResponseTopic::default().with_name(name));
            topics.len() - 1
        });
        let answer = OffsetCommitResponsePartition::default().with_partition_index(partition);
        topics[at].partitions.push(answer.with_error_code(code.code()));
    }
    topics
}

pub async fn handle(ctx: &Context<'_>, request: OffsetCommitRequest) -> Result<Response, ApiError> {
    let requested = || request.topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t, p)));
    let topics = match commit(ctx, &request).await {
        // Outcomes follow the request's order, partition for partition.
        Ok(outcomes) => answer(requested().zip(outcomes).map(|((t, p), (_, outcome))| {
            (t.name.clone(), p.partition_index, outcome.err().unwrap_or(ErrorCode::None))
        })),
        // A refused commit answers the group's error for every partition.
        Err(e) => {
            let hostile = matches!(e, GroupError::CommitTooLarge { .. } | GroupError::GroupIdTooLong { .. });
            if let Some(held_back) = hostile.then(|| ctx.shard.stats.refused_requests.admit(Instant::now())).flatten() {
                tracing::warn!(shard = ctx.shard.id, similar_not_logged = held_back, "offset commit refused: {e}");
            }
            let code = ErrorCode::from(&e);
            answer(requested().map(|(t, p)| (t.name.clone(), p.partition_index, code)))
        }
    };
    ctx.respond(&OffsetCommitResponse::default().with_topics(topics))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    fn name(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    #[test]
    fn a_topic_named_many_times_is_answered_once_with_every_partition() {
        let codes = (0..1000)
            .flat_map(|_| [(name("a"), 0, ErrorCode::None), (name("b"), 1, ErrorCode::UnknownTopicOrPartition)]);
        let topics = answer(codes);
        assert_eq!(topics.len(), 2);
        assert_eq!((topics[0].name.as_str(), topics[0].partitions.len()), ("a", 1000));
        assert_eq!((topics[1].name.as_str(), topics[1].partitions.len()), ("b", 1000));
        assert_eq!(topics[1].partitions[999].error_code, ErrorCode::UnknownTopicOrPartition.code());
    }
}
