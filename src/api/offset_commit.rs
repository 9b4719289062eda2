//! OffsetCommit: validated against the group's membership, appended to the
//! group's offsets-topic partition, and applied once written.

use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::{ApiError, Context, ErrorCode, Response};
use crate::group::{GroupError, OffsetAndMetadata};
use crate::model::{now_ms, TopicPartition};
use crate::shard::{OffsetRecord, Shard};

/// Each requested partition and what became of it; Ok ones are to be stored.
type Outcomes = Vec<(TopicPartition, Result<OffsetAndMetadata, ErrorCode>)>;

fn check_partitions(shard: &Shard, topics: &[OffsetCommitRequestTopic], now: i64) -> Outcomes {
    let snapshot = shard.snapshot();
    let coordinator = shard.groups.borrow();
    let mut out = Vec::new();
    for topic in topics {
        let known = snapshot.topic(&topic.name);
        for p in &topic.partitions {
            let tp = TopicPartition::new(topic.name.to_string(), p.partition_index);
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
            let outcome = if known.and_then(|t| t.owner(p.partition_index)).is_none() {
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
    let log = shard.group_log(group)?;
    let now = now_ms();
    let instance = request.group_instance_id.as_deref();
    shard.groups.borrow_mut().validate_commit(
        group,
        request.generation_id_or_member_epoch,
        &request.member_id,
        instance,
        now,
    )?;
    let mut outcomes = check_partitions(shard, &request.topics, now);
    let records: Vec<OffsetRecord> =
        outcomes.iter().filter_map(|(tp, o)| o.as_ref().ok().map(|o| (tp.clone(), Some(o.clone())))).collect();
    if let Err(e) = shard.persist_offsets(&log, group, &records).await {
        tracing::warn!(shard = shard.id, group, error = %e, "storing committed offsets failed");
        for (_, outcome) in outcomes.iter_mut().filter(|(_, o)| o.is_ok()) {
            *outcome = Err(ErrorCode::CoordinatorNotAvailable);
        }
        return Ok(outcomes);
    }
    let stored = records.into_iter().filter_map(|(tp, o)| o.map(|o| (tp, o)));
    shard.groups.borrow_mut().apply_commit(group, stored, now);
    Ok(outcomes)
}

pub async fn handle(ctx: &Context<'_>, request: OffsetCommitRequest) -> Result<Response, ApiError> {
    let outcomes = match commit(ctx, &request).await {
        Ok(outcomes) => outcomes,
        // A refused commit answers the group's error for every partition.
        Err(e) => {
            let code = ErrorCode::from(&e);
            let all = request.topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t, p)));
            all.map(|(t, p)| (TopicPartition::new(t.name.to_string(), p.partition_index), Err(code))).collect()
        }
    };
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = outcomes
                .iter()
                .filter(|(tp, _)| tp.topic == t.name.as_str())
                .map(|(tp, o)| {
                    let code = o.as_ref().err().copied().unwrap_or(ErrorCode::None);
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(tp.partition)
                        .with_error_code(code.code())
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    ctx.respond(&OffsetCommitResponse::default().with_topics(topics))
}
