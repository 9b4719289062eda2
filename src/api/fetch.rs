//! Fetch: locate whole batches in the segment files, then answer with a
//! header built here followed by record bytes: file ranges that the
//! connection splices to the socket, or bytes already in memory (O_DIRECT
//! logs). Long polling waits on the shard's own appends.

use std::time::{Duration, Instant};

use kafka_protocol::messages::FetchRequest;

use super::{local_log, ApiError, Chunk, Context, ErrorCode, Response};
use crate::metadata::Snapshot;
use crate::protocol::fetch::{self, PartitionData, Piece, TopicData};
use crate::storage::{PartitionLog, ReadSlice, StorageError};

/// Longest long poll we honour, whatever the client asks.
const FETCH_WAIT_MS_MAX: u64 = 30_000;

struct Wanted {
    name: String,
    id: uuid::Uuid,
    partitions: Vec<(i32, i64, u32)>,
}

struct Found {
    partition: i32,
    error: ErrorCode,
    high_watermark: i64,
    log_start_offset: i64,
    slice: Option<ReadSlice>,
}

fn wanted(request: &FetchRequest, version: i16, snapshot: &Snapshot) -> Vec<Wanted> {
    request
        .topics
        .iter()
        .map(|t| {
            let name = match version >= 13 {
                true => snapshot.topic_by_id(&t.topic_id).map(|m| m.name.clone()).unwrap_or_default(),
                false => t.topic.to_string(),
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| (p.partition, p.fetch_offset, p.partition_max_bytes.max(0) as u32))
                .collect();
            Wanted { name, id: t.topic_id, partitions }
        })
        .collect()
}

async fn read_one(
    ctx: &Context<'_>,
    topic: &str,
    log: &PartitionLog,
    partition: i32,
    offset: i64,
    max_bytes: u32,
) -> Found {
    let mut found = Found {
        partition,
        error: ErrorCode::None,
        high_watermark: log.high_watermark(),
        log_start_offset: log.log_start_offset(),
        slice: None,
    };
    match log.read(offset, max_bytes).await {
        Ok(slice) => found.slice = slice,
        Err(e) => {
            found.error = (&e).into();
            log_storage_error(ctx, topic, partition, offset, &e);
        }
    }
    found
}

/// A failed read, once per interval (a consumer retries at once). An offset
/// out of range is the consumer's to handle, not ours to log.
fn log_storage_error(ctx: &Context<'_>, topic: &str, partition: i32, offset: i64, error: &StorageError) {
    if matches!(error, StorageError::OffsetOutOfRange { .. }) {
        return;
    }
    let Some(held_back) = ctx.shard.stats.fetch_storage_errors.admit(Instant::now()) else { return };
    tracing::error!(
        shard = ctx.shard.id,
        topic,
        partition,
        offset,
        %error,
        similar_errors_not_logged = held_back,
        "fetch failed: the consumer gets KAFKA_STORAGE_ERROR (one such line per 10 s per shard)"
    );
}

/// One pass over every requested partition. The response's max_bytes counts
/// across partitions, but the first partition with data always gets a batch.
async fn read_all(ctx: &Context<'_>, wanted: &[Wanted], response_max_bytes: u32) -> (Vec<Vec<Found>>, u64) {
    let snapshot = ctx.shard.snapshot();
    let mut total = 0u64;
    let mut out = Vec::with_capacity(wanted.len());
    for topic in wanted {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for &(partition, offset, max_bytes) in &topic.partitions {
            let budget = match total {
                0 => max_bytes,
                _ => max_bytes.min(response_max_bytes.saturating_sub(total as u32)),
            };
            let found = match local_log(ctx.shard, &snapshot, &topic.name, partition) {
                Err(code) if topic.name.is_empty() => error(partition, code.for_topic_id()),
                Err(code) => error(partition, code),
                Ok(_) if budget == 0 => error(partition, ErrorCode::None),
                Ok(log) => read_one(ctx, &topic.name, &log, partition, offset, budget).await,
            };
            total += found.slice.as_ref().map_or(0, |s| s.len() as u64);
            partitions.push(found);
        }
        out.push(partitions);
    }
    (out, total)
}

fn error(partition: i32, error: ErrorCode) -> Found {
    Found { partition, error, high_watermark: -1, log_start_offset: -1, slice: None }
}

impl ErrorCode {
    /// A v13+ fetch names topics by id; an id we do not know is UNKNOWN_TOPIC_ID.
    fn for_topic_id(self) -> ErrorCode {
        match self {
            ErrorCode::UnknownTopicOrPartition => ErrorCode::UnknownTopicId,
            other => other,
        }
    }
}

pub async fn handle(ctx: &Context<'_>, request: FetchRequest) -> Result<Response, ApiError> {
    let wanted = wanted(&request, ctx.version, &ctx.shard.snapshot());
    let max_bytes = request.max_bytes.max(0) as u32;
    let wait = Duration::from_millis((request.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MS_MAX));
    let deadline = tokio::time::Instant::now() + wait;
    let (mut found, mut total) = read_all(ctx, &wanted, max_bytes).await;
    while total < request.min_bytes.max(0) as u64 && !has_errors(&found) && !ctx.shard.stopping.get() {
        // Registered before re-reading, so an append in between is not missed.
        let written = ctx.shard.written.notified();
        if tokio::time::timeout_at(deadline, written).await.is_err() {
            break;
        }
        (found, total) = read_all(ctx, &wanted, max_bytes).await;
    }
    Ok(Response::Chunks(encode(ctx, &wanted, found)))
}

fn has_errors(found: &[Vec<Found>]) -> bool {
    found.iter().flatten().any(|f| f.error != ErrorCode::None)
}

fn encode(ctx: &Context<'_>, wanted: &[Wanted], found: Vec<Vec<Found>>) -> Vec<Chunk> {
    let topics: Vec<TopicData<'_, ReadSlice>> = wanted
        .iter()
        .zip(found)
        .map(|(w, partitions)| TopicData {
            name: &w.name,
            id: *w.id.as_bytes(),
            partitions: partitions
                .into_iter()
                .map(|f| PartitionData {
                    partition: f.partition,
                    error_code: f.error.code(),
                    high_watermark: f.high_watermark,
                    last_stable_offset: f.high_watermark,
                    log_start_offset: f.log_start_offset,
                    records: f.slice.map(|s| {
                        let len = s.len();
                        (s, len)
                    }),
                })
                .collect(),
        })
        .collect();
    fetch::encode(ctx.version, ctx.correlation_id, 0, 0, topics)
        .into_iter()
        .map(|piece| match piece {
            Piece::Inline(bytes) => Chunk::Inline(bytes),
            Piece::Records(ReadSlice::File { file, position, bytes }, _) => Chunk::File { file, position, len: bytes },
            Piece::Records(ReadSlice::Memory(bytes), _) => Chunk::Records(bytes),
        })
        .collect()
}
