//! The one place where internal errors become Kafka error codes.

use crate::config::ConfigError;
use crate::controller::ControllerError;
use crate::group::GroupError;
use crate::metadata::MetadataError;
use crate::model::batch::BatchError;
use crate::model::compression::CompressionError;
use crate::model::recompress::RecompressError;
use crate::model::validate::ValidateError;
use crate::partition::PartitionError;
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
    NotEnoughReplicas = 19,
    NotEnoughReplicasAfterAppend = 20,
    RequestTimedOut = 7,
    MessageTooLarge = 10,
    OffsetMetadataTooLarge = 12,
    CoordinatorLoadInProgress = 14,
    CoordinatorNotAvailable = 15,
    NotCoordinator = 16,
    InvalidTopicException = 17,
    IllegalGeneration = 22,
    InconsistentGroupProtocol = 23,
    InvalidGroupId = 24,
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    RebalanceInProgress = 27,
    InvalidCommitOffsetSize = 28,
    InvalidRequiredAcks = 21,
    InvalidTimestamp = 32,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidReplicaAssignment = 39,
    InvalidConfig = 40,
    NotController = 41,
    InvalidRequest = 42,
    PolicyViolation = 44,
    OutOfOrderSequenceNumber = 45,
    InvalidProducerEpoch = 47,
    KafkaStorageError = 56,
    FencedLeaderEpoch = 74,
    UnknownLeaderEpoch = 75,
    StaleBrokerEpoch = 77,
    OffsetNotAvailable = 78,
    InvalidUpdateVersion = 95,
    BrokerIdNotRegistered = 102,
    NonEmptyGroup = 68,
    GroupIdNotFound = 69,
    MemberIdRequired = 79,
    GroupMaxSizeReached = 81,
    FencedInstanceId = 82,
    GroupSubscribedToTopic = 86,
    InvalidRecord = 87,
    NoReassignmentInProgress = 85,
    UnsupportedEndpointType = 115,
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

/// What Kafka's leader answers when it refuses an append or a read.
impl From<&PartitionError> for ErrorCode {
    fn from(e: &PartitionError) -> Self {
        match e {
            PartitionError::InternalTopic { .. } => ErrorCode::InvalidTopicException,
            PartitionError::NoBatches => ErrorCode::CorruptMessage,
            PartitionError::Batch(e) => e.into(),
            PartitionError::Invalid(e) => e.into(),
            PartitionError::Recompress(e) => e.into(),
            PartitionError::KeylessRecordInCompactedTopic => ErrorCode::InvalidRecord,
            PartitionError::TimestampTooLate { .. } | PartitionError::TimestampTooEarly { .. } => {
                ErrorCode::InvalidTimestamp
            }
            PartitionError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
            // What a Kafka leader whose log directory failed answers every
            // batch behind the one that failed: retriable, in order.
            PartitionError::SequenceAheadOfRollback { .. } => ErrorCode::KafkaStorageError,
            PartitionError::FencedProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
            PartitionError::Storage(e) => e.into(),
            PartitionError::CheckpointIo { .. } | PartitionError::CheckpointCorrupt { .. } => {
                ErrorCode::KafkaStorageError
            }
            PartitionError::NotLeader
            | PartitionError::NotAReplica { .. }
            | PartitionError::StaleBrokerEpoch { .. } => ErrorCode::NotLeaderOrFollower,
            PartitionError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
            PartitionError::UnknownLeaderEpoch { .. } => ErrorCode::UnknownLeaderEpoch,
            PartitionError::HighWatermarkBehindEpochStart { .. } => ErrorCode::OffsetNotAvailable,
            PartitionError::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
            PartitionError::NotEnoughReplicasAfterAppend { .. } => ErrorCode::NotEnoughReplicasAfterAppend,
            PartitionError::ReplicationTimedOut { .. } => ErrorCode::RequestTimedOut,
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
            MetadataError::InvalidAssignment { .. } => ErrorCode::InvalidReplicaAssignment,
            MetadataError::TooManyPartitions { .. } => ErrorCode::PolicyViolation,
            MetadataError::Io { .. }
            | MetadataError::Corrupt { .. }
            | MetadataError::CorruptFile { .. }
            | MetadataError::NodeMismatch { .. } => ErrorCode::KafkaStorageError,
            // Kafka's controller: UnknownServerException("Exhausted all producerIds ...").
            MetadataError::ProducerIdsExhausted => ErrorCode::UnknownServerError,
            MetadataError::UnknownNode(_) => ErrorCode::BrokerIdNotRegistered,
            MetadataError::StaleNodeEpoch { .. } => ErrorCode::StaleBrokerEpoch,
            MetadataError::StalePartitionEpoch { .. } => ErrorCode::InvalidUpdateVersion,
            MetadataError::ReplicationFactor { .. } | MetadataError::ReplicationFactorChange { .. } => {
                ErrorCode::InvalidReplicationFactor
            }
            MetadataError::UnknownBroker { .. } | MetadataError::InvalidReassignment { .. } => {
                ErrorCode::InvalidReplicaAssignment
            }
            MetadataError::NoReassignmentInProgress { .. } => ErrorCode::NoReassignmentInProgress,
            MetadataError::CorruptImage(_) => ErrorCode::KafkaStorageError,
            // Internal races the controller's own callers retry.
            MetadataError::ClusterIdSet(_) | MetadataError::StaleProducerIdBlock { .. } => {
                ErrorCode::UnknownServerError
            }
        }
    }
}

impl From<&ControlError> for ErrorCode {
    fn from(e: &ControlError) -> Self {
        match e {
            ControlError::Metadata(m) => m.into(),
            ControlError::Controller(c) => c.into(),
            ControlError::ShuttingDown => ErrorCode::RequestTimedOut,
        }
    }
}

/// The controller quorum's refusals, as Kafka's controller answers them:
/// no leader known is NOT_CONTROLLER (clients look again and retry), a
/// change not committed in time REQUEST_TIMED_OUT.
impl From<&ControllerError> for ErrorCode {
    fn from(e: &ControllerError) -> Self {
        match e {
            ControllerError::Metadata(m) => m.into(),
            ControllerError::NotController => ErrorCode::NotController,
            ControllerError::Timeout(_) | ControllerError::Busy | ControllerError::Stopped => {
                ErrorCode::RequestTimedOut
            }
            ControllerError::Storage { .. } | ControllerError::Listen { .. } | ControllerError::Raft(_) => {
                ErrorCode::UnknownServerError
            }
        }
    }
}

impl From<&BatchError> for ErrorCode {
    fn from(_: &BatchError) -> Self {
        ErrorCode::CorruptMessage
    }
}

/// As Kafka answers a client's append: a batch that fails its CRC or cannot
/// be decompressed is CORRUPT_MESSAGE (Kafka's CorruptRecordException), a
/// malformed record or a forbidden batch INVALID_RECORD (its
/// InvalidRecordException), and a batch too large, before or after
/// decompression, MESSAGE_TOO_LARGE (which the Java producer answers by
/// splitting the batch).
impl From<&ValidateError> for ErrorCode {
    fn from(e: &ValidateError) -> Self {
        match e {
            ValidateError::Batch(e) => e.into(),
            ValidateError::TooLarge { .. } => ErrorCode::MessageTooLarge,
            ValidateError::NoRecords | ValidateError::ControlBatch | ValidateError::Record(_) => {
                ErrorCode::InvalidRecord
            }
            ValidateError::Compression(e) => e.into(),
        }
    }
}

impl From<&CompressionError> for ErrorCode {
    fn from(e: &CompressionError) -> Self {
        match e {
            CompressionError::TooLarge { .. } => ErrorCode::MessageTooLarge,
            _ => ErrorCode::CorruptMessage,
        }
    }
}

impl From<&RecompressError> for ErrorCode {
    fn from(e: &RecompressError) -> Self {
        match e {
            RecompressError::InvalidBatch(e) => e.into(),
            RecompressError::Compression(e) => e.into(),
            RecompressError::Record(_) => ErrorCode::InvalidRecord,
            RecompressError::TooLarge(_) => ErrorCode::MessageTooLarge,
        }
    }
}

impl From<&ConfigError> for ErrorCode {
    fn from(_: &ConfigError) -> Self {
        ErrorCode::InvalidConfig
    }
}

impl From<&GroupError> for ErrorCode {
    fn from(e: &GroupError) -> Self {
        match e {
            GroupError::CoordinatorLoadInProgress => ErrorCode::CoordinatorLoadInProgress,
            GroupError::CoordinatorNotAvailable => ErrorCode::CoordinatorNotAvailable,
            GroupError::NotCoordinator => ErrorCode::NotCoordinator,
            GroupError::OffsetMetadataTooLarge { .. } => ErrorCode::OffsetMetadataTooLarge,
            GroupError::IllegalGeneration { .. } => ErrorCode::IllegalGeneration,
            GroupError::InconsistentGroupProtocol => ErrorCode::InconsistentGroupProtocol,
            GroupError::InvalidGroupId | GroupError::GroupIdTooLong { .. } => ErrorCode::InvalidGroupId,
            GroupError::CommitTooLarge { .. } => ErrorCode::InvalidCommitOffsetSize,
            GroupError::UnknownMemberId { .. } => ErrorCode::UnknownMemberId,
            GroupError::InvalidSessionTimeout { .. } => ErrorCode::InvalidSessionTimeout,
            GroupError::RebalanceInProgress => ErrorCode::RebalanceInProgress,
            GroupError::NonEmptyGroup => ErrorCode::NonEmptyGroup,
            GroupError::GroupIdNotFound { .. } => ErrorCode::GroupIdNotFound,
            GroupError::MemberIdRequired { .. } => ErrorCode::MemberIdRequired,
            GroupError::GroupMaxSizeReached => ErrorCode::GroupMaxSizeReached,
            GroupError::FencedInstanceId { .. } => ErrorCode::FencedInstanceId,
            GroupError::GroupSubscribedToTopic { .. } => ErrorCode::GroupSubscribedToTopic,
            GroupError::UnknownServerError | GroupError::PendingMemberWithInstanceId { .. } => {
                ErrorCode::UnknownServerError
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_refusals_get_kafkas_codes() {
        let code = |e: ControllerError| ErrorCode::from(&ControlError::Controller(e)).code();
        assert_eq!(code(ControllerError::NotController), 41, "NOT_CONTROLLER: clients look again and retry");
        assert_eq!(code(ControllerError::Timeout(10_000)), 7, "REQUEST_TIMED_OUT without a quorum");
        let too_few = MetadataError::ReplicationFactor { asked: 3, available: 2 };
        assert_eq!(code(ControllerError::Metadata(too_few)), 38, "INVALID_REPLICATION_FACTOR");
        assert_eq!(code(ControllerError::Metadata(MetadataError::UnknownBroker { partition: 0, broker: 7 })), 39);
    }

    #[test]
    fn partition_refusals_get_kafkas_codes() {
        let code = |e: PartitionError| ErrorCode::from(&e);
        assert_eq!(code(PartitionError::InternalTopic { topic: "__consumer_offsets".into() }).code(), 17);
        assert_eq!(code(PartitionError::KeylessRecordInCompactedTopic).code(), 87);
        assert_eq!(code(PartitionError::TimestampTooLate { timestamp: 2, bound_ms: 1, now_ms: 0 }).code(), 32);
        assert_eq!(code(PartitionError::OutOfOrderSequence { expected: 3, got: 5 }).code(), 45);
        assert_eq!(
            code(PartitionError::SequenceAheadOfRollback { expected: 3, got: 5 }).code(),
            56,
            "retried in order"
        );
        assert_eq!(code(PartitionError::FencedProducerEpoch { epoch: 0 }).code(), 47);
        assert_eq!(code(PartitionError::NoBatches).code(), 2);
        assert_eq!(code(PartitionError::Storage(StorageError::Closed)).code(), 56);
    }

    #[test]
    fn group_errors_get_kafkas_codes() {
        assert_eq!(ErrorCode::from(&GroupError::IllegalGeneration { expected: 1, got: 0 }).code(), 22);
        assert_eq!(ErrorCode::from(&GroupError::FencedInstanceId { instance_id: "i".into() }).code(), 82);
        assert_eq!(ErrorCode::from(&GroupError::MemberIdRequired { member_id: "m".into() }).code(), 79);
        assert_eq!(ErrorCode::from(&GroupError::GroupSubscribedToTopic { topic: "t".into() }).code(), 86);
        assert_eq!(ErrorCode::from(&GroupError::CoordinatorLoadInProgress).code(), 14);
    }
}
