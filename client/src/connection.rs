//! One blocking connection to one broker. It asks for the broker's API
//! versions once, right after connecting, and from then on sends each
//! request at the highest version both sides support.

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Request, StrBytes, VersionRange};

use crate::error::{ClientError, KafkaError};
use crate::frame::{self, api_key};

/// Highest ApiVersions version sent first. v3 carries the client's software
/// name; brokers that do not know it answer UNSUPPORTED_VERSION.
const API_VERSIONS_VERSION_MAX: i16 = 3;

/// Largest response frame accepted on a blocking connection. A bigger size
/// prefix means the peer is not a Kafka broker or the stream is out of step.
const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Who is connecting, and how long to wait for the broker.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The client id of every request header.
    pub client_id: StrBytes,
    /// The software name and version ApiVersions v3 reports (Kafka accepts
    /// only letters, digits, '-' and '.' in them).
    pub software_name: StrBytes,
    pub software_version: StrBytes,
    pub connect_timeout: Duration,
    /// Read and write timeout; `None` waits forever.
    pub io_timeout: Option<Duration>,
}

/// One TCP connection to one broker, with the API versions it supports.
pub struct Connection {
    addr: String,
    stream: TcpStream,
    options: ConnectOptions,
    correlation_id: i32,
    broker_versions: HashMap<i16, VersionRange>,
}

impl Connection {
    /// Connects to `addr` (host:port) and learns the broker's API versions.
    pub fn connect(addr: &str, options: &ConnectOptions) -> Result<Connection, ClientError> {
        let stream = open_stream(addr, options.connect_timeout)?;
        let io = |source| ClientError::Io { action: "configuring the socket to", addr: addr.to_string(), source };
        stream.set_read_timeout(options.io_timeout).map_err(io)?;
        stream.set_write_timeout(options.io_timeout).map_err(io)?;
        let mut connection = Connection {
            addr: addr.to_string(),
            stream,
            options: options.clone(),
            correlation_id: 0,
            broker_versions: HashMap::new(),
        };
        connection.negotiate_versions()?;
        Ok(connection)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The version a request of `key` is sent at: the highest one both
    /// kafka-protocol and the broker support.
    pub fn version(&self, key: ApiKey) -> Result<i16, ClientError> {
        self.version_within(key, key.valid_versions())
    }

    /// The highest version of `key` in `ours` the broker supports.
    pub fn version_within(&self, key: ApiKey, ours: VersionRange) -> Result<i16, ClientError> {
        let Some(theirs) = self.broker_versions.get(&(key as i16)) else {
            return Err(ClientError::UnsupportedApi { addr: self.addr.clone(), key });
        };
        let common = ours.intersect(theirs);
        if common.is_empty() {
            return Err(ClientError::NoCommonVersion { addr: self.addr.clone(), key, theirs: *theirs, ours });
        }
        Ok(common.max)
    }

    /// Sends `request` at the negotiated version and waits for its response.
    pub fn send<Req: Request>(&mut self, request: Req) -> Result<Req::Response, ClientError> {
        let version = self.version(api_key::<Req>()?)?;
        self.send_at(&request, version)
    }

    /// Sends `request` at `version` and waits for its response.
    pub fn send_at<Req: Request>(&mut self, request: &Req, version: i16) -> Result<Req::Response, ClientError> {
        let key = api_key::<Req>()?;
        let body = self.exchange(request, version)?;
        frame::decode_body(key, version, body)
    }

    /// Writes one request and reads its response; returns the body after the
    /// response header.
    fn exchange<Req: Request>(&mut self, request: &Req, version: i16) -> Result<Bytes, ClientError> {
        let key = api_key::<Req>()?;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let request = frame::encode_request(request, version, self.correlation_id, &self.options.client_id)?;
        let addr = &self.addr;
        let io = |action| move |source| ClientError::Io { action, addr: addr.clone(), source };
        self.stream.write_all(&request).map_err(io("sending a request to"))?;
        let response =
            frame::read_frame(&mut self.stream, RESPONSE_BYTES_MAX).map_err(io("reading a response from"))?;
        frame::decode_response_header(key, version, self.correlation_id, response)
    }

    /// Asks for ApiVersions at v3 and, as Kafka clients do, falls back to the
    /// version the broker says it supports when it answers UNSUPPORTED_VERSION.
    fn negotiate_versions(&mut self) -> Result<(), ClientError> {
        let mut response = self.api_versions(API_VERSIONS_VERSION_MAX)?;
        if response.error_code == kafka_protocol::ResponseError::UnsupportedVersion.code() {
            let retry = fallback_api_versions_version(&response);
            response = self.api_versions(retry)?;
        }
        KafkaError::check(response.error_code, None)
            .map_err(|source| ClientError::Kafka { what: format!("ApiVersions from {}", self.addr), source })?;
        self.broker_versions = response
            .api_keys
            .iter()
            .map(|api| (api.api_key, VersionRange { min: api.min_version, max: api.max_version }))
            .collect();
        Ok(())
    }

    fn api_versions(&mut self, version: i16) -> Result<ApiVersionsResponse, ClientError> {
        let mut request = ApiVersionsRequest::default();
        if version >= 3 {
            request.client_software_name = self.options.software_name.clone();
            request.client_software_version = self.options.software_version.clone();
        }
        let body = self.exchange(&request, version)?;
        // A broker that does not support `version` answers in the v0 layout.
        frame::decode_body(ApiKey::ApiVersions, version, body.clone())
            .or_else(|_| frame::decode_body(ApiKey::ApiVersions, 0, body))
    }
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

/// Connects to the first address `addr` resolves to that answers.
pub(crate) fn open_stream(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let io = |action| move |source| ClientError::Io { action, addr: addr.to_string(), source };
    let mut last_error = None;
    for socket_addr in addr.to_socket_addrs().map_err(io("resolving"))? {
        match TcpStream::connect_timeout(&socket_addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(io("configuring the socket to"))?;
                return Ok(stream);
            }
            Err(error) => last_error = Some(error),
        }
    }
    match last_error {
        Some(error) => Err(io("connecting to")(error)),
        None => Err(ClientError::NoAddress { addr: addr.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponseTopic};
    use kafka_protocol::messages::MetadataResponse;
    use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable};
    use kafka_protocol::ResponseError;

    use super::*;
    use crate::requests::topic_name;
    use crate::Cluster;

    fn options() -> ConnectOptions {
        ConnectOptions {
            client_id: StrBytes::from_static_str("test"),
            software_name: StrBytes::from_static_str("test"),
            software_version: StrBytes::from_static_str("1"),
            connect_timeout: Duration::from_secs(5),
            io_timeout: Some(Duration::from_secs(5)),
        }
    }

    /// A one-connection fake broker that refuses ApiVersions v3 the way an
    /// older Kafka does (error 35, v0 layout), then serves v2 and Metadata.
    /// Returns its address and, when the client hangs up, the (key, version)
    /// of every request it got.
    fn old_broker() -> (String, JoinHandle<Vec<(i16, i16)>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            while let Ok(mut frame) = frame::read_frame(&mut stream, 1 << 20) {
                let header = decode_request_header_from_buffer(&mut frame).unwrap();
                let key = ApiKey::try_from(header.request_api_key).unwrap();
                seen.push((header.request_api_key, header.request_api_version));
                let (body, version) = old_answer(key, header.request_api_version);
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

    fn old_answer(key: ApiKey, version: i16) -> (BytesMut, i16) {
        let mut body = BytesMut::new();
        match key {
            ApiKey::ApiVersions => {
                let api = |key: ApiKey, max: i16| ApiVersion::default().with_api_key(key as i16).with_max_version(max);
                let mut response = ApiVersionsResponse::default()
                    .with_api_keys(vec![api(ApiKey::ApiVersions, 2), api(ApiKey::Metadata, 12)]);
                let version = if version > 2 {
                    response.error_code = ResponseError::UnsupportedVersion.code();
                    0
                } else {
                    version
                };
                response.encode(&mut body, version).unwrap();
                (body, version)
            }
            ApiKey::Metadata => {
                let broker = MetadataResponseBroker::default()
                    .with_node_id(1.into())
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(1);
                let topic = MetadataResponseTopic::default().with_name(Some(topic_name("orders")));
                let response = MetadataResponse::default()
                    .with_brokers(vec![broker])
                    .with_controller_id(1.into())
                    .with_topics(vec![topic]);
                response.encode(&mut body, version).unwrap();
                (body, version)
            }
            other => panic!("fake broker got {other:?}"),
        }
    }

    #[test]
    fn connection_falls_back_on_api_versions_and_negotiates() {
        let (addr, broker) = old_broker();
        let mut cluster = Cluster::connect(&format!("127.0.0.1:1,{addr}"), &options()).unwrap();
        assert_eq!(cluster.bootstrap().version(ApiKey::Metadata).unwrap(), 12);
        assert!(matches!(
            cluster.bootstrap().version(ApiKey::CreateTopics),
            Err(ClientError::UnsupportedApi { key: ApiKey::CreateTopics, .. })
        ));
        let capped = cluster.bootstrap().version_within(ApiKey::Metadata, VersionRange { min: 1, max: 9 });
        assert_eq!(capped.unwrap(), 9);
        let above = cluster.bootstrap().version_within(ApiKey::Metadata, VersionRange { min: 13, max: 13 });
        assert!(matches!(above, Err(ClientError::NoCommonVersion { .. })));
        let metadata = cluster.metadata(None).unwrap();
        assert_eq!(metadata.topics[0].name, Some(topic_name("orders")));
        assert_eq!(cluster.brokers()[0].addr(), "127.0.0.1:1");
        drop(cluster);
        let seen = broker.join().unwrap();
        let api_versions = ApiKey::ApiVersions as i16;
        let metadata = ApiKey::Metadata as i16;
        assert_eq!(seen, [(api_versions, 3), (api_versions, 2), (metadata, 12)]);
    }
}
