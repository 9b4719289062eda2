//! One file per Kafka API. Each handler declares the versions it serves in
//! [`HANDLERS`]; ApiVersions answers from that same table, so it can never
//! disagree with what is served.

mod alter_configs;
mod alter_partition_reassignments;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod error;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leader_hint;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offsets_for_leader_epoch;
mod produce;
mod sync_group;

use std::future::Future;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

pub use error::ErrorCode;

use crate::protocol::{self, HeaderPrefix};
use crate::runtime::File;
use crate::shard::Shard;

/// What a request gets back.
pub enum Response {
    /// Nothing at all: Produce with acks=0.
    None,
    /// A whole encoded frame, size prefix included.
    Frame(Bytes),
    /// A frame assembled from encoded pieces and segment-file ranges (Fetch).
    Chunks(Vec<Chunk>),
}

pub enum Chunk {
    Inline(Bytes),
    File {
        file: Rc<File>,
        position: u64,
        len: u32,
    },
    /// Record bytes in memory (O_DIRECT logs: the hot tail or a direct read).
    Records(Bytes),
}

/// Problems that close the connection: the peer is not speaking the protocol
/// we can answer.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("{key:?} v{version} is not supported (supported: {min}..={max})")]
    UnsupportedVersion { key: ApiKey, version: i16, min: i16, max: i16 },
    #[error("encoding the response failed: {0}")]
    Encode(String),
}

/// Entries of a request a handler goes through before it lets the shard's
/// other tasks run: a request may name millions (socket.request.max.bytes),
/// and no other connection should wait for all of them.
const STEPS_PER_YIELD: usize = 4096;

pub struct Handler {
    pub key: ApiKey,
    pub versions: RangeInclusive<i16>,
}

/// Every API corelog serves, with the versions it serves.
pub const HANDLERS: &[Handler] = &[
    Handler { key: ApiKey::Produce, versions: 3..=10 },
    Handler { key: ApiKey::Fetch, versions: protocol::fetch::VERSION_MIN..=protocol::fetch::VERSION_MAX },
    Handler { key: ApiKey::ListOffsets, versions: 1..=10 },
    Handler { key: ApiKey::Metadata, versions: 0..=12 },
    Handler { key: ApiKey::ApiVersions, versions: 0..=3 },
    Handler { key: ApiKey::CreateTopics, versions: 2..=7 },
    Handler { key: ApiKey::DeleteTopics, versions: 1..=6 },
    Handler { key: ApiKey::DescribeConfigs, versions: 1..=4 },
    Handler { key: ApiKey::CreatePartitions, versions: 0..=3 },
    Handler { key: ApiKey::InitProducerId, versions: 0..=4 },
    Handler { key: ApiKey::FindCoordinator, versions: 0..=4 },
    Handler { key: ApiKey::JoinGroup, versions: 0..=9 },
    Handler { key: ApiKey::SyncGroup, versions: 0..=5 },
    Handler { key: ApiKey::Heartbeat, versions: 0..=4 },
    Handler { key: ApiKey::LeaveGroup, versions: 0..=5 },
    Handler { key: ApiKey::OffsetCommit, versions: 2..=9 },
    Handler { key: ApiKey::OffsetFetch, versions: 1..=9 },
    Handler { key: ApiKey::ListGroups, versions: 0..=5 },
    Handler { key: ApiKey::DescribeGroups, versions: 0..=5 },
    Handler { key: ApiKey::DeleteGroups, versions: 0..=2 },
    Handler { key: ApiKey::OffsetDelete, versions: 0..=0 },
    Handler { key: ApiKey::DeleteRecords, versions: 0..=2 },
    Handler { key: ApiKey::AlterConfigs, versions: 0..=2 },
    Handler { key: ApiKey::IncrementalAlterConfigs, versions: 0..=1 },
    Handler { key: ApiKey::DescribeLogDirs, versions: 1..=4 },
    Handler { key: ApiKey::OffsetForLeaderEpoch, versions: 2..=4 },
    Handler { key: ApiKey::AlterPartitionReassignments, versions: 0..=1 },
    Handler { key: ApiKey::ListPartitionReassignments, versions: 0..=0 },
    Handler { key: ApiKey::DescribeCluster, versions: 0..=2 },
];

fn supported_versions(key: ApiKey) -> Option<&'static RangeInclusive<i16>> {
    HANDLERS.iter().find(|h| h.key == key).map(|h| &h.versions)
}

/// What a handler knows about the request it serves.
pub struct Context<'a> {
    pub shard: &'a Shard,
    pub key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// A view into the request frame: no copy unless a handler keeps it.
    pub client_id: kafka_protocol::protocol::StrBytes,
    /// The client's address as Kafka shows it ("/127.0.0.1").
    pub client_host: &'a str,
}

impl Context<'_> {
    /// Encodes `body` behind the response header of this request's version.
    pub fn respond<B: Encodable>(&self, body: &B) -> Result<Response, ApiError> {
        let mut buf = BytesMut::with_capacity(128);
        buf.put_i32(0);
        let header = ResponseHeader::default().with_correlation_id(self.correlation_id);
        let encoded = header
            .encode(&mut buf, self.key.response_header_version(self.version))
            .and_then(|_| body.encode(&mut buf, self.version));
        encoded.map_err(|e| ApiError::Encode(format!("{:?} v{}: {e}", self.key, self.version)))?;
        let size = i32::try_from(buf.len() - 4).map_err(|_| {
            ApiError::Encode(format!(
                "{:?} v{}: an answer of {} bytes exceeds a frame",
                self.key,
                self.version,
                buf.len()
            ))
        })?;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        Ok(Response::Frame(buf.freeze()))
    }
}

fn decode<T: Decodable>(body: &mut Bytes, key: ApiKey, version: i16) -> Result<T, ApiError> {
    T::decode(body, version).map_err(|e| ApiError::Malformed(format!("{key:?} v{version}: {e}")))
}

/// A request once begun by [`begin`].
pub enum Begun<'a> {
    /// Its effects are made (a Produce's appends, in arrival order); only the
    /// answer is left to await, which may overlap with later requests.
    Answer(Pin<Box<dyn Future<Output = Result<Response, ApiError>> + 'a>>),
    /// To be served by [`handle`] alone: after every earlier request is
    /// answered and before any later one begins, as Kafka serves a connection.
    Alone(Bytes),
}

/// Begins a request in arrival order. Only a Produce that needs no topic
/// created is pipelined: its appends happen here, synchronously, so a
/// connection's batches reach the log in the order they were sent.
pub fn begin<'a>(shard: &'a Shard, client_host: &'a str, frame: Bytes) -> Result<Begun<'a>, ApiError> {
    let prefix = HeaderPrefix::peek(&frame).map_err(|e| ApiError::Malformed(e.to_string()))?;
    let key = ApiKey::Produce;
    let served = supported_versions(key).is_some_and(|v| v.contains(&prefix.api_version));
    if prefix.api_key != key as i16 || !served {
        return Ok(Begun::Alone(frame));
    }
    let (version, mut body) = (prefix.api_version, frame.clone());
    let header: RequestHeader = decode(&mut body, key, key.request_header_version(version))?;
    let request: kafka_protocol::messages::ProduceRequest = decode(&mut body, key, version)?;
    if produce::creates_topics(shard, &request) {
        return Ok(Begun::Alone(frame));
    }
    let client_id = header.client_id.unwrap_or_default();
    let ctx = Context { shard, key, version, correlation_id: prefix.correlation_id, client_id, client_host };
    let appended = produce::append_all(shard, &request);
    Ok(Begun::Answer(Box::pin(async move { appended.answer(&ctx).await })))
}

/// A request's header, decoded and checked against [`HANDLERS`].
enum Header {
    Served {
        key: ApiKey,
        version: i16,
        header: RequestHeader,
    },
    /// An ApiVersions of a version not served: answered in v0 (KIP-511).
    UnsupportedApiVersions {
        correlation_id: i32,
    },
}

/// Decodes the header of a request frame (without its size prefix), leaving
/// `frame` at the body.
fn decode_header(frame: &mut Bytes) -> Result<Header, ApiError> {
    let prefix = HeaderPrefix::peek(frame).map_err(|e| ApiError::Malformed(e.to_string()))?;
    let key = ApiKey::try_from(prefix.api_key).map_err(|_| ApiError::UnknownApiKey(prefix.api_key))?;
    let Some(versions) = supported_versions(key) else {
        return Err(ApiError::UnknownApiKey(prefix.api_key));
    };
    if !versions.contains(&prefix.api_version) {
        if key == ApiKey::ApiVersions {
            return Ok(Header::UnsupportedApiVersions { correlation_id: prefix.correlation_id });
        }
        let (min, max) = (*versions.start(), *versions.end());
        return Err(ApiError::UnsupportedVersion { key, version: prefix.api_version, min, max });
    }
    let version = prefix.api_version;
    let header = decode(frame, key, key.request_header_version(version))?;
    Ok(Header::Served { key, version, header })
}

/// Decodes a whole request frame as [`handle`] does, without serving it:
/// what the request decoder's fuzz target runs. The arms mirror `handle`'s
/// (kafka-protocol's `RequestKind` would need its `messages_enums` feature,
/// which compiles every message of every API).
#[cfg(any(test, feature = "fuzzing"))]
pub fn decode_request(mut frame: Bytes) -> Result<(), ApiError> {
    use kafka_protocol::messages::*;
    let Header::Served { key, version, .. } = decode_header(&mut frame)? else { return Ok(()) };
    let body = &mut frame;
    match key {
        ApiKey::ApiVersions => decode::<ApiVersionsRequest>(body, key, version).map(drop),
        ApiKey::Metadata => decode::<MetadataRequest>(body, key, version).map(drop),
        ApiKey::Produce => decode::<ProduceRequest>(body, key, version).map(drop),
        ApiKey::Fetch => decode::<FetchRequest>(body, key, version).map(drop),
        ApiKey::ListOffsets => decode::<ListOffsetsRequest>(body, key, version).map(drop),
        ApiKey::CreateTopics => decode::<CreateTopicsRequest>(body, key, version).map(drop),
        ApiKey::DeleteTopics => decode::<DeleteTopicsRequest>(body, key, version).map(drop),
        ApiKey::DescribeConfigs => decode::<DescribeConfigsRequest>(body, key, version).map(drop),
        ApiKey::CreatePartitions => decode::<CreatePartitionsRequest>(body, key, version).map(drop),
        ApiKey::InitProducerId => decode::<InitProducerIdRequest>(body, key, version).map(drop),
        ApiKey::FindCoordinator => decode::<FindCoordinatorRequest>(body, key, version).map(drop),
        ApiKey::JoinGroup => decode::<JoinGroupRequest>(body, key, version).map(drop),
        ApiKey::SyncGroup => decode::<SyncGroupRequest>(body, key, version).map(drop),
        ApiKey::Heartbeat => decode::<HeartbeatRequest>(body, key, version).map(drop),
        ApiKey::LeaveGroup => decode::<LeaveGroupRequest>(body, key, version).map(drop),
        ApiKey::OffsetCommit => decode::<OffsetCommitRequest>(body, key, version).map(drop),
        ApiKey::OffsetFetch => decode::<OffsetFetchRequest>(body, key, version).map(drop),
        ApiKey::ListGroups => decode::<ListGroupsRequest>(body, key, version).map(drop),
        ApiKey::DescribeGroups => decode::<DescribeGroupsRequest>(body, key, version).map(drop),
        ApiKey::DeleteGroups => decode::<DeleteGroupsRequest>(body, key, version).map(drop),
        ApiKey::OffsetDelete => decode::<OffsetDeleteRequest>(body, key, version).map(drop),
        ApiKey::DeleteRecords => decode::<DeleteRecordsRequest>(body, key, version).map(drop),
        ApiKey::AlterConfigs => decode::<AlterConfigsRequest>(body, key, version).map(drop),
        ApiKey::IncrementalAlterConfigs => decode::<IncrementalAlterConfigsRequest>(body, key, version).map(drop),
        ApiKey::DescribeLogDirs => decode::<DescribeLogDirsRequest>(body, key, version).map(drop),
        ApiKey::OffsetForLeaderEpoch => decode::<OffsetForLeaderEpochRequest>(body, key, version).map(drop),
        ApiKey::AlterPartitionReassignments => {
            decode::<AlterPartitionReassignmentsRequest>(body, key, version).map(drop)
        }
        ApiKey::ListPartitionReassignments => decode::<ListPartitionReassignmentsRequest>(body, key, version).map(drop),
        ApiKey::DescribeCluster => decode::<DescribeClusterRequest>(body, key, version).map(drop),
        _ => unreachable!("every key in HANDLERS has an arm"),
    }
}

/// Serves one request frame (without its size prefix).
pub async fn handle(shard: &Shard, client_host: &str, mut frame: Bytes) -> Result<Response, ApiError> {
    let (key, version, header) = match decode_header(&mut frame)? {
        Header::Served { key, version, header } => (key, version, header),
        Header::UnsupportedApiVersions { correlation_id } => return api_versions::unsupported_version(correlation_id),
    };
    let correlation_id = header.correlation_id;
    let client_id = header.client_id.unwrap_or_default();
    let ctx = Context { shard, key, version, correlation_id, client_id, client_host };
    let body = &mut frame;
    match key {
        ApiKey::ApiVersions => api_versions::handle(&ctx, decode(body, key, version)?),
        ApiKey::Metadata => metadata::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::Produce => produce::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::Fetch => fetch::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::ListOffsets => list_offsets::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::CreateTopics => create_topics::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::DeleteTopics => delete_topics::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::DescribeConfigs => describe_configs::handle(&ctx, decode(body, key, version)?),
        ApiKey::CreatePartitions => create_partitions::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::InitProducerId => init_producer_id::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::FindCoordinator => find_coordinator::handle(&ctx, decode(body, key, version)?),
        ApiKey::JoinGroup => join_group::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::SyncGroup => sync_group::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::Heartbeat => heartbeat::handle(&ctx, decode(body, key, version)?),
        ApiKey::LeaveGroup => leave_group::handle(&ctx, decode(body, key, version)?),
        ApiKey::OffsetCommit => offset_commit::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::OffsetFetch => offset_fetch::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::ListGroups => list_groups::handle(&ctx, decode(body, key, version)?),
        ApiKey::DescribeGroups => describe_groups::handle(&ctx, decode(body, key, version)?),
        ApiKey::DeleteGroups => delete_groups::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::OffsetDelete => offset_delete::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::DeleteRecords => delete_records::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::AlterConfigs => alter_configs::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::IncrementalAlterConfigs => incremental_alter_configs::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::DescribeLogDirs => describe_log_dirs::handle(&ctx, decode(body, key, version)?),
        ApiKey::OffsetForLeaderEpoch => offsets_for_leader_epoch::handle(&ctx, decode(body, key, version)?).await,
        ApiKey::AlterPartitionReassignments => {
            alter_partition_reassignments::handle(&ctx, decode(body, key, version)?).await
        }
        ApiKey::ListPartitionReassignments => list_partition_reassignments::handle(&ctx, decode(body, key, version)?),
        ApiKey::DescribeCluster => describe_cluster::handle(&ctx, decode(body, key, version)?),
        _ => unreachable!("every key in HANDLERS has an arm"),
    }
}

/// The local replica of a partition, or the error a client should see instead.
fn local_replica(
    shard: &Shard,
    snapshot: &crate::metadata::Snapshot,
    topic: &str,
    partition: i32,
) -> Result<Rc<crate::partition::Replica>, ErrorCode> {
    let meta = snapshot.topic(topic).ok_or(ErrorCode::UnknownTopicOrPartition)?;
    let assignment = meta.partition(partition).ok_or(ErrorCode::UnknownTopicOrPartition)?;
    if !assignment.is_led_by(shard.replica()) {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    // Owned here but not open: its files could not be read at start-up.
    shard.partitions.get(topic, partition).ok_or(ErrorCode::KafkaStorageError)
}
