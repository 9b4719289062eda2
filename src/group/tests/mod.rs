//! Unit tests of the coordinator, driven with explicit times.

mod hostile;
mod membership;
mod offsets;
mod ownership;
mod random;
mod rebalance;
mod static_members;

use bytes::Bytes;

pub(super) use super::types::*;
use super::*;
use crate::model::TopicPartition;

const GROUP: &str = "g";
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn coordinator() -> Coordinator {
    Coordinator::new(GroupConfig { group_initial_rebalance_delay_ms: 0, ..GroupConfig::default() })
}

fn protocols(names: &[&str]) -> Vec<Protocol> {
    names.iter().map(|n| Protocol { name: n.to_string(), metadata: Bytes::from(format!("sub-{n}")) }).collect()
}

fn join_request(member_id: &str, client_id: &str) -> JoinGroup {
    JoinGroup {
        group_id: GROUP.into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: client_id.into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols(&["range"]),
        require_known_member_id: false,
        supports_skip_assignment: false,
    }
}

fn static_join(member_id: &str, client_id: &str, instance_id: &str) -> JoinGroup {
    JoinGroup { group_instance_id: Some(instance_id.into()), ..join_request(member_id, client_id) }
}

fn sync_request(generation_id: i32, member_id: &str, assignments: &[(&str, &str)]) -> SyncGroup {
    SyncGroup {
        group_id: GROUP.into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: None,
        assignments: assignments.iter().map(|(m, a)| (m.to_string(), Bytes::from(a.to_string()))).collect(),
    }
}

fn heartbeat(generation_id: i32, member_id: &str) -> Heartbeat {
    Heartbeat { group_id: GROUP.into(), generation_id, member_id: member_id.into(), group_instance_id: None }
}

/// The answer, which must already be there.
fn answer<T: std::fmt::Debug>(reply: &mut Reply<T>) -> Result<T, GroupError> {
    reply.try_take().expect("the answer should be ready")
}

fn assert_waiting<T: std::fmt::Debug>(reply: &mut Reply<T>) {
    assert!(reply.try_take().is_none(), "the answer should still be pending");
}

/// One member joins and syncs; returns its member id (generation 1).
fn join_alone(c: &mut Coordinator, client_id: &str, now_ms: i64) -> String {
    let joined = answer(&mut c.join(join_request("", client_id), now_ms)).unwrap();
    let member_id = joined.member_id;
    let synced = answer(&mut c.sync(sync_request(joined.generation_id, &member_id, &[(&member_id, "all")]), now_ms));
    assert_eq!(synced.unwrap().assignment, Bytes::from("all"));
    member_id
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn offset(offset: i64, commit_timestamp_ms: i64) -> OffsetAndMetadata {
    OffsetAndMetadata { offset, leader_epoch: 3, metadata: "m".into(), commit_timestamp_ms }
}
