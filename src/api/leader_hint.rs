//! KIP-951: a Produce or Fetch sent to a replica that does not lead its
//! partition is answered with the partition's current leader and epoch,
//! and where that leader listens, so the client goes there at once instead
//! of waiting for a metadata refresh.

use super::{Context, ErrorCode};
use crate::metadata::Snapshot;

/// The leader of one partition, as a client is told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderHint {
    pub broker_id: i32,
    pub leader_epoch: i32,
    pub host: String,
    pub port: u16,
}

/// Whether Kafka tells the current leader with this error (its
/// NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH answers do).
pub fn tells_leader(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::NotLeaderOrFollower | ErrorCode::FencedLeaderEpoch)
}

/// The partition's leader and its address, if it has one whose address is
/// known: a registered node's, or a shard of this node.
pub fn leader_hint(ctx: &Context<'_>, snapshot: &Snapshot, topic: &str, partition: i32) -> Option<LeaderHint> {
    let assignment = snapshot.topic(topic)?.partition(partition)?;
    let leader = assignment.leader?;
    let broker_id = leader.broker_id();
    let (host, port) = match snapshot.nodes.get(&leader.node) {
        Some(node) => (node.host.clone(), node.port_of(leader.shard)),
        None => {
            let local = ctx.shard.node.address(broker_id)?;
            (local.host.to_string(), local.port)
        }
    };
    Some(LeaderHint { broker_id, leader_epoch: assignment.leader_epoch, host, port })
}
