//! OffsetDelete (kafka-consumer-groups --delete-offsets): forgets a group's
//! committed offsets of some partitions and writes their tombstones, answered
//! once they are written. As Kafka's KafkaApis, partitions of unknown topics
//! get UNKNOWN_TOPIC_OR_PARTITION and the coordinator sees only the rest; a
//! group-level error answers alone.

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::{ApiError, Context, ErrorCode, Response};
use crate::model::TopicPartition;

pub async fn handle(ctx: &Context<'_>, request: OffsetDeleteRequest) -> Result<Response, ApiError> {
    let shard = ctx.shard;
    let group = request.group_id.as_str();
    let snapshot = shard.snapshot();
    let known = |topic: &str, partition: i32| snapshot.topic(topic).and_then(|t| t.partition(partition)).is_some();
    let asked: Vec<TopicPartition> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| TopicPartition::new(t.name.to_string(), p.partition_index)))
        .filter(|tp| known(&tp.topic, tp.partition))
        .collect();
    let deleted = shard.group_replica(group).and_then(|_| shard.groups.borrow_mut().delete_offsets(group, &asked));
    let deleted = match deleted {
        Ok(deleted) => deleted,
        Err(e) => return ctx.respond(&OffsetDeleteResponse::default().with_error_code(ErrorCode::from(&e).code())),
    };
    if !deleted.removed.is_empty() {
        let removed = deleted.removed.into_iter().map(|tp| (group.to_string(), tp)).collect();
        shard.persist_tombstones(removed).await;
        tracing::info!(shard = shard.id, group, "committed offsets deleted");
    }
    // The coordinator's outcomes follow the known partitions in request order.
    let mut outcomes = deleted.outcomes.iter();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| {
                let code = match known(&t.name, p.partition_index) {
                    false => ErrorCode::UnknownTopicOrPartition,
                    true => match outcomes.next().expect("one outcome per known partition") {
                        Ok(()) => ErrorCode::None,
                        Err(e) => ErrorCode::from(e),
                    },
                };
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code.code())
            });
            OffsetDeleteResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions.collect())
        })
        .collect();
    ctx.respond(&OffsetDeleteResponse::default().with_topics(topics))
}
