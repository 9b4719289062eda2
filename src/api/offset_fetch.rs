//! OffsetFetch: a group's committed offsets, for one group (v1–v7) or several
//! at once (v8+). Unknown partitions answer offset -1.
//!
//! The answer is at most the request's distinct groups and partitions: a
//! group or a partition named twice is answered once (each answer may carry
//! metadata of up to offset.metadata.max.bytes, so answering repeats would
//! let a 4-byte partition index buy 4 KiB of answer). Long requests give
//! the shard's other connections a turn as they go.

use std::collections::{HashMap, HashSet};

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response, STEPS_PER_YIELD};
use crate::group::OffsetAndMetadata;
use crate::model::TopicPartition;
use crate::runtime::YieldEvery;

type Fetched = Vec<(TopicPartition, OffsetAndMetadata)>;

/// The distinct partitions named, in first-seen order.
async fn distinct<'a>(
    topics: impl Iterator<Item = (&'a str, &'a [i32])>,
    pace: &mut YieldEvery,
) -> Vec<TopicPartition> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (topic, partitions) in topics {
        for &partition in partitions {
            if seen.insert((topic, partition)) {
                out.push(TopicPartition::new(topic.to_string(), partition));
            }
            pace.step().await;
        }
    }
    out
}

/// One group's offsets, or the error for the whole group.
async fn fetch(
    ctx: &Context<'_>,
    group: &str,
    wanted: Option<Vec<TopicPartition>>,
    pace: &mut YieldEvery,
) -> Result<Fetched, ErrorCode> {
    ctx.shard.group_replica(group).map_err(|e| ErrorCode::from(&e))?;
    let Some(wanted) = wanted else {
        return Ok(ctx.shard.groups.borrow().fetch_offsets(group, None));
    };
    let mut fetched = Vec::with_capacity(wanted.len());
    for some in wanted.chunks(STEPS_PER_YIELD) {
        fetched.extend(ctx.shard.groups.borrow().fetch_offsets(group, Some(some)));
        pace.step().await;
    }
    Ok(fetched)
}

/// Groups the flat list back into topics, in first-seen order.
fn by_topic(fetched: Fetched) -> Vec<(String, Vec<(i32, OffsetAndMetadata)>)> {
    let mut topics: Vec<(String, Vec<(i32, OffsetAndMetadata)>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (tp, offset) in fetched {
        match index.get(&tp.topic) {
            Some(&at) => topics[at].1.push((tp.partition, offset)),
            None => {
                index.insert(tp.topic.clone(), topics.len());
                topics.push((tp.topic, vec![(tp.partition, offset)]));
            }
        }
    }
    topics
}

fn metadata(o: &OffsetAndMetadata) -> Option<StrBytes> {
    Some(StrBytes::from_string(o.metadata.clone()))
}

async fn single_group(ctx: &Context<'_>, request: &OffsetFetchRequest) -> OffsetFetchResponse {
    let mut pace = YieldEvery::new(STEPS_PER_YIELD);
    let wanted = match &request.topics {
        Some(topics) => {
            let named = topics.iter().map(|t| (t.name.as_str(), &t.partition_indexes[..]));
            Some(distinct(named, &mut pace).await)
        }
        None => None,
    };
    match fetch(ctx, &request.group_id, wanted, &mut pace).await {
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

async fn multi_group(ctx: &Context<'_>, request: &OffsetFetchRequest) -> OffsetFetchResponse {
    let mut pace = YieldEvery::new(STEPS_PER_YIELD);
    let mut seen = HashSet::new();
    let mut groups = Vec::new();
    for g in request.groups.iter().filter(|g| seen.insert(g.group_id.as_str())) {
        let wanted = match &g.topics {
            Some(topics) => {
                let named = topics.iter().map(|t| (t.name.as_str(), &t.partition_indexes[..]));
                Some(distinct(named, &mut pace).await)
            }
            None => None,
        };
        let result = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
        groups.push(match fetch(ctx, &g.group_id, wanted, &mut pace).await {
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
        });
        pace.step().await;
    }
    OffsetFetchResponse::default().with_groups(groups)
}

pub async fn handle(ctx: &Context<'_>, request: OffsetFetchRequest) -> Result<Response, ApiError> {
    let response = if ctx.version >= 8 { multi_group(ctx, &request).await } else { single_group(ctx, &request).await };
    ctx.respond(&response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_named_twice_are_fetched_once_in_first_seen_order() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let partitions = [3, 1, 3, 3, 1];
        let named = [("b", &partitions[..]), ("a", &[0][..]), ("b", &[2, 3][..])];
        let got = runtime.block_on(distinct(named.into_iter(), &mut YieldEvery::new(2)));
        let want = [("b", 3), ("b", 1), ("a", 0), ("b", 2)].map(|(t, p)| TopicPartition::new(t, p));
        assert_eq!(got, want);
        let fetched = got.into_iter().map(|tp| (tp, OffsetAndMetadata::unknown())).collect();
        let topics: Vec<(String, Vec<i32>)> =
            by_topic(fetched).into_iter().map(|(t, ps)| (t, ps.into_iter().map(|(p, _)| p).collect())).collect();
        assert_eq!(topics, vec![("b".to_string(), vec![3, 1, 2]), ("a".to_string(), vec![0])]);
    }
}
