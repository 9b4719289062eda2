//! The one place where internal errors become Kafka error codes.

use crate::config::ConfigError;
use crate::metadata::MetadataError;
use crate::model::batch::BatchError;
use crate::shard::ControlError;
use crate::storage::StorageError;

/// Kafka protocol error codes that corelog answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub enum ErrorCode {
    UnknownServerError = -1,
    None = 0,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    NotLeaderOrFollower = 6,
    RequestTimedOut = 7,
    MessageTooLarge = 10,
    InvalidTopicException = 17,
    InvalidRequiredAcks = 21,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidReplicaAssignment = 39,
    InvalidConfig = 40,
    InvalidRequest = 42,
    OutOfOrderSequenceNumber = 45,
    InvalidProducerEpoch = 47,
    KafkaStorageError = 56,
    UnknownTopicId = 100,
}

impl ErrorCode {
    pub fn code(self) -> i16 {
        self as i16
    }
}

impl From<&StorageError> for ErrorCode {
    fn from(e: &StorageError) -> Self {
        match e {
            StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            _ => ErrorCode::KafkaStorageError,
        }
    }
}

impl From<&MetadataError> for ErrorCode {
    fn from(e: &MetadataError) -> Self {
        match e {
            MetadataError::TopicExists(_) => ErrorCode::TopicAlreadyExists,
            MetadataError::UnknownTopic(_) => ErrorCode::UnknownTopicOrPartition,
            MetadataError::InvalidTopicName { .. } => ErrorCode::InvalidTopicException,
            MetadataError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
            MetadataError::Io { .. } | MetadataError::Corrupt { .. } => ErrorCode::KafkaStorageError,
        }
    }
}

impl From<&ControlError> for ErrorCode {
    fn from(e: &ControlError) -> Self {
        match e {
            ControlError::Metadata(m) => m.into(),
            ControlError::ShuttingDown => ErrorCode::RequestTimedOut,
        }
    }
}

impl From<&BatchError> for ErrorCode {
    fn from(_: &BatchError) -> Self {
        ErrorCode::CorruptMessage
    }
}

impl From<&ConfigError> for ErrorCode {
    fn from(_: &ConfigError) -> Self {
        ErrorCode::InvalidConfig
    }
}
