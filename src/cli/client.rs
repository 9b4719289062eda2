//! A small blocking Kafka client for the command-line tools.
//!
//! It speaks the plain Kafka protocol over `std::net::TcpStream`, so the
//! tools work against corelog and against any other Kafka broker. Each
//! `Connection` asks the broker for its API versions once, right after
//! connecting, and from then on sends every request at the highest version
//! both sides support. `Cluster` adds what an admin client needs on top:
//! metadata, and one connection per broker, opened when first needed.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ListOffsetsRequest, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes, VersionRange};

pub const CLIENT_ID: &str = "corelog-cli";

/// Connect, read and write timeout. Admin requests carry a shorter
/// server-side timeout (`REQUEST_TIMEOUT_MS`) so the broker answers first.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Server-side timeout put in requests that have one (CreateTopics, ...).
pub const REQUEST_TIMEOUT_MS: i32 = 25_000;

/// Largest response frame accepted. A bigger size prefix means the peer is
/// not a Kafka broker or the stream is out of step; reading on would only
/// allocate memory for garbage.
const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Highest ApiVersions version we send first. v3 carries the client's
/// software name; brokers that do not know it answer UNSUPPORTED_VERSION.
const API_VERSIONS_VERSION_MAX: i16 = 3;

pub const ERROR_NONE: i16 = 0;
pub const ERROR_UNSUPPORTED_VERSION: i16 = 35;

/// Kafka's names for the error codes a user is likely to meet.
const ERROR_NAMES: &[(i16, &str)] = &[
    (-1, "UNKNOWN_SERVER_ERROR"),
    (0, "NONE"),
    (1, "OFFSET_OUT_OF_RANGE"),
    (2, "CORRUPT_MESSAGE"),
    (3, "UNKNOWN_TOPIC_OR_PARTITION"),
    (4, "INVALID_FETCH_SIZE"),
    (5, "LEADER_NOT_AVAILABLE"),
    (6, "NOT_LEADER_OR_FOLLOWER"),
    (7, "REQUEST_TIMED_OUT"),
    (8, "BROKER_NOT_AVAILABLE"),
    (9, "REPLICA_NOT_AVAILABLE"),
    (10, "MESSAGE_TOO_LARGE"),
    (12, "OFFSET_METADATA_TOO_LARGE"),
    (13, "NETWORK_EXCEPTION"),
    (14, "COORDINATOR_LOAD_IN_PROGRESS"),
    (15, "COORDINATOR_NOT_AVAILABLE"),
    (16, "NOT_COORDINATOR"),
    (17, "INVALID_TOPIC_EXCEPTION"),
    (18, "RECORD_LIST_TOO_LARGE"),
    (19, "NOT_ENOUGH_REPLICAS"),
    (22, "ILLEGAL_GENERATION"),
    (23, "INCONSISTENT_GROUP_PROTOCOL"),
    (24, "INVALID_GROUP_ID"),
    (25, "UNKNOWN_MEMBER_ID"),
    (26, "INVALID_SESSION_TIMEOUT"),
    (27, "REBALANCE_IN_PROGRESS"),
    (28, "INVALID_COMMIT_OFFSET_SIZE"),
    (29, "TOPIC_AUTHORIZATION_FAILED"),
    (30, "GROUP_AUTHORIZATION_FAILED"),
    (31, "CLUSTER_AUTHORIZATION_FAILED"),
    (32, "INVALID_TIMESTAMP"),
    (35, "UNSUPPORTED_VERSION"),
    (36, "TOPIC_ALREADY_EXISTS"),
    (37, "INVALID_PARTITIONS"),
    (38, "INVALID_REPLICATION_FACTOR"),
    (39, "INVALID_REPLICA_ASSIGNMENT"),
    (40, "INVALID_CONFIG"),
    (41, "NOT_CONTROLLER"),
    (42, "INVALID_REQUEST"),
    (43, "UNSUPPORTED_FOR_MESSAGE_FORMAT"),
    (44, "POLICY_VIOLATION"),
    (56, "KAFKA_STORAGE_ERROR"),
    (58, "SASL_AUTHENTICATION_FAILED"),
    (68, "NON_EMPTY_GROUP"),
    (69, "GROUP_ID_NOT_FOUND"),
    (73, "TOPIC_DELETION_DISABLED"),
    (74, "FENCED_LEADER_EPOCH"),
    (75, "UNKNOWN_LEADER_EPOCH"),
    (76, "UNSUPPORTED_COMPRESSION_TYPE"),
    (78, "OFFSET_NOT_AVAILABLE"),
    (79, "MEMBER_ID_REQUIRED"),
    (81, "GROUP_MAX_SIZE_REACHED"),
    (82, "FENCED_INSTANCE_ID"),
    (86, "GROUP_SUBSCRIBED_TO_TOPIC"),
    (87, "INVALID_RECORD"),
    (88, "UNSTABLE_OFFSET_COMMIT"),
    (100, "UNKNOWN_TOPIC_ID"),
];

/// Kafka's name for an error code, or `ERROR_<code>` for codes not in the table.
pub fn error_name(code: i16) -> Cow<'static, str> {
    match ERROR_NAMES.iter().find(|(known, _)| *known == code) {
        Some((_, name)) => Cow::Borrowed(name),
        None => Cow::Owned(format!("ERROR_{code}")),
    }
}

/// An error code a broker answered with, and its message if it sent one.
/// Displays as `TOPIC_ALREADY_EXISTS: <message>`.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaError {
    pub code: i16,
    pub message: Option<String>,
}

impl KafkaError {
    /// `Ok` for error code 0, otherwise the error with its message.
    pub fn check(code: i16, message: Option<&StrBytes>) -> Result<(), KafkaError> {
        if code == ERROR_NONE {
            return Ok(());
        }
        let message = message.map(|m| m.to_string()).filter(|m| !m.is_empty());
        Err(KafkaError { code, message })
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => write!(f, "{}: {}", error_name(self.code), message),
            None => write!(f, "{}", error_name(self.code)),
        }
    }
}

impl std::error::Error for KafkaError {}

/// The API key a request type is sent under.
pub fn api_key<Req: Request>() -> anyhow::Result<ApiKey> {
    ApiKey::try_from(Req::KEY).map_err(|()| anyhow!("unknown API key {}", Req::KEY))
}

/// Encodes one request frame: size prefix, request header, body.
pub fn encode_request<Req: Request>(request: &Req, version: i16, correlation_id: i32) -> anyhow::Result<BytesMut> {
    let key = api_key::<Req>()?;
    let mut header = RequestHeader::default();
    header.request_api_key = Req::KEY;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));
    let header_version = key.request_header_version(version);
    let size = header.compute_size(header_version)? + request.compute_size(version)?;
    let mut frame = BytesMut::with_capacity(4 + size);
    frame.put_i32(i32::try_from(size).context("request too large")?);
    header.encode(&mut frame, header_version)?;
    request.encode(&mut frame, version).with_context(|| format!("encoding {key:?} v{version}"))?;
    Ok(frame)
}

/// Decodes a response header (the frame without its size prefix), checks
/// that it answers `correlation_id`, and returns the body that follows.
pub fn decode_response_header(
    key: ApiKey,
    version: i16,
    mut frame: Bytes,
    correlation_id: i32,
) -> anyhow::Result<Bytes> {
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .with_context(|| format!("decoding {key:?} v{version} response header"))?;
    if header.correlation_id != correlation_id {
        bail!("{key:?} response has correlation id {}, expected {correlation_id}", header.correlation_id);
    }
    Ok(frame)
}

/// Decodes a whole response body; bytes left over mean the two sides
/// disagree about the version's layout.
pub fn decode_body<Resp: Decodable>(mut body: Bytes, version: i16) -> anyhow::Result<Resp> {
    let response = Resp::decode(&mut body, version)?;
    if body.has_remaining() {
        bail!("{} bytes left over after the response", body.remaining());
    }
    Ok(response)
}

/// One TCP connection to one broker, with the API versions it supports.
pub struct Connection {
    addr: String,
    stream: TcpStream,
    correlation_id: i32,
    broker_versions: HashMap<i16, VersionRange>,
}

impl Connection {
    /// Connects to `addr` (host:port) and learns the broker's API versions.
    pub fn connect(addr: &str) -> anyhow::Result<Connection> {
        let stream = open_stream(addr)?;
        let mut connection =
            Connection { addr: addr.to_string(), stream, correlation_id: 0, broker_versions: HashMap::new() };
        connection.negotiate_versions()?;
        Ok(connection)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The version a request of `key` is sent at: the highest one both we
    /// and the broker support.
    pub fn version(&self, key: ApiKey) -> anyhow::Result<i16> {
        let ours = key.valid_versions();
        let Some(theirs) = self.broker_versions.get(&(key as i16)) else {
            bail!("broker {} does not support {key:?}", self.addr);
        };
        let common = ours.intersect(theirs);
        if common.is_empty() {
            bail!(
                "UNSUPPORTED_VERSION: broker {} supports {key:?} versions {theirs}, \
                 this client {ours}",
                self.addr
            );
        }
        Ok(common.max)
    }

    /// Sends `request` at the negotiated version and waits for its response.
    pub fn send<Req: Request>(&mut self, request: Req) -> anyhow::Result<Req::Response> {
        let key = api_key::<Req>()?;
        let version = self.version(key)?;
        self.send_at(&request, version)
    }

    /// Sends `request` at `version` and waits for its response.
    pub fn send_at<Req: Request>(&mut self, request: &Req, version: i16) -> anyhow::Result<Req::Response> {
        let key = api_key::<Req>()?;
        let body = self.exchange(request, version)?;
        decode_body(body, version).with_context(|| format!("decoding {key:?} v{version} response from {}", self.addr))
    }

    /// Writes one request and reads its response body.
    fn exchange<Req: Request>(&mut self, request: &Req, version: i16) -> anyhow::Result<Bytes> {
        let key = api_key::<Req>()?;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(request, version, self.correlation_id)?;
        self.stream.write_all(&frame).with_context(|| format!("sending {key:?} to {}", self.addr))?;
        let response =
            read_frame(&mut self.stream).with_context(|| format!("reading {key:?} response from {}", self.addr))?;
        decode_response_header(key, version, response, self.correlation_id)
    }

    /// Asks for ApiVersions at v3 and, as Kafka clients do, falls back to the
    /// version the broker says it supports when it answers UNSUPPORTED_VERSION.
    fn negotiate_versions(&mut self) -> anyhow::Result<()> {
        let mut response = self.api_versions(API_VERSIONS_VERSION_MAX)?;
        if response.error_code == ERROR_UNSUPPORTED_VERSION {
            let retry = fallback_api_versions_version(&response);
            response = self.api_versions(retry)?;
        }
        KafkaError::check(response.error_code, None).with_context(|| format!("ApiVersions from {}", self.addr))?;
        self.broker_versions =
            response.api_keys.iter().map(|api| (api.api_key, range(api.min_version, api.max_version))).collect();
        Ok(())
    }

    fn api_versions(&mut self, version: i16) -> anyhow::Result<ApiVersionsResponse> {
        let mut request = ApiVersionsRequest::default();
        if version >= 3 {
            request.client_software_name = StrBytes::from_static_str(CLIENT_ID);
            request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        }
        let body = self.exchange(&request, version)?;
        // A broker that does not support `version` answers in v0 layout.
        decode_body(body.clone(), version)
            .or_else(|_| decode_body(body, 0))
            .with_context(|| format!("decoding ApiVersions response from {}", self.addr))
    }
}

fn range(min: i16, max: i16) -> VersionRange {
    VersionRange { min, max }
}

/// The ApiVersions version to retry with after UNSUPPORTED_VERSION: the
/// broker's highest if it listed ApiVersions, else v0 which all support.
fn fallback_api_versions_version(response: &ApiVersionsResponse) -> i16 {
    response
        .api_keys
        .iter()
        .find(|api| api.api_key == ApiKey::ApiVersions as i16)
        .map(|api| api.max_version.clamp(0, API_VERSIONS_VERSION_MAX - 1))
        .unwrap_or(0)
}

fn open_stream(addr: &str) -> anyhow::Result<TcpStream> {
    let mut last_error = None;
    let addrs = addr.to_socket_addrs().with_context(|| format!("resolving {addr}"))?;
    for socket_addr in addrs {
        match TcpStream::connect_timeout(&socket_addr, IO_TIMEOUT) {
            Ok(stream) => {
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.set_write_timeout(Some(IO_TIMEOUT))?;
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) => last_error = Some(error),
        }
    }
    match last_error {
        Some(error) => Err(error).with_context(|| format!("connecting to {addr}")),
        None => bail!("{addr} resolved to no address"),
    }
}

/// Reads one size-prefixed frame and returns it without the prefix.
pub(super) fn read_frame(stream: &mut impl Read) -> anyhow::Result<Bytes> {
    let mut size_bytes = [0u8; 4];
    stream.read_exact(&mut size_bytes)?;
    let size = i32::from_be_bytes(size_bytes);
    let size = usize::try_from(size).map_err(|_| anyhow!("negative frame size {size}"))?;
    if size > RESPONSE_BYTES_MAX {
        bail!("frame of {size} bytes is over the {RESPONSE_BYTES_MAX} byte limit");
    }
    let mut frame = vec![0u8; size];
    stream.read_exact(&mut frame)?;
    Ok(Bytes::from(frame))
}

/// A broker as listed in a Metadata response.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

impl Broker {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The brokers of one cluster, reached through a bootstrap broker, with one
/// connection per broker opened on first use.
pub struct Cluster {
    bootstrap: Connection,
    connections: HashMap<i32, Connection>,
    brokers: HashMap<i32, Broker>,
    controller_id: Option<i32>,
}

impl Cluster {
    /// Connects to the first answering broker of a comma-separated list.
    pub fn connect(bootstrap_servers: &str) -> anyhow::Result<Cluster> {
        let mut last_error = anyhow!("no bootstrap server given");
        for addr in bootstrap_servers.split(',').map(str::trim) {
            match Connection::connect(addr) {
                Ok(bootstrap) => return Ok(Cluster::new(bootstrap)),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    fn new(bootstrap: Connection) -> Cluster {
        Cluster { bootstrap, connections: HashMap::new(), brokers: HashMap::new(), controller_id: None }
    }

    pub fn bootstrap(&mut self) -> &mut Connection {
        &mut self.bootstrap
    }

    /// Metadata for `topics`, or for all topics when `None`; also refreshes
    /// the broker list and the controller.
    pub fn metadata(&mut self, topics: Option<&[String]>) -> anyhow::Result<MetadataResponse> {
        let version = self.bootstrap.version(ApiKey::Metadata)?;
        let request = metadata_request(topics, version);
        let response = self.bootstrap.send_at(&request, version)?;
        KafkaError::check(response.error_code, None).context("Metadata")?;
        self.brokers = response.brokers.iter().map(|b| (b.node_id.0, broker(b))).collect();
        self.controller_id = Some(response.controller_id.0).filter(|id| *id >= 0);
        Ok(response)
    }

    /// The connection to broker `node_id`, opened on first use.
    pub fn node(&mut self, node_id: i32) -> anyhow::Result<&mut Connection> {
        let Some(broker) = self.brokers.get(&node_id) else {
            bail!("broker {node_id} is not in the cluster metadata");
        };
        let addr = broker.addr();
        if addr == self.bootstrap.addr() {
            return Ok(&mut self.bootstrap);
        }
        match self.connections.entry(node_id) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => {
                let connection =
                    Connection::connect(&addr).with_context(|| format!("connecting to broker {node_id}"))?;
                Ok(entry.insert(connection))
            }
        }
    }

    /// The brokers the last Metadata (or `add_broker`) named, by node id.
    pub fn brokers(&self) -> Vec<Broker> {
        let mut brokers: Vec<Broker> = self.brokers.values().cloned().collect();
        brokers.sort_by_key(|b| b.node_id);
        brokers
    }

    /// Makes a broker learned outside Metadata (a coordinator from
    /// FindCoordinator) reachable through `node`.
    pub fn add_broker(&mut self, broker: Broker) {
        let stale = self.brokers.get(&broker.node_id).is_some_and(|known| known.addr() != broker.addr());
        if stale {
            self.connections.remove(&broker.node_id);
        }
        self.brokers.insert(broker.node_id, broker);
    }

    /// The connection admin requests go to: the controller the metadata
    /// names, or the bootstrap broker when it names none we know.
    pub fn controller(&mut self) -> anyhow::Result<&mut Connection> {
        if self.controller_id.is_none() {
            self.metadata(Some(&[]))?;
        }
        match self.controller_id {
            Some(id) if self.brokers.contains_key(&id) => self.node(id),
            _ => Ok(&mut self.bootstrap),
        }
    }
}

fn broker(b: &MetadataResponseBroker) -> Broker {
    Broker { node_id: b.node_id.0, host: b.host.to_string(), port: b.port }
}

fn metadata_request(topics: Option<&[String]>, version: i16) -> MetadataRequest {
    let mut request = MetadataRequest::default();
    request.topics = match topics {
        // v0 has no null array: an empty one means all topics there.
        None if version == 0 => Some(Vec::new()),
        None => None,
        Some(names) => Some(names.iter().map(|n| metadata_topic(n)).collect()),
    };
    // Only v4 and later can say "do not create topics by asking for them".
    request.allow_auto_topic_creation = version < 4;
    request
}

fn metadata_topic(name: &str) -> MetadataRequestTopic {
    let mut topic = MetadataRequestTopic::default();
    topic.name = Some(topic_name(name));
    topic
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// ListOffsets for `partitions` (topic, index) at `timestamp` (-1 latest, -2 earliest).
pub fn list_offsets_request<'a>(
    partitions: impl IntoIterator<Item = &'a (String, i32)>,
    timestamp: i64,
) -> ListOffsetsRequest {
    let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for (name, index) in partitions {
        let mut partition = ListOffsetsPartition::default();
        partition.partition_index = *index;
        partition.timestamp = timestamp;
        by_topic.entry(name.as_str()).or_default().push(partition);
    }
    let mut request = ListOffsetsRequest::default();
    // -1: a consumer, not a follower replica.
    request.replica_id = (-1).into();
    request.timeout_ms = REQUEST_TIMEOUT_MS;
    request.topics = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            let mut topic = ListOffsetsTopic::default();
            topic.name = topic_name(name);
            topic.partitions = partitions;
            topic
        })
        .collect();
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
    use kafka_protocol::protocol::decode_request_header_from_buffer;

    #[test]
    fn error_names_cover_common_codes_and_fall_back() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(38), "INVALID_REPLICATION_FACTOR");
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(9999), "ERROR_9999");
    }

    #[test]
    fn kafka_error_displays_name_and_message() {
        let message = StrBytes::from_static_str("Topic 'a' already exists.");
        let error = KafkaError::check(36, Some(&message)).unwrap_err();
        assert_eq!(error.to_string(), "TOPIC_ALREADY_EXISTS: Topic 'a' already exists.");
        assert_eq!(KafkaError::check(3, None).unwrap_err().to_string(), "UNKNOWN_TOPIC_OR_PARTITION");
        assert!(KafkaError::check(0, None).is_ok());
    }

    fn create_request() -> CreateTopicsRequest {
        let mut topic = CreatableTopic::default();
        topic.name = topic_name("orders");
        topic.num_partitions = 3;
        topic.replication_factor = -1;
        let mut request = CreateTopicsRequest::default();
        request.topics = vec![topic];
        request.timeout_ms = REQUEST_TIMEOUT_MS;
        request
    }

    #[test]
    fn request_frame_round_trips() {
        for version in [2, 5, 7] {
            let mut frame = encode_request(&create_request(), version, 42).unwrap().freeze();
            let size = frame.get_i32() as usize;
            assert_eq!(size, frame.len());
            let header = decode_request_header_from_buffer(&mut frame).unwrap();
            assert_eq!(header.request_api_key, ApiKey::CreateTopics as i16);
            assert_eq!(header.request_api_version, version);
            assert_eq!(header.correlation_id, 42);
            assert_eq!(header.client_id.as_deref(), Some(CLIENT_ID));
            let body: CreateTopicsRequest = decode_body(frame, version).unwrap();
            assert_eq!(body, create_request());
        }
    }

    fn response_frame(correlation_id: i32, version: i16) -> Bytes {
        let mut header = ResponseHeader::default();
        header.correlation_id = correlation_id;
        let mut response = CreateTopicsResponse::default();
        response.throttle_time_ms = 7;
        let mut frame = BytesMut::new();
        let header_version = ApiKey::CreateTopics.response_header_version(version);
        header.encode(&mut frame, header_version).unwrap();
        response.encode(&mut frame, version).unwrap();
        frame.freeze()
    }

    #[test]
    fn response_frame_decodes_and_checks_correlation_id() {
        let body = decode_response_header(ApiKey::CreateTopics, 7, response_frame(5, 7), 5).unwrap();
        let response: CreateTopicsResponse = decode_body(body, 7).unwrap();
        assert_eq!(response.throttle_time_ms, 7);
        let mismatch = decode_response_header(ApiKey::CreateTopics, 7, response_frame(6, 7), 5);
        assert!(mismatch.is_err());
    }

    #[test]
    fn decode_body_rejects_trailing_bytes() {
        let mut frame = BytesMut::from(&response_frame(1, 4)[..]);
        frame.put_u8(0);
        let body = decode_response_header(ApiKey::CreateTopics, 4, frame.freeze(), 1).unwrap();
        assert!(decode_body::<CreateTopicsResponse>(body, 4).is_err());
    }

    #[test]
    fn read_frame_rejects_oversized_and_negative_sizes() {
        let oversized = ((RESPONSE_BYTES_MAX + 1) as i32).to_be_bytes();
        assert!(read_frame(&mut &oversized[..]).is_err());
        assert!(read_frame(&mut &(-1i32).to_be_bytes()[..]).is_err());
        let mut ok = vec![0, 0, 0, 2, 9, 8];
        assert_eq!(&read_frame(&mut &ok[..]).unwrap()[..], &[9, 8]);
        ok.truncate(5);
        assert!(read_frame(&mut &ok[..]).is_err());
    }

    #[test]
    fn metadata_request_encodes_at_every_version() {
        for version in 0..=13 {
            let all = metadata_request(None, version);
            all.compute_size(version).unwrap();
            let some = metadata_request(Some(&["a".to_string()]), version);
            some.encode(&mut BytesMut::new(), version).unwrap();
        }
    }

    /// A one-connection fake broker that refuses ApiVersions v3 the way an
    /// older Kafka does (error 35, v0 layout), then serves v2 and Metadata.
    fn fake_broker() -> (String, std::thread::JoinHandle<Vec<(i16, i16)>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            while let Ok(mut frame) = read_frame(&mut stream) {
                let header = decode_request_header_from_buffer(&mut frame).unwrap();
                let key = ApiKey::try_from(header.request_api_key).unwrap();
                seen.push((header.request_api_key, header.request_api_version));
                let (body, version) = fake_answer(key, header.request_api_version);
                let mut out = BytesMut::new();
                out.put_i32(header.correlation_id);
                if key.response_header_version(version) >= 1 {
                    out.put_u8(0); // no tagged fields
                }
                out.put_slice(&body);
                stream.write_all(&(out.len() as i32).to_be_bytes()).unwrap();
                stream.write_all(&out).unwrap();
            }
            seen
        });
        (addr, handle)
    }

    fn fake_answer(key: ApiKey, version: i16) -> (BytesMut, i16) {
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
        let mut body = BytesMut::new();
        match key {
            ApiKey::ApiVersions => {
                let mut response = ApiVersionsResponse::default();
                let api = |key: ApiKey, max: i16| {
                    let mut v = ApiVersion::default();
                    v.api_key = key as i16;
                    v.max_version = max;
                    v
                };
                response.api_keys = vec![api(ApiKey::ApiVersions, 2), api(ApiKey::Metadata, 12)];
                let version = if version > 2 {
                    response.error_code = ERROR_UNSUPPORTED_VERSION;
                    0
                } else {
                    version
                };
                response.encode(&mut body, version).unwrap();
                (body, version)
            }
            ApiKey::Metadata => {
                let mut response = MetadataResponse::default();
                let mut b = MetadataResponseBroker::default();
                b.node_id = 1.into();
                b.host = StrBytes::from_static_str("127.0.0.1");
                b.port = 1;
                response.brokers = vec![b];
                response.controller_id = 1.into();
                let mut topic = MetadataResponseTopic::default();
                topic.name = Some(topic_name("orders"));
                response.topics = vec![topic];
                response.encode(&mut body, version).unwrap();
                (body, version)
            }
            other => panic!("fake broker got {other:?}"),
        }
    }

    #[test]
    fn connection_falls_back_on_api_versions_and_negotiates() {
        let (addr, broker) = fake_broker();
        let mut cluster = Cluster::connect(&format!("127.0.0.1:1,{addr}")).unwrap();
        assert_eq!(cluster.bootstrap().version(ApiKey::Metadata).unwrap(), 12);
        assert!(cluster.bootstrap().version(ApiKey::CreateTopics).is_err());
        let metadata = cluster.metadata(None).unwrap();
        assert_eq!(metadata.topics[0].name, Some(topic_name("orders")));
        assert_eq!(cluster.brokers[&1].addr(), "127.0.0.1:1");
        drop(cluster);
        let seen = broker.join().unwrap();
        let api_versions = ApiKey::ApiVersions as i16;
        let metadata = ApiKey::Metadata as i16;
        assert_eq!(seen, [(api_versions, 3), (api_versions, 2), (metadata, 12)]);
    }
}
