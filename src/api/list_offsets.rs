//! ListOffsets: earliest (-2), latest (-1) or the first offset at or after a
//! timestamp.

use std::cell::RefCell;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{local_log, ApiError, Context, ErrorCode, Response};
use crate::model::compression::Decompressor;
use crate::model::{batch, records, LEADER_EPOCH};
use crate::shard::Shard;
use crate::storage::PartitionLog;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

async fn lookup(shard: &Shard, log: &PartitionLog, timestamp: i64) -> Result<(i64, i64), ErrorCode> {
    match timestamp {
        LATEST => Ok((-1, log.high_watermark())),
        EARLIEST => Ok((-1, log.log_start_offset())),
        t if t < 0 => Err(ErrorCode::InvalidRequest),
        t => match log.offset_for_timestamp(t).await {
            // DeleteRecords may have put the log start inside the batch found.
            Ok(Some((batch_offset, batch_max))) => {
                let from = batch_offset.max(log.log_start_offset());
                match first_record_at(&shard.decompressor, log, from, t).await {
                    Some((offset, timestamp)) => Ok((timestamp, offset)),
                    None => Ok((batch_max, from)),
                }
            }
            // Kafka answers "no such offset" with -1/-1 and no error.
            Ok(None) => Ok((-1, -1)),
            Err(e) => Err((&e).into()),
        },
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

pub async fn handle(ctx: &Context<'_>, request: ListOffsetsRequest) -> Result<Response, ApiError> {
    let snapshot = ctx.shard.snapshot();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let answer = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let outcome = match local_log(ctx.shard, &snapshot, &topic.name, p.partition_index) {
                Ok(log) => lookup(ctx.shard, &log, p.timestamp).await,
                Err(code) => Err(code),
            };
            partitions.push(match outcome {
                // The leader epoch exists from v4 on; the codec refuses it earlier.
                Ok((timestamp, offset)) if ctx.version >= 4 => {
                    answer.with_timestamp(timestamp).with_offset(offset).with_leader_epoch(LEADER_EPOCH)
                }
                Ok((timestamp, offset)) => answer.with_timestamp(timestamp).with_offset(offset),
                Err(code) => answer.with_error_code(code.code()).with_timestamp(-1).with_offset(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions));
    }
    ctx.respond(&ListOffsetsResponse::default().with_topics(topics))
}
