//! The client's errors, and Kafka's names for the codes brokers answer with.

use std::fmt;
use std::io;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

/// kafka-protocol's encoders and decoders fail with `anyhow::Error`, which is
/// not a `std::error::Error`; this is what it converts into.
pub type CodecError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Wraps kafka-protocol's encode errors.
pub(crate) fn encode_error(key: ApiKey, version: i16) -> impl Fn(anyhow::Error) -> ClientError {
    move |source| ClientError::Encode { key, version, source: source.into() }
}

/// Wraps kafka-protocol's decode errors of `part` ("header" or "response").
pub(crate) fn decode_error(key: ApiKey, version: i16, part: &'static str) -> impl Fn(anyhow::Error) -> ClientError {
    move |source| ClientError::Decode { key, version, part, source: source.into() }
}

/// Everything that can go wrong between this client and a broker.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{action} {addr}: {source}")]
    Io { action: &'static str, addr: String, source: io::Error },
    #[error("{addr} resolved to no address")]
    NoAddress { addr: String },
    #[error("connection closed by {addr}")]
    Closed { addr: String },
    #[error("encoding {key:?} v{version}: {source}")]
    Encode { key: ApiKey, version: i16, source: CodecError },
    #[error("decoding {key:?} v{version} {part}: {source}")]
    Decode { key: ApiKey, version: i16, part: &'static str, source: CodecError },
    #[error("{remaining} bytes left over after the {key:?} v{version} response")]
    TrailingBytes { key: ApiKey, version: i16, remaining: usize },
    #[error("{key:?} response has correlation id {got}, expected {expected}")]
    CorrelationId { key: ApiKey, got: i32, expected: i32 },
    #[error("frame size {size} is out of range (at most {max} bytes)")]
    FrameSize { size: i32, max: usize },
    #[error("unknown API key {key}")]
    UnknownApiKey { key: i16 },
    #[error("broker {addr} does not support {key:?}")]
    UnsupportedApi { addr: String, key: ApiKey },
    #[error("UNSUPPORTED_VERSION: broker {addr} supports {key:?} versions {theirs}, this client {ours}")]
    NoCommonVersion { addr: String, key: ApiKey, theirs: VersionRange, ours: VersionRange },
    #[error("broker {node_id} is not in the cluster metadata")]
    UnknownBroker { node_id: i32 },
    #[error("{what}: {source}")]
    Kafka { what: String, source: KafkaError },
}

/// Kafka's name for an error code (`TOPIC_ALREADY_EXISTS`), from
/// kafka-protocol's `ResponseError`; `ERROR_<code>` for a code it does not know.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => format!("ERROR_{code}"),
        // Debug prints the variant (`TopicAlreadyExists`), Kafka's name in camel case.
        Some(error) => screaming_snake(&format!("{error:?}")),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut name = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
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
        if code == 0 {
            return Ok(());
        }
        let message = message.map(|m| m.to_string()).filter(|m| !m.is_empty());
        Err(KafkaError { code, message })
    }

    /// Whether this is `error`, e.g. `ResponseError::GroupIdNotFound`.
    pub fn is(&self, error: ResponseError) -> bool {
        self.code == error.code()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas_and_fall_back() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(38), "INVALID_REPLICATION_FACTOR");
        assert_eq!(error_name(69), "GROUP_ID_NOT_FOUND");
        assert_eq!(error_name(9999), "ERROR_9999");
    }

    /// The names the CLI and the load generator printed from their own
    /// tables before kafka-protocol's: scripts may match on them.
    #[test]
    fn error_names_match_the_tables_they_replace() {
        let known = [
            (1, "OFFSET_OUT_OF_RANGE"),
            (2, "CORRUPT_MESSAGE"),
            (3, "UNKNOWN_TOPIC_OR_PARTITION"),
            (4, "INVALID_FETCH_SIZE"),
            (5, "LEADER_NOT_AVAILABLE"),
            (7, "REQUEST_TIMED_OUT"),
            (8, "BROKER_NOT_AVAILABLE"),
            (9, "REPLICA_NOT_AVAILABLE"),
            (10, "MESSAGE_TOO_LARGE"),
            (12, "OFFSET_METADATA_TOO_LARGE"),
            (13, "NETWORK_EXCEPTION"),
            (14, "COORDINATOR_LOAD_IN_PROGRESS"),
            (15, "COORDINATOR_NOT_AVAILABLE"),
            (16, "NOT_COORDINATOR"),
            (18, "RECORD_LIST_TOO_LARGE"),
            (19, "NOT_ENOUGH_REPLICAS"),
            (20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND"),
            (21, "INVALID_REQUIRED_ACKS"),
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
            (37, "INVALID_PARTITIONS"),
            (39, "INVALID_REPLICA_ASSIGNMENT"),
            (40, "INVALID_CONFIG"),
            (41, "NOT_CONTROLLER"),
            (42, "INVALID_REQUEST"),
            (43, "UNSUPPORTED_FOR_MESSAGE_FORMAT"),
            (44, "POLICY_VIOLATION"),
            (56, "KAFKA_STORAGE_ERROR"),
            (58, "SASL_AUTHENTICATION_FAILED"),
            (68, "NON_EMPTY_GROUP"),
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
        for (code, name) in known {
            assert_eq!(error_name(code), name, "code {code}");
        }
    }

    #[test]
    fn kafka_error_displays_name_and_message() {
        let message = StrBytes::from_static_str("Topic 'a' already exists.");
        let error = KafkaError::check(36, Some(&message)).unwrap_err();
        assert_eq!(error.to_string(), "TOPIC_ALREADY_EXISTS: Topic 'a' already exists.");
        assert!(error.is(ResponseError::TopicAlreadyExists));
        assert_eq!(KafkaError::check(3, None).unwrap_err().to_string(), "UNKNOWN_TOPIC_OR_PARTITION");
        assert!(KafkaError::check(0, None).is_ok());
    }
}
