//! The coordinator's commands and answers: plain domain structs, filled by
//! `api` from whichever wire version the client spoke.

use bytes::Bytes;
use tokio::sync::oneshot;

use super::GroupError;

/// A group's state, with Kafka's names (ListGroups and DescribeGroups show them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    Stable,
    /// Deleted. Deleted groups leave the coordinator at once, so this is only
    /// reported for groups that do not exist.
    Dead,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Parses a ListGroups states filter entry; case-insensitive as Kafka's.
    pub fn parse(name: &str) -> Option<GroupState> {
        let all = [Self::Empty, Self::PreparingRebalance, Self::CompletingRebalance, Self::Stable, Self::Dead];
        all.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

/// One protocol a joining member supports (e.g. "range", "cooperative-sticky"),
/// in the member's order of preference, with its opaque subscription metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A JoinGroup request.
#[derive(Debug, Clone)]
pub struct JoinGroup {
    pub group_id: String,
    /// Empty on a member's first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    /// JoinGroup v0 has none: `api` passes the session timeout, as Kafka does.
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a first join is answered MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader can be told to skip assignment.
    pub supports_skip_assignment: bool,
}

/// A member as the leader sees it in its join response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A successful JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    /// The leader must not compute an assignment (static leader rejoin, v9+).
    pub skip_assignment: bool,
    /// Every member's metadata for the chosen protocol, for the leader only.
    pub members: Vec<JoinedMember>,
}

/// A SyncGroup request; the leader's carries the assignment.
#[derive(Debug, Clone)]
pub struct SyncGroup {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// SyncGroup v5+; checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// (member id, assignment bytes); empty for followers.
    pub assignments: Vec<(String, Bytes)>,
}

/// A successful SyncGroup answer: the member's assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One member of a (batch) LeaveGroup: by member id, or by instance id with
/// an empty member id (administrative removal of a static member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LeaveGroup {
    pub group_id: String,
    pub members: Vec<LeavingMember>,
}

/// The per-member answer of a LeaveGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberLeave {
    pub member: LeavingMember,
    pub result: Result<(), GroupError>,
}

/// A committed offset, as OffsetCommit stores it and OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

impl OffsetAndMetadata {
    /// What OffsetFetch answers for a partition without a committed offset.
    pub fn unknown() -> Self {
        OffsetAndMetadata { offset: -1, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: -1 }
    }
}

/// A ListGroups entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// A DescribeGroups member. Metadata and assignment are empty unless the
/// group is Stable, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A DescribeGroups entry. An unknown group is described as Dead with no
/// members, as Kafka does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol; empty unless Stable.
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// Offsets and groups an expiry pass (or a topic deletion) removed; the shard
/// writes a tombstone for each removed offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovedOffsets {
    pub offsets: Vec<(String, crate::model::TopicPartition)>,
    pub groups: Vec<String>,
}

/// What an OffsetDelete did: one outcome per partition asked for, in the
/// request's order, and the partitions whose offsets went (each once), for
/// the shard's tombstones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedOffsets {
    pub outcomes: Vec<Result<(), GroupError>>,
    pub removed: Vec<crate::model::TopicPartition>,
}

/// The answer to a request that may have to wait for other members.
#[derive(Debug)]
pub enum Reply<T> {
    Ready(Result<T, GroupError>),
    /// Completed by a later call into the coordinator (another member's join
    /// or sync, a leave, or `tick`).
    Waiting(oneshot::Receiver<Result<T, GroupError>>),
}

impl<T> Reply<T> {
    /// Waits for the answer. A waiter whose coordinator went away (shard
    /// shutdown) answers COORDINATOR_NOT_AVAILABLE so the client looks again.
    pub async fn wait(self) -> Result<T, GroupError> {
        match self {
            Reply::Ready(result) => result,
            Reply::Waiting(receiver) => receiver.await.unwrap_or(Err(GroupError::CoordinatorNotAvailable)),
        }
    }

    /// The answer if it is already there, without waiting.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn try_take(&mut self) -> Option<Result<T, GroupError>> {
        match self {
            Reply::Ready(_) => {
                let taken = std::mem::replace(self, Reply::Ready(Err(GroupError::UnknownServerError)));
                let Reply::Ready(result) = taken else { unreachable!() };
                Some(result)
            }
            Reply::Waiting(receiver) => match receiver.try_recv() {
                Ok(result) => Some(result),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => Some(Err(GroupError::CoordinatorNotAvailable)),
            },
        }
    }
}

pub(crate) type JoinSender = oneshot::Sender<Result<JoinResponse, GroupError>>;
pub(crate) type SyncSender = oneshot::Sender<Result<SyncResponse, GroupError>>;
