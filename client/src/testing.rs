//! An in-process fake Kafka cluster for the tools' tests (feature "testing").
//!
//! Two brokers on loopback ports share one topic table. Partition `p` of
//! every topic is led by broker `p % 2 + 1`, and a broker answers ListOffsets
//! for a partition it does not lead with NOT_LEADER_OR_FOLLOWER, so a client
//! that routes by leader sees no errors. Only what `corelog topics` sends is
//! implemented. Test code: a shared `Mutex` is fine here.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, StrBytes};
use uuid::Uuid;

use crate::requests::topic_name;

const NODE_COUNT: i32 = 2;

/// Requests the tools send are small; anything bigger is a broken test.
const FRAME_BYTES_MAX: usize = 1 << 20;

#[derive(Default)]
pub struct State {
    pub topics: BTreeMap<String, (Uuid, i32)>,
    /// (node id, API key) of every request served.
    pub requests: Vec<(i32, ApiKey)>,
    ports: Vec<i32>,
}

pub type Shared = Arc<Mutex<State>>;

/// Starts the brokers; returns the bootstrap address and the shared state.
pub fn start() -> (String, Shared) {
    let listeners: Vec<TcpListener> = (0..NODE_COUNT).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let state = Shared::default();
    for listener in &listeners {
        let port = listener.local_addr().unwrap().port();
        state.lock().unwrap().ports.push(i32::from(port));
    }
    let bootstrap = listeners[0].local_addr().unwrap().to_string();
    for (index, listener) in listeners.into_iter().enumerate() {
        let state = state.clone();
        std::thread::spawn(move || accept(listener, index as i32 + 1, state));
    }
    (bootstrap, state)
}

fn accept(listener: TcpListener, node_id: i32, state: Shared) {
    for stream in listener.incoming() {
        let state = state.clone();
        std::thread::spawn(move || serve(stream.unwrap(), node_id, state));
    }
}

fn serve(mut stream: TcpStream, node_id: i32, state: Shared) {
    while let Ok(frame) = crate::frame::read_frame(&mut stream, FRAME_BYTES_MAX) {
        let response = answer(frame, node_id, &state);
        stream.write_all(&(response.len() as i32).to_be_bytes()).unwrap();
        stream.write_all(&response).unwrap();
    }
}

fn answer(mut frame: Bytes, node_id: i32, state: &Shared) -> BytesMut {
    let header = decode_request_header_from_buffer(&mut frame).unwrap();
    let version = header.request_api_version;
    let key = ApiKey::try_from(header.request_api_key).unwrap();
    let mut state = state.lock().unwrap();
    state.requests.push((node_id, key));
    let mut out = BytesMut::new();
    let mut response_header = ResponseHeader::default();
    response_header.correlation_id = header.correlation_id;
    let header_version = key.response_header_version(version);
    response_header.encode(&mut out, header_version).unwrap();
    let state = &mut *state;
    match key {
        ApiKey::ApiVersions => api_versions().encode(&mut out, version),
        ApiKey::Metadata => metadata(decode(frame, version), state).encode(&mut out, version),
        ApiKey::CreateTopics => create(decode(frame, version), state).encode(&mut out, version),
        ApiKey::DeleteTopics => delete(decode(frame, version), state).encode(&mut out, version),
        ApiKey::DescribeConfigs => configs(decode(frame, version)).encode(&mut out, version),
        ApiKey::ListOffsets => offsets(decode(frame, version), node_id).encode(&mut out, version),
        other => panic!("fake broker does not serve {other:?}"),
    }
    .unwrap();
    out
}

fn decode<T: Decodable>(mut frame: Bytes, version: i16) -> T {
    T::decode(&mut frame, version).unwrap()
}

fn api_versions() -> ApiVersionsResponse {
    let keys = [
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::DescribeConfigs,
        ApiKey::ListOffsets,
    ];
    let mut response = ApiVersionsResponse::default();
    response.api_keys = keys
        .iter()
        .map(|key| {
            let mut api = ApiVersion::default();
            api.api_key = *key as i16;
            api.min_version = key.valid_versions().min;
            api.max_version = key.valid_versions().max;
            api
        })
        .collect();
    response
}

fn metadata(request: MetadataRequest, state: &State) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    response.brokers = (1..=NODE_COUNT)
        .map(|id| {
            let mut broker = MetadataResponseBroker::default();
            broker.node_id = id.into();
            broker.host = StrBytes::from_static_str("127.0.0.1");
            broker.port = state.ports[id as usize - 1];
            broker
        })
        .collect();
    response.controller_id = 2.into();
    let names: Vec<String> = match request.topics {
        None => state.topics.keys().cloned().collect(),
        Some(topics) => topics.iter().map(|t| t.name.as_ref().unwrap().0.to_string()).collect(),
    };
    response.topics = names.iter().map(|n| metadata_topic(n, state)).collect();
    response
}

fn metadata_topic(name: &str, state: &State) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default();
    topic.name = Some(topic_name(name));
    match state.topics.get(name) {
        None => topic.error_code = 3,
        Some((id, count)) => {
            topic.topic_id = *id;
            topic.partitions = (0..*count).map(metadata_partition).collect();
        }
    }
    topic
}

fn metadata_partition(index: i32) -> MetadataResponsePartition {
    let leader = index % NODE_COUNT + 1;
    let mut partition = MetadataResponsePartition::default();
    partition.partition_index = index;
    partition.leader_id = leader.into();
    partition.replica_nodes = vec![leader.into()];
    partition.isr_nodes = vec![leader.into()];
    partition
}

fn create(request: CreateTopicsRequest, state: &mut State) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    for topic in request.topics {
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        if let Err((code, message)) = create_one(&topic, state) {
            result.error_code = code;
            result.error_message = Some(message.into());
        }
        response.topics.push(result);
    }
    response
}

fn create_one(topic: &CreatableTopic, state: &mut State) -> Result<(), (i16, String)> {
    let name = topic.name.0.to_string();
    if !matches!(topic.replication_factor, -1 | 1) {
        return Err((38, "Replication factor must be 1.".into()));
    }
    match state.topics.entry(name) {
        Entry::Occupied(entry) => Err((36, format!("Topic '{}' already exists.", entry.key()))),
        Entry::Vacant(entry) => {
            entry.insert((Uuid::new_v4(), topic.num_partitions.max(1)));
            Ok(())
        }
    }
}

fn delete(request: DeleteTopicsRequest, state: &mut State) -> DeleteTopicsResponse {
    let names = request.topic_names.into_iter().map(Some);
    let names = names.chain(request.topics.into_iter().map(|t| t.name));
    let mut response = DeleteTopicsResponse::default();
    for name in names.flatten() {
        let mut result = DeletableTopicResult::default();
        if state.topics.remove(name.0.as_str()).is_none() {
            result.error_code = 3;
        }
        result.name = Some(name);
        response.responses.push(result);
    }
    response
}

fn configs(request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let entry = |name: &'static str, value: &'static str, source: i8| {
        let mut entry = DescribeConfigsResourceResult::default();
        entry.name = StrBytes::from_static_str(name);
        entry.value = Some(StrBytes::from_static_str(value));
        entry.config_source = source;
        entry
    };
    let mut response = DescribeConfigsResponse::default();
    for resource in request.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name;
        result.configs = vec![entry("segment.bytes", "1048576", 5), entry("retention.ms", "1000", 1)];
        response.results.push(result);
    }
    response
}

/// Each partition holds offsets 10..(20 + index); asking a non-leader fails.
fn offsets(request: ListOffsetsRequest, node_id: i32) -> ListOffsetsResponse {
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let mut result = ListOffsetsTopicResponse::default();
        result.name = topic.name;
        for partition in topic.partitions {
            let index = partition.partition_index;
            let mut answer = ListOffsetsPartitionResponse::default();
            answer.partition_index = index;
            answer.offset = if partition.timestamp == -2 { 10 } else { 20 + i64::from(index) };
            if index % NODE_COUNT + 1 != node_id {
                answer.error_code = 6;
            }
            result.partitions.push(answer);
        }
        response.topics.push(result);
    }
    response
}
