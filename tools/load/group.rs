//! A load consumer's membership in a Kafka consumer group (the classic
//! protocol every broker serves): find the coordinator, join, let the leader
//! assign partitions round-robin, sync, read committed offsets; then, while
//! consuming, heartbeat and commit on the consumer's own thread, rejoin when
//! the coordinator announces a rebalance, and leave at the end. Blocking calls
//! on a connection of its own: they are rare next to the fetches.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;

use corelog_client::{error_name, Connection};

use crate::versions::{self, GroupVersions};

/// Kafka consumer defaults: a member is dropped after this long without a heartbeat.
const SESSION_TIMEOUT_MS: i32 = 45_000;
const REBALANCE_TIMEOUT_MS: i32 = 60_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
/// Like enable.auto.commit with auto.commit.interval.ms=5000.
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// The assignment strategy's name, as JoinGroup advertises it.
const STRATEGY: &str = "roundrobin";

const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
const REBALANCE_IN_PROGRESS: i16 = ResponseError::RebalanceInProgress.code();
const MEMBER_ID_REQUIRED: i16 = ResponseError::MemberIdRequired.code();
const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();
const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();
const COORDINATOR_LOAD_IN_PROGRESS: i16 = ResponseError::CoordinatorLoadInProgress.code();

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub struct Membership {
    client: Connection,
    versions: GroupVersions,
    group: String,
    topic: String,
    partitions: i32,
    member_id: String,
    generation: i32,
    last_heartbeat: Instant,
    last_commit: Instant,
}

/// What a heartbeat found.
pub enum Heartbeat {
    Stable,
    /// The group is rebalancing: commit, rejoin, take the new assignment.
    Rejoin,
}

impl Membership {
    /// Connects to the group's coordinator. `join` then makes it a member.
    pub fn connect(bootstrap: &str, client_id: &str, group: &str, topic: &str, partitions: i32) -> Result<Membership> {
        let mut client = versions::connect(bootstrap, client_id)?;
        let versions = versions::group_versions(&client)?;
        let coordinator = find_coordinator(&mut client, versions.find_coordinator, group)?;
        let client = versions::connect(&coordinator, client_id)?;
        let now = Instant::now();
        Ok(Membership {
            client,
            versions,
            group: group.to_string(),
            topic: topic.to_string(),
            partitions,
            member_id: String::new(),
            generation: -1,
            last_heartbeat: now,
            last_commit: now,
        })
    }

    /// Joins (or rejoins) the group and returns this member's partitions.
    pub fn join(&mut self) -> Result<Vec<i32>> {
        let deadline = Instant::now() + Duration::from_millis(REBALANCE_TIMEOUT_MS as u64);
        loop {
            let response = self.join_once()?;
            match response.error_code {
                0 => {
                    self.generation = response.generation_id;
                    self.member_id = response.member_id.to_string();
                    let assignments = if response.leader == response.member_id {
                        self.assign(&response.members)?
                    } else {
                        Vec::new()
                    };
                    match self.sync(assignments)? {
                        Some(partitions) => {
                            self.last_heartbeat = Instant::now();
                            return Ok(partitions);
                        }
                        None => continue, // a rebalance started meanwhile
                    }
                }
                MEMBER_ID_REQUIRED => self.member_id = response.member_id.to_string(),
                UNKNOWN_MEMBER_ID => self.member_id.clear(),
                REBALANCE_IN_PROGRESS | COORDINATOR_LOAD_IN_PROGRESS => {}
                code => bail!("JoinGroup {}: {}", self.group, error_name(code)),
            }
            if Instant::now() > deadline {
                bail!("JoinGroup {}: no stable group after {REBALANCE_TIMEOUT_MS} ms", self.group);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn join_once(&mut self) -> Result<JoinGroupResponse> {
        let subscription = versioned(0, &ConsumerProtocolSubscription::default().with_topics(vec![str(&self.topic)]))?;
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(str(&self.group)))
            .with_session_timeout_ms(SESSION_TIMEOUT_MS)
            .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
            .with_member_id(str(&self.member_id))
            .with_protocol_type(str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(str(STRATEGY))
                .with_metadata(subscription)]);
        Ok(self.client.send_at(&request, self.versions.join_group)?)
    }

    /// The leader's round-robin: partition p goes to the (p % n)-th member by member id.
    fn assign(
        &self,
        members: &[join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let mut ids: Vec<&StrBytes> = members.iter().map(|m| &m.member_id).collect();
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let mine: Vec<i32> = (0..self.partitions).filter(|p| *p as usize % ids.len() == i).collect();
            let assignment =
                ConsumerProtocolAssignment::default().with_assigned_partitions(vec![TopicPartition::default()
                    .with_topic(TopicName(str(&self.topic)))
                    .with_partitions(mine)]);
            out.push(
                SyncGroupRequestAssignment::default()
                    .with_member_id((*id).clone())
                    .with_assignment(versioned(0, &assignment)?),
            );
        }
        Ok(out)
    }

    /// Some(partitions) once synced, None when a new rebalance began.
    fn sync(&mut self, assignments: Vec<SyncGroupRequestAssignment>) -> Result<Option<Vec<i32>>> {
        let mut request = SyncGroupRequest::default()
            .with_group_id(GroupId(str(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(str(&self.member_id))
            .with_assignments(assignments);
        if self.versions.sync_group >= 5 {
            request = request.with_protocol_type(Some(str("consumer"))).with_protocol_name(Some(str(STRATEGY)));
        }
        let response: SyncGroupResponse = self.client.send_at(&request, self.versions.sync_group)?;
        match response.error_code {
            0 => {}
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => return Ok(None),
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                return Ok(None);
            }
            code => bail!("SyncGroup {}: {}", self.group, error_name(code)),
        }
        if response.assignment.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let assignment: ConsumerProtocolAssignment = unversioned(response.assignment)?;
        Ok(Some(
            assignment
                .assigned_partitions
                .iter()
                .filter(|t| t.topic.0.as_str() == self.topic)
                .flat_map(|t| t.partitions.iter().copied())
                .collect(),
        ))
    }

    /// The group's committed offset for each partition (None where there is none).
    pub fn committed(&mut self, partitions: &[i32]) -> Result<Vec<Option<i64>>> {
        let request = OffsetFetchRequest::default().with_group_id(GroupId(str(&self.group))).with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(str(&self.topic)))
                .with_partition_indexes(partitions.to_vec()),
        ]));
        let response: OffsetFetchResponse = self.client.send_at(&request, self.versions.offset_fetch)?;
        if response.error_code != 0 {
            bail!("OffsetFetch {}: {}", self.group, error_name(response.error_code));
        }
        let mut out = vec![None; partitions.len()];
        for p in response.topics.iter().flat_map(|t| t.partitions.iter()) {
            if p.error_code != 0 {
                bail!("OffsetFetch {}/{}: {}", self.group, p.partition_index, error_name(p.error_code));
            }
            if let Some(i) = partitions.iter().position(|x| *x == p.partition_index) {
                out[i] = (p.committed_offset >= 0).then_some(p.committed_offset);
            }
        }
        Ok(out)
    }

    /// Heartbeats when one is due; says whether the group wants a rejoin.
    pub fn heartbeat_if_due(&mut self) -> Result<Heartbeat> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return Ok(Heartbeat::Stable);
        }
        self.last_heartbeat = Instant::now();
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(str(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(str(&self.member_id));
        let response: HeartbeatResponse = self.client.send_at(&request, self.versions.heartbeat)?;
        match response.error_code {
            0 => Ok(Heartbeat::Stable),
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => Ok(Heartbeat::Rejoin),
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                Ok(Heartbeat::Rejoin)
            }
            code => bail!("Heartbeat {}: {}", self.group, error_name(code)),
        }
    }

    pub fn commit_due(&self) -> bool {
        self.last_commit.elapsed() >= COMMIT_INTERVAL
    }

    /// Commits (partition, next offset to read) for this generation. A
    /// rebalance under way refuses it; the next owner then re-reads from the
    /// last commit, as with any Kafka consumer.
    pub fn commit(&mut self, positions: &[(i32, i64)]) -> Result<()> {
        self.last_commit = Instant::now();
        if positions.is_empty() {
            return Ok(());
        }
        let partitions = positions
            .iter()
            .map(|&(p, offset)| {
                OffsetCommitRequestPartition::default().with_partition_index(p).with_committed_offset(offset)
            })
            .collect();
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(str(&self.group)))
            .with_generation_id_or_member_epoch(self.generation)
            .with_member_id(str(&self.member_id))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(str(&self.topic)))
                .with_partitions(partitions)]);
        let response: OffsetCommitResponse = self.client.send_at(&request, self.versions.offset_commit)?;
        for p in response.topics.iter().flat_map(|t| t.partitions.iter()) {
            match p.error_code {
                0 | REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID => {}
                code => bail!("OffsetCommit {}/{}: {}", self.group, p.partition_index, error_name(code)),
            }
        }
        Ok(())
    }

    /// Leaves the group so the others rebalance at once instead of after the session timeout.
    pub fn leave(&mut self) -> Result<()> {
        let mut request = LeaveGroupRequest::default().with_group_id(GroupId(str(&self.group)));
        request = request.with_members(vec![MemberIdentity::default().with_member_id(str(&self.member_id))]);
        let response: LeaveGroupResponse = self.client.send_at(&request, self.versions.leave_group)?;
        match response.error_code {
            0 | UNKNOWN_MEMBER_ID => Ok(()),
            code => bail!("LeaveGroup {}: {}", self.group, error_name(code)),
        }
    }
}

fn find_coordinator(client: &mut Connection, version: i16, group: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = FindCoordinatorRequest::default().with_key(str(group)).with_key_type(0);
        let response: FindCoordinatorResponse = client.send_at(&request, version)?;
        match response.error_code {
            0 => return Ok(format!("{}:{}", response.host.as_str(), response.port)),
            COORDINATOR_NOT_AVAILABLE | COORDINATOR_LOAD_IN_PROGRESS | NOT_COORDINATOR if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            code => bail!("FindCoordinator {group}: {}", error_name(code)),
        }
    }
}

/// The consumer protocol's framing: an i16 version, then the struct at that version.
fn versioned<T: Encodable>(version: i16, value: &T) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    value.encode(&mut buf, version).context("encoding a consumer protocol message")?;
    Ok(buf.freeze())
}

fn unversioned<T: Decodable>(mut bytes: Bytes) -> Result<T> {
    if bytes.len() < 2 {
        bail!("a consumer protocol message of {} bytes", bytes.len());
    }
    // Later versions only add fields; read as the highest this codec knows.
    let version = bytes.get_i16().clamp(0, 3);
    T::decode(&mut bytes, version).context("decoding a consumer protocol message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_round_trip() {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![TopicPartition::default()
            .with_topic(TopicName(str("t")))
            .with_partitions(vec![0, 2])]);
        let back: ConsumerProtocolAssignment = unversioned(versioned(0, &a).unwrap()).unwrap();
        assert_eq!(back.assigned_partitions[0].partitions, vec![0, 2]);
        assert!(unversioned::<ConsumerProtocolAssignment>(Bytes::from_static(&[0])).is_err());
    }
}
