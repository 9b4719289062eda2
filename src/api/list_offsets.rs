//! ListOffsets: earliest (-2), latest (-1) or the first offset at or after a
//! timestamp; from v7 on also the record with the largest timestamp (-3,
//! KIP-734), and the tiered-storage offsets of v8/v9 (-4, -5, KIP-405 and
//! KIP-1005) as Kafka answers them for a topic without tiered storage. v10
//! only adds a timeout for remote reads, which a local log has no use for.

use std::cell::RefCell;
use std::collections::HashSet;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{local_replica, ApiError, Context, ErrorCode, Response};
use crate::model::compression::Decompressor;
use crate::model::{batch, records};
use crate::partition::Replica;
use crate::shard::Shard;
use crate::storage::PartitionLog;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// The first offset still in local storage: all of it, so the log start.
const EARLIEST_LOCAL: i64 = -4;
/// The last offset copied to tiered storage: none, which Kafka answers as -1.
const LATEST_TIERED: i64 = -5;

/// (timestamp, offset) of the answer; -1 for either when there is none.
async fn lookup(shard: &Shard, replica: &Replica, timestamp: i64) -> Result<(i64, i64), ErrorCode> {
    let log = replica.log();
    match timestamp {
        LATEST => Ok((-1, replica.high_watermark())),
        EARLIEST | EARLIEST_LOCAL => Ok((-1, replica.log_start_offset())),
        LATEST_TIERED => Ok((-1, -1)),
        // The first record with the largest timestamp: the first at or after it.
        MAX_TIMESTAMP => match log.max_timestamp() {
            Some(max) => at_or_after(shard, log, max).await,
            None => Ok((-1, -1)),
        },
        t if t < 0 => Err(ErrorCode::InvalidRequest),
        t => at_or_after(shard, log, t).await,
    }
}

/// The first record at or after `timestamp` (and at or after the log start).
async fn at_or_after(shard: &Shard, log: &PartitionLog, timestamp: i64) -> Result<(i64, i64), ErrorCode> {
    match log.offset_for_timestamp(timestamp).await {
        // DeleteRecords may have put the log start inside the batch found.
        Ok(Some((batch_offset, batch_max))) => {
            let from = batch_offset.max(log.log_start_offset());
            match first_record_at(&shard.decompressor, log, from, timestamp).await {
                Some((offset, timestamp)) => Ok((timestamp, offset)),
                None => Ok((batch_max, from)),
            }
        }
        // Kafka answers "no such offset" with -1/-1 and no error.
        Ok(None) => Ok((-1, -1)),
        Err(e) => Err((&e).into()),
    }
}

/// Narrows a batch found by timestamp to its first record at or after
/// `timestamp` and at or after offset `from`, as Kafka answers. Cold path:
/// reads the batch into memory and decompresses it if need be, with the
/// shard's bounded decompressor (a stored bomb gets no further than its
/// bound). None when the batch cannot be read.
async fn first_record_at(
    decompressor: &RefCell<Decompressor>,
    log: &PartitionLog,
    from: i64,
    timestamp: i64,
) -> Option<(i64, i64)> {
    let bytes = log.read(from, 1).await.ok()??.into_bytes().await.ok()?;
    let header = batch::validate_stored(&bytes).ok()?;
    let found = decompressor.borrow_mut().with_records(&header, &bytes, |section| {
        records::walk(header, section)
            .map_while(Result::ok)
            .map(|raw| raw.record)
            .find(|r| r.timestamp >= timestamp && r.offset >= from)
            .map(|r| (r.offset, r.timestamp))
    });
    found.ok()?
}

/// The partitions a request names more than once. Kafka answers every entry
/// of such a partition INVALID_REQUEST without looking it up, so a request
/// cannot buy one timestamp search per repeat of the same partition.
fn duplicate_partitions(request: &ListOffsetsRequest) -> HashSet<(&str, i32)> {
    let mut seen = HashSet::new();
    let named = request.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.as_str(), p.partition_index)));
    named.filter(|tp| !seen.insert(*tp)).collect()
}

pub async fn handle(ctx: &Context<'_>, request: ListOffsetsRequest) -> Result<Response, ApiError> {
    let snapshot = ctx.shard.snapshot();
    let duplicates = duplicate_partitions(&request);
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let answer = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let outcome = match local_replica(ctx.shard, &snapshot, &topic.name, p.partition_index) {
                _ if duplicates.contains(&(topic.name.as_str(), p.partition_index)) => Err(ErrorCode::InvalidRequest),
                Ok(replica) => match replica
                    .check_leader_epoch(p.current_leader_epoch)
                    .and_then(|()| replica.check_high_watermark_settled())
                {
                    Ok(()) => {
                        lookup(ctx.shard, &replica, p.timestamp).await.map(|found| (found, replica.leader_epoch()))
                    }
                    Err(refusal) => Err((&refusal).into()),
                },
                Err(code) => Err(code),
            };
            partitions.push(match outcome {
                // The leader epoch exists from v4 on (the codec refuses it earlier); no offset, no epoch.
                Ok(((timestamp, offset), leader_epoch)) if ctx.version >= 4 && offset >= 0 => {
                    answer.with_timestamp(timestamp).with_offset(offset).with_leader_epoch(leader_epoch)
                }
                Ok(((timestamp, offset), _)) => answer.with_timestamp(timestamp).with_offset(offset),
                Err(code) => answer.with_error_code(code.code()).with_timestamp(-1).with_offset(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions));
    }
    ctx.respond(&ListOffsetsResponse::default().with_topics(topics))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn topic(name: &'static str, partitions: &[i32]) -> ListOffsetsTopic {
        ListOffsetsTopic::default().with_name(TopicName(StrBytes::from_static_str(name))).with_partitions(
            partitions.iter().map(|&p| ListOffsetsPartition::default().with_partition_index(p)).collect(),
        )
    }

    #[test]
    fn partitions_named_twice_anywhere_in_the_request_are_duplicates() {
        let request = ListOffsetsRequest::default().with_topics(vec![
            topic("a", &[0, 1, 0]),
            topic("b", &[0]),
            topic("a", &[2, 1]),
        ]);
        let mut found: Vec<_> = duplicate_partitions(&request).into_iter().collect();
        found.sort();
        assert_eq!(found, [("a", 0), ("a", 1)]);
    }
}
