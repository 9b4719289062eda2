//! What a replica refuses, and why. Kafka error codes are given to these in
//! one place, `api/error.rs`.

use std::path::PathBuf;

use thiserror::Error;

use crate::model::batch::BatchError;
use crate::model::recompress::RecompressError;
use crate::model::validate::ValidateError;
use crate::storage::StorageError;

#[derive(Debug, Error)]
pub enum PartitionError {
    /// Kafka's ReplicaManager refuses client appends to internal topics.
    #[error("cannot append to internal topic {topic}")]
    InternalTopic { topic: String },
    #[error("no record batch")]
    NoBatches,
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Invalid(#[from] ValidateError),
    #[error(transparent)]
    Recompress(#[from] RecompressError),
    #[error("compacted topic cannot accept a record without a key")]
    KeylessRecordInCompactedTopic,
    #[error(
        "timestamp {timestamp} is more than message.timestamp.after.max.ms ({bound_ms}) after the broker's clock ({now_ms})"
    )]
    TimestampTooLate { timestamp: i64, bound_ms: i64, now_ms: i64 },
    #[error(
        "timestamp {timestamp} is more than message.timestamp.before.max.ms ({bound_ms}) before the broker's clock ({now_ms})"
    )]
    TimestampTooEarly { timestamp: i64, bound_ms: i64, now_ms: i64 },
    #[error("expected sequence {expected}, got {got}")]
    OutOfOrderSequence { expected: i32, got: i32 },
    /// A batch ahead of ones a failed write's rollback took, whose
    /// retry has not come yet: it was sent behind them, and is retried
    /// after them (chaos finding 8).
    #[error("expected sequence {expected} again (a failed write took it), got {got}")]
    SequenceAheadOfRollback { expected: i32, got: i32 },
    /// The batch's producer epoch is older than one the producer has used.
    #[error("epoch {epoch} is fenced")]
    FencedProducerEpoch { epoch: i16 },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{path}: {source}")]
    CheckpointIo { path: PathBuf, source: std::io::Error },
    /// This replica does not lead its partition (any more).
    #[error("this replica does not lead the partition")]
    NotLeader,
    /// A follower fetch from a broker that holds no replica of the partition.
    #[error("broker {broker_id} holds no replica of this partition")]
    NotAReplica { broker_id: i32 },
    /// A follower fetch carrying an older broker epoch than its node's
    /// registration: a previous life of the process (KIP-903).
    #[error("broker {broker_id} fetched with broker epoch {sent}, its node is registered with {registered}")]
    StaleBrokerEpoch { broker_id: i32, sent: i64, registered: i64 },
    /// The request was made for an older leader epoch: the client refreshes.
    #[error("leader epoch {requested} is older than the partition's {ours}")]
    FencedLeaderEpoch { requested: i32, ours: i32 },
    /// The request names a leader epoch this replica has not learnt yet.
    #[error("leader epoch {requested} is newer than the partition's {ours}")]
    UnknownLeaderEpoch { requested: i32, ours: i32 },
    /// A leader whose high watermark has not yet reached the log end its
    /// leadership began with: the offsets it could answer may be below ones
    /// already answered before (Kafka's KIP-207, OFFSET_NOT_AVAILABLE).
    #[error("the high watermark {high_watermark} is behind the start of this leadership ({epoch_start_offset})")]
    HighWatermarkBehindEpochStart { high_watermark: i64, epoch_start_offset: i64 },
    #[error("{isr} in-sync replicas, min.insync.replicas is {min}")]
    NotEnoughReplicas { isr: usize, min: i32 },
    /// Written by the leader, but the ISR shrank below min.insync.replicas
    /// before every in-sync replica had it.
    #[error("appended, but the ISR shrank to {isr}, below min.insync.replicas {min}")]
    NotEnoughReplicasAfterAppend { isr: usize, min: i32 },
    /// Written by the leader, but not every in-sync replica had it in time.
    #[error("not every in-sync replica had it within {timeout_ms} ms")]
    ReplicationTimedOut { timeout_ms: u64 },
    #[error("{path}: line {line}: {why}: refusing a leader epoch checkpoint that is not Kafka's format")]
    CheckpointCorrupt { path: PathBuf, line: usize, why: String },
}
