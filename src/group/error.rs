//! The errors a group coordinator answers with. Each variant names the Kafka
//! error it becomes; only `api` turns them into wire codes.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GroupError {
    /// COORDINATOR_NOT_AVAILABLE (15): the coordinator is loading or gone;
    /// clients look it up again. Also what a dropped waiter becomes.
    #[error("the group coordinator is not available")]
    CoordinatorNotAvailable,
    /// COORDINATOR_LOAD_IN_PROGRESS (14): this shard has just come to lead
    /// the group's offsets partition and is replaying it; clients retry.
    #[error("the group coordinator is loading the group's offsets")]
    CoordinatorLoadInProgress,
    /// NOT_COORDINATOR (16): this shard does not own the group. Raised by the
    /// shard's routing, and to the waiting members of a group unloaded when
    /// its offsets partition moved away.
    #[error("this broker is not the coordinator of the group")]
    NotCoordinator,
    /// OFFSET_METADATA_TOO_LARGE (12): a commit's metadata string is longer
    /// than `offset_metadata_bytes_max`.
    #[error("offset metadata of {bytes} bytes exceeds {bytes_max}")]
    OffsetMetadataTooLarge { bytes: usize, bytes_max: usize },
    /// ILLEGAL_GENERATION (22): the request names another generation.
    #[error("generation {got} is not the group's generation {expected}")]
    IllegalGeneration { expected: i32, got: i32 },
    /// INCONSISTENT_GROUP_PROTOCOL (23): the protocol type or protocols do not
    /// fit the group's.
    #[error("the member's protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    /// INVALID_GROUP_ID (24): empty group id on a group-management request.
    #[error("the group id is empty")]
    InvalidGroupId,
    /// INVALID_GROUP_ID (24) too: a group id longer than the offsets topic can
    /// store (its keys hold it as an i16-length string, as Kafka's do).
    #[error("the group id is {bytes} bytes long; at most {bytes_max} can be stored")]
    GroupIdTooLong { bytes: usize, bytes_max: usize },
    /// INVALID_COMMIT_OFFSET_SIZE (28): the commit's records would make a
    /// batch larger than the offsets topic accepts (message.max.bytes), as
    /// Kafka answers when its offsets append is too large.
    #[error("the commit's records take {bytes} bytes; the offsets topic accepts batches of {bytes_max}")]
    CommitTooLarge { bytes: usize, bytes_max: usize },
    /// UNKNOWN_MEMBER_ID (25): the member (or the group) is not known.
    #[error("unknown member id {member_id:?}")]
    UnknownMemberId { member_id: String },
    /// INVALID_SESSION_TIMEOUT (26): outside group.min/max.session.timeout.ms.
    #[error("session timeout {session_timeout_ms} ms is outside [{min_ms}, {max_ms}]")]
    InvalidSessionTimeout { session_timeout_ms: i32, min_ms: i32, max_ms: i32 },
    /// REBALANCE_IN_PROGRESS (27): the member must rejoin.
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// NON_EMPTY_GROUP (68): the group still has members.
    #[error("the group is not empty")]
    NonEmptyGroup,
    /// GROUP_ID_NOT_FOUND (69): no such group.
    #[error("group {group_id:?} does not exist")]
    GroupIdNotFound { group_id: String },
    /// MEMBER_ID_REQUIRED (79): the first join of a v4+ client; the member id
    /// goes back in the JoinGroup response and the client rejoins with it.
    #[error("a member id is required; rejoin with {member_id:?}")]
    MemberIdRequired { member_id: String },
    /// GROUP_MAX_SIZE_REACHED (81): group.max.size members already.
    #[error("the group has reached its maximum size")]
    GroupMaxSizeReached,
    /// FENCED_INSTANCE_ID (82): another member now holds this group.instance.id.
    #[error("group instance id {instance_id:?} is held by another member")]
    FencedInstanceId { instance_id: String },
    /// GROUP_SUBSCRIBED_TO_TOPIC (86): OffsetDelete of a topic the group's
    /// members consume.
    #[error("the group's members subscribe to topic {topic:?}")]
    GroupSubscribedToTopic { topic: String },
    /// UNKNOWN_SERVER_ERROR (-1), as Kafka answers (its IllegalStateException):
    /// a join by a member id handed out with MEMBER_ID_REQUIRED that names a
    /// group.instance.id. Only dynamic members are asked for a member id; a
    /// static member joins with its instance id and no member id.
    #[error("member id {member_id:?} was handed out to a dynamic member; a static member joins without one")]
    PendingMemberWithInstanceId { member_id: String },
    /// UNKNOWN_SERVER_ERROR (-1).
    #[error("unknown server error")]
    UnknownServerError,
}

impl GroupError {
    pub(crate) fn unknown_member(member_id: &str) -> Self {
        GroupError::UnknownMemberId { member_id: member_id.to_string() }
    }
}
