//! OffsetFetch: a group's committed offsets, for one group (v1–v7) or several
//! at once (v8+). Unknown partitions answer offset -1.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response};
use crate::group::OffsetAndMetadata;
use crate::model::TopicPartition;

type Fetched = Vec<(TopicPartition, OffsetAndMetadata)>;

/// One group's offsets, or the error for the whole group.
fn fetch(ctx: &Context<'_>, group: &str, wanted: Option<Vec<TopicPartition>>) -> Result<Fetched, ErrorCode> {
    ctx.shard.group_log(group).map_err(|e| ErrorCode::from(&e))?;
    Ok(ctx.shard.groups.borrow().fetch_offsets(group, wanted.as_deref()))
}

/// Groups the flat list back into topics, in first-seen order.
fn by_topic(fetched: Fetched) -> Vec<(String, Vec<(i32, OffsetAndMetadata)>)> {
    let mut topics: Vec<(String, Vec<(i32, OffsetAndMetadata)>)> = Vec::new();
    for (tp, offset) in fetched {
        match topics.iter_mut().find(|(name, _)| *name == tp.topic) {
            Some((_, partitions)) => partitions.push((tp.partition, offset)),
            None => topics.push((tp.topic, vec![(tp.partition, offset)])),
        }
    }
    topics
}

fn metadata(o: &OffsetAndMetadata) -> Option<StrBytes> {
    Some(StrBytes::from_string(o.metadata.clone()))
}

fn single_group(ctx: &Context<'_>, request: &OffsetFetchRequest) -> OffsetFetchResponse {
    let wanted = request.topics.as_ref().map(|topics| {
        let all = topics
            .iter()
            .flat_map(|t| t.partition_indexes.iter().map(move |p| TopicPartition::new(t.name.to_string(), *p)));
        all.collect()
    });
    match fetch(ctx, &request.group_id, wanted) {
        Err(code) => OffsetFetchResponse::default().with_error_code(code.code()),
        Ok(fetched) => OffsetFetchResponse::default().with_topics(
            by_topic(fetched)
                .into_iter()
                .map(|(name, partitions)| {
                    let partitions = partitions.into_iter().map(|(p, o)| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(o.offset)
                            .with_committed_leader_epoch(o.leader_epoch)
                            .with_metadata(metadata(&o))
                    });
                    let name = TopicName(StrBytes::from_string(name));
                    OffsetFetchResponseTopic::default().with_name(name).with_partitions(partitions.collect())
                })
                .collect(),
        ),
    }
}

fn multi_group(ctx: &Context<'_>, request: &OffsetFetchRequest) -> OffsetFetchResponse {
    let groups = request.groups.iter().map(|g| {
        let wanted = g.topics.as_ref().map(|topics| {
            let all = topics
                .iter()
                .flat_map(|t| t.partition_indexes.iter().map(move |p| TopicPartition::new(t.name.to_string(), *p)));
            all.collect()
        });
        let result = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
        match fetch(ctx, &g.group_id, wanted) {
            Err(code) => result.with_error_code(code.code()),
            Ok(fetched) => result.with_topics(
                by_topic(fetched)
                    .into_iter()
                    .map(|(name, partitions)| {
                        let partitions = partitions.into_iter().map(|(p, o)| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(o.offset)
                                .with_committed_leader_epoch(o.leader_epoch)
                                .with_metadata(metadata(&o))
                        });
                        let name = TopicName(StrBytes::from_string(name));
                        OffsetFetchResponseTopics::default().with_name(name).with_partitions(partitions.collect())
                    })
                    .collect(),
            ),
        }
    });
    OffsetFetchResponse::default().with_groups(groups.collect())
}

pub fn handle(ctx: &Context<'_>, request: OffsetFetchRequest) -> Result<Response, ApiError> {
    let response = if ctx.version >= 8 { multi_group(ctx, &request) } else { single_group(ctx, &request) };
    ctx.respond(&response)
}
