//! Fetch: locate whole batches in the segment files, then answer with a
//! header built here followed by record bytes: file ranges that the
//! connection splices to the socket, or bytes already in memory (O_DIRECT
//! logs). Long polling waits on the appends of the partitions it reads
//! (`partition::WriteWaiters`), on the shard that owns them.
//!
//! What one fetch may cost is bounded. A partition named twice is read once
//! (Kafka keeps one entry per topic-partition: the first one's place, the
//! last one's offsets). The answer's record bytes stay within the request's
//! max_bytes and the broker's fetch.max.bytes. The memory the answer holds
//! until its client has read it (O_DIRECT read windows, hot-tail buffers)
//! stays within fetch.max.bytes for the request and `fetch_memory_bytes`
//! for all the shard's unsent answers. Past a bound, the remaining
//! partitions are answered without records, as Kafka answers past
//! max_bytes; the first partition read gets at least one batch unless the
//! shard's memory is spent.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::FetchRequest;

use super::leader_hint::{leader_hint, tells_leader, LeaderHint};
use super::{local_replica, ApiError, Chunk, Context, ErrorCode, Response};
use crate::cluster::ReplicaPlacement;
use crate::metadata::Snapshot;
use crate::partition::leader_rules::{FetchPosition, FollowerId, BROKER_EPOCH_UNKNOWN};
use crate::partition::{ReadBound, Replica, WriteWaiters};
use crate::protocol::fetch::{self, CurrentLeader, EpochEndOffset, NodeEndpoint, PartitionData, Piece, TopicData};
use crate::storage::read_memory::Reservation;
use crate::storage::{ReadSlice, StorageError};

/// Longest long poll we honour, whatever the client asks.
const FETCH_WAIT_MS_MAX: u64 = 30_000;

/// One topic of the answer and its partitions.
struct Wanted {
    name: String,
    id: uuid::Uuid,
    partitions: Vec<WantedPartition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WantedPartition {
    partition: i32,
    offset: i64,
    max_bytes: u32,
    /// The leader epoch the fetcher knows (-1: unchecked).
    current_leader_epoch: i32,
    /// The epoch of the last batch the fetcher has (v12+, KIP-320; -1: none).
    last_fetched_epoch: i32,
}

impl WantedPartition {
    /// Where the fetch stands against the replica's log (KIP-320): checked
    /// only when the fetcher says what it last fetched.
    fn position(&self, replica: &Replica) -> FetchPosition {
        match self.last_fetched_epoch {
            epoch if epoch < 0 => FetchPosition::OnLog,
            epoch => replica.fetch_position(epoch, self.offset),
        }
    }
}

/// Who fetches: a consumer reads below the high watermark; a follower
/// (a replica id, the broker id of the shard it is on, and from v15 its
/// node's broker epoch) reads everything written and reports its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetcher {
    Consumer,
    Follower(FollowerId),
}

impl Fetcher {
    /// The replica id moved into `replica_state` in v15, beside the broker
    /// epoch (KIP-903).
    fn of(request: &FetchRequest, version: i16) -> Fetcher {
        let (id, broker_epoch) = match version >= 15 {
            true => (request.replica_state.replica_id.0, request.replica_state.replica_epoch),
            false => (request.replica_id.0, BROKER_EPOCH_UNKNOWN),
        };
        match ReplicaPlacement::from_broker_id(id) {
            Some(at) => Fetcher::Follower(FollowerId { at, broker_epoch }),
            None => Fetcher::Consumer,
        }
    }

    fn bound(self) -> ReadBound {
        match self {
            Fetcher::Consumer => ReadBound::HighWatermark,
            Fetcher::Follower(_) => ReadBound::WrittenEnd,
        }
    }
}

struct Found {
    partition: i32,
    error: ErrorCode,
    /// Where the partition's leader is, for a fetch sent elsewhere (KIP-951).
    leader: Option<LeaderHint>,
    /// Where the fetcher's log parts from this one (KIP-320).
    diverging: Option<EpochEndOffset>,
    high_watermark: i64,
    log_start_offset: i64,
    slice: Option<ReadSlice>,
}

/// The requested partitions, each once: in the place of its first entry,
/// with its last entry's offset and max bytes (Kafka's LinkedHashMap of
/// fetch data). Consecutive partitions of one topic share a topic entry, as
/// in Kafka's answer.
fn wanted(request: &FetchRequest, version: i16, snapshot: &Snapshot) -> Vec<Wanted> {
    let mut out: Vec<Wanted> = Vec::new();
    // Topics by (id, name), then partitions by (topic number, partition):
    // one name copied per topic of the request, none per partition.
    let mut topics: HashMap<(uuid::Uuid, String), usize> = HashMap::new();
    let mut seen: HashMap<(usize, i32), (usize, usize)> = HashMap::new();
    for t in &request.topics {
        let name = match version >= 13 {
            true => snapshot.topic_by_id(&t.topic_id).map(|m| m.name.clone()).unwrap_or_default(),
            false => t.topic.to_string(),
        };
        let known = topics.len();
        let topic_number = *topics.entry((t.topic_id, name.clone())).or_insert(known);
        for p in &t.partitions {
            let entry = WantedPartition {
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as u32,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: if version >= 12 { p.last_fetched_epoch } else { -1 },
            };
            match seen.get(&(topic_number, p.partition)) {
                Some(&(topic, at)) => out[topic].partitions[at] = entry,
                None => {
                    let same_topic = out.last().is_some_and(|last| last.id == t.topic_id && last.name == name);
                    if !same_topic {
                        out.push(Wanted { name: name.clone(), id: t.topic_id, partitions: Vec::new() });
                    }
                    let topic = out.len() - 1;
                    seen.insert((topic_number, p.partition), (topic, out[topic].partitions.len()));
                    out[topic].partitions.push(entry);
                }
            }
        }
    }
    out
}

async fn read_one(
    ctx: &Context<'_>,
    topic: &str,
    replica: &Replica,
    partition: i32,
    offset: i64,
    max_bytes: u32,
    bound: ReadBound,
) -> Found {
    let mut found = unread(partition, replica);
    match replica.read(offset, max_bytes, bound).await {
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

/// What one pass may spend: record bytes in the answer, memory it holds.
struct Limits {
    response_bytes_max: u64,
    /// For this answer (fetch.max.bytes), past its first read.
    request_memory_bytes_max: usize,
    /// For all the shard's answers not yet sent.
    shard_memory_bytes_max: usize,
}

/// What one pass over the requested partitions found.
#[derive(Default)]
struct Pass {
    found: Vec<Vec<Found>>,
    response_bytes: u64,
    /// Each replica read, with the end the pass saw (the high watermark for
    /// a consumer, the written end for a follower): what a long poll waits on.
    read: Vec<(Rc<Replica>, i64)>,
}

impl Pass {
    /// A partition was written to since this pass looked at it.
    fn outdated(&self, fetcher: Fetcher) -> bool {
        self.read.iter().any(|(replica, seen)| readable_end(replica, fetcher) != *seen)
    }
}

fn readable_end(replica: &Replica, fetcher: Fetcher) -> i64 {
    match fetcher {
        Fetcher::Consumer => replica.high_watermark(),
        Fetcher::Follower(_) => replica.log().written_end_offset(),
    }
}

/// One pass over every requested partition, within `limits` (see the module).
async fn read_all(ctx: &Context<'_>, wanted: &[Wanted], limits: &Limits, fetcher: Fetcher) -> Pass {
    let snapshot = ctx.shard.snapshot();
    let mut spent = Spent::default();
    let mut pass = Pass { found: Vec::with_capacity(wanted.len()), ..Pass::default() };
    for topic in wanted {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in &topic.partitions {
            let partition = wanted.partition;
            let found = match fetched_replica(ctx, &snapshot, &topic.name, wanted, fetcher) {
                Err(code) if topic.name.is_empty() => error(partition, code.for_topic_id(), None),
                Err(code) if tells_leader(code) => {
                    error(partition, code, leader_hint(ctx, &snapshot, &topic.name, partition))
                }
                Err(code) => error(partition, code, None),
                Ok(replica) => match wanted.position(&replica) {
                    FetchPosition::OnLog => {
                        let end = readable_end(&replica, fetcher);
                        let found = read_within(ctx, &topic.name, &replica, wanted, fetcher, &spent, limits).await;
                        pass.read.push((replica, end));
                        found
                    }
                    FetchPosition::Diverging { epoch, end_offset } => {
                        Found { diverging: Some(EpochEndOffset { epoch, end_offset }), ..unread(partition, &replica) }
                    }
                    FetchPosition::OutOfRange => {
                        Found { error: ErrorCode::OffsetOutOfRange, ..unread(partition, &replica) }
                    }
                },
            };
            spent.response_bytes += found.slice.as_ref().map_or(0, |s| u64::from(s.len()));
            spent.memory_bytes += found.slice.as_ref().map_or(0, ReadSlice::held_bytes);
            partitions.push(found);
        }
        pass.found.push(partitions);
    }
    pass.response_bytes = spent.response_bytes;
    pass
}

/// What a pass has spent so far.
#[derive(Default)]
struct Spent {
    response_bytes: u64,
    memory_bytes: usize,
}

/// One partition's read, if what is left of `limits` allows it; else the
/// partition without records.
async fn read_within(
    ctx: &Context<'_>,
    topic: &str,
    replica: &Replica,
    wanted: &WantedPartition,
    fetcher: Fetcher,
    spent: &Spent,
    limits: &Limits,
) -> Found {
    let WantedPartition { partition, offset, max_bytes, .. } = *wanted;
    let budget = u64::from(max_bytes).min(limits.response_bytes_max.saturating_sub(spent.response_bytes)) as u32;
    // Until a partition gave records, a read gets one batch whatever its budget (Kafka's minOneMessage).
    if budget == 0 && spent.response_bytes > 0 {
        return unread(partition, replica);
    }
    let reading = replica.log().read_bytes_max(budget);
    if reading == 0 {
        // Spliced from the page cache: no memory of the shard's.
        return read_one(ctx, topic, replica, partition, offset, budget, fetcher.bound()).await;
    }
    if spent.memory_bytes > 0 && spent.memory_bytes + reading > limits.request_memory_bytes_max {
        return unread(partition, replica);
    }
    let Some(reservation) = Reservation::take(reading, limits.shard_memory_bytes_max) else {
        note_memory_spent(ctx);
        return unread(partition, replica);
    };
    let found = read_one(ctx, topic, replica, partition, offset, budget, fetcher.bound()).await;
    drop(reservation); // what the read holds is counted from here on
    found
}

/// A partition answered without records, as Kafka answers one past max_bytes.
fn unread(partition: i32, replica: &Replica) -> Found {
    Found {
        partition,
        error: ErrorCode::None,
        leader: None,
        diverging: None,
        high_watermark: replica.high_watermark(),
        log_start_offset: replica.log_start_offset(),
        slice: None,
    }
}

/// The shard's unsent answers hold all the memory they may: once per interval.
fn note_memory_spent(ctx: &Context<'_>) {
    let Some(held_back) = ctx.shard.stats.fetch_memory_exhausted.admit(Instant::now()) else { return };
    tracing::warn!(
        shard = ctx.shard.id,
        held_bytes = crate::storage::read_memory::held_bytes(),
        fetch_memory_bytes = ctx.shard.config.fetch_memory_bytes,
        similar_not_logged = held_back,
        "unsent fetch answers hold the shard's fetch memory: partitions answered without records until clients read"
    );
}

fn error(partition: i32, error: ErrorCode, leader: Option<LeaderHint>) -> Found {
    Found { partition, error, leader, diverging: None, high_watermark: -1, log_start_offset: -1, slice: None }
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

/// The leading replica a partition of the fetch reads, once the fetch's
/// leader epoch is checked against it.
fn fetched_replica(
    ctx: &Context<'_>,
    snapshot: &Snapshot,
    topic: &str,
    wanted: &WantedPartition,
    fetcher: Fetcher,
) -> Result<Rc<Replica>, ErrorCode> {
    let replica = local_replica(ctx.shard, snapshot, topic, wanted.partition)?;
    // Only the partition's own replicas, in their node's current life, read
    // past the high watermark.
    if let Fetcher::Follower(follower) = fetcher {
        replica.check_follower(follower, &snapshot.nodes).map_err(|e| ErrorCode::from(&e))?;
    }
    replica.check_leader_epoch(wanted.current_leader_epoch).map_err(|e| ErrorCode::from(&e))?;
    Ok(replica)
}

/// A follower's fetch tells the leader where the follower's log ends: its
/// fetch offsets, recorded once per request before the reads (Kafka's
/// `updateFollowerFetchState`), which may move the high watermark. A
/// follower that caught up wakes the shard's ISR task. A fetch whose log
/// parts from the leader's records nothing (its offset is not the leader's).
fn record_follower_progress(ctx: &Context<'_>, wanted: &[Wanted], follower: FollowerId) {
    let snapshot = ctx.shard.snapshot();
    let now_ms = crate::model::now_ms();
    for topic in wanted {
        for w in &topic.partitions {
            let Ok(replica) = fetched_replica(ctx, &snapshot, &topic.name, w, Fetcher::Follower(follower)) else {
                continue;
            };
            if w.position(&replica) != FetchPosition::OnLog {
                continue;
            }
            match replica.follower_fetched(follower, w.offset, now_ms, &snapshot.nodes) {
                Ok(progress) if progress.may_join_isr => ctx.shard.partitions.isr_changes_due(),
                Ok(_) => {}
                // Answered by the read: the partition's error is the refusal's.
                Err(_) => {}
            }
        }
    }
}

pub async fn handle(ctx: &Context<'_>, request: FetchRequest) -> Result<Response, ApiError> {
    let wanted = wanted(&request, ctx.version, &ctx.shard.snapshot());
    let fetcher = Fetcher::of(&request, ctx.version);
    if let Fetcher::Follower(follower) = fetcher {
        record_follower_progress(ctx, &wanted, follower);
    }
    let config = &ctx.shard.config;
    let limits = Limits {
        response_bytes_max: u64::from(request.max_bytes.max(0) as u32).min(u64::from(config.fetch_max_bytes)),
        request_memory_bytes_max: config.fetch_max_bytes as usize,
        shard_memory_bytes_max: config.fetch_memory_bytes,
    };
    let wait = Duration::from_millis((request.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MS_MAX));
    let deadline = tokio::time::Instant::now() + wait;
    let mut pass = read_all(ctx, &wanted, &limits, fetcher).await;
    while pass.response_bytes < request.min_bytes.max(0) as u64
        && !answers_now(&pass.found)
        && !ctx.shard.stopping.get()
    {
        // Registered before checking what moved since the pass read, so a
        // write in between is not missed; only the partitions read wake it.
        let mut waiters = WriteWaiters::register(pass.read.iter().map(|(replica, _)| replica.writes()));
        if !pass.outdated(fetcher) && tokio::time::timeout_at(deadline, waiters.any()).await.is_err() {
            break;
        }
        drop(waiters);
        // What the last pass read is let go before the next one reads.
        drop(std::mem::take(&mut pass));
        pass = read_all(ctx, &wanted, &limits, fetcher).await;
    }
    Ok(Response::Chunks(encode(ctx, &wanted, pass.found)))
}

/// An error or a diverging epoch is answered without waiting for records.
fn answers_now(found: &[Vec<Found>]) -> bool {
    found.iter().flatten().any(|f| f.error != ErrorCode::None || f.diverging.is_some())
}

fn encode(ctx: &Context<'_>, wanted: &[Wanted], found: Vec<Vec<Found>>) -> Vec<Chunk> {
    // Each leader named once among the endpoints (v16+).
    let mut leaders: Vec<LeaderHint> = Vec::new();
    for hint in found.iter().flatten().filter_map(|f| f.leader.as_ref()) {
        if !leaders.iter().any(|l| l.broker_id == hint.broker_id) {
            leaders.push(hint.clone());
        }
    }
    let endpoints: Vec<NodeEndpoint<'_>> =
        leaders.iter().map(|l| NodeEndpoint { node_id: l.broker_id, host: &l.host, port: i32::from(l.port) }).collect();
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
                    current_leader: f
                        .leader
                        .as_ref()
                        .map(|l| CurrentLeader { leader_id: l.broker_id, leader_epoch: l.leader_epoch }),
                    diverging_epoch: f.diverging,
                    records: f.slice.map(|s| {
                        let len = s.len();
                        (s, len)
                    }),
                })
                .collect(),
        })
        .collect();
    let pieces = fetch::encode(ctx.version, ctx.correlation_id, 0, 0, topics, &endpoints);
    let mut chunks = Vec::with_capacity(pieces.len());
    for piece in pieces {
        match piece {
            Piece::Inline(bytes) => chunks.push(Chunk::Inline(bytes)),
            Piece::Records(ReadSlice::File { file, position, bytes }, _) => {
                chunks.push(Chunk::File { file, position, len: bytes })
            }
            Piece::Records(ReadSlice::Memory { bytes, more, .. }, _) => {
                chunks.push(Chunk::Records(bytes));
                chunks.extend(more.into_iter().map(Chunk::Records));
            }
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn topic(name: &'static str, partitions: &[(i32, i64)]) -> FetchTopic {
        let partitions = partitions.iter().map(|&(p, offset)| {
            FetchPartition::default().with_partition(p).with_fetch_offset(offset).with_partition_max_bytes(100)
        });
        FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(name)))
            .with_partitions(partitions.collect())
    }

    #[test]
    fn a_partition_named_many_times_is_read_once_where_first_named_with_its_last_offset() {
        let mut topics = vec![topic("a", &[(0, 1), (1, 1)]), topic("b", &[(0, 5)])];
        topics.extend((0..3000).map(|i| topic("a", &[(0, i)])));
        topics.push(topic("c", &[(0, 0)]));
        let request = FetchRequest::default().with_topics(topics);
        let wanted = wanted(&request, 12, &Snapshot::default());
        let shape: Vec<(&str, Vec<(i32, i64)>)> = wanted
            .iter()
            .map(|w| (w.name.as_str(), w.partitions.iter().map(|p| (p.partition, p.offset)).collect()))
            .collect();
        assert_eq!(shape, vec![("a", vec![(0, 2999), (1, 1)]), ("b", vec![(0, 5)]), ("c", vec![(0, 0)])]);
    }
}
