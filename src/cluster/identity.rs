//! Node ids, shard ids, and the Kafka broker id and listener each shard is
//! advertised as (see the module doc of `cluster`).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::assignment::{place, PartitionAssignment};

/// Most shards one node may run: broker ids give each node this many
/// (node n's shards are brokers n×1000 .. n×1000+999), so node ids read in
/// decimal as "node, then shard".
pub const SHARDS_PER_NODE_MAX: u16 = 1000;

/// The largest node id whose every shard still has an i32 broker id.
pub const NODE_ID_MAX: u32 = (i32::MAX as u32 - (SHARDS_PER_NODE_MAX as u32 - 1)) / SHARDS_PER_NODE_MAX as u32;

const _: () = assert!(
    NODE_ID_MAX as u64 * SHARDS_PER_NODE_MAX as u64 + (SHARDS_PER_NODE_MAX as u64 - 1) <= i32::MAX as u64,
    "the last shard of the last node must have an i32 broker id"
);

/// Kafka's `node.id`: one corelog process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

/// One shard (pinned thread) of a node, 0 .. the node's shard count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u16);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where one replica of a partition lives: a shard of a node. Each such
/// place is one Kafka broker to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReplicaPlacement {
    pub node: NodeId,
    pub shard: ShardId,
}

impl ReplicaPlacement {
    pub fn new(node: NodeId, shard: ShardId) -> ReplicaPlacement {
        ReplicaPlacement { node, shard }
    }

    /// The Kafka broker id this shard is advertised as: node × 1000 + shard.
    /// The one place a (node, shard) becomes a broker id.
    pub fn broker_id(self) -> i32 {
        debug_assert!(self.node.0 <= NODE_ID_MAX, "node id {} past NODE_ID_MAX (config load refuses it)", self.node);
        debug_assert!(self.shard.0 < SHARDS_PER_NODE_MAX, "shard {} past SHARDS_PER_NODE_MAX", self.shard.0);
        (self.node.0 * SHARDS_PER_NODE_MAX as u32 + self.shard.0 as u32) as i32
    }

    /// The inverse of [`broker_id`](Self::broker_id): None for an id no
    /// shard can have (negative).
    pub fn from_broker_id(broker_id: i32) -> Option<ReplicaPlacement> {
        let id = u32::try_from(broker_id).ok()?;
        let per_node = SHARDS_PER_NODE_MAX as u32;
        Some(ReplicaPlacement::new(NodeId(id / per_node), ShardId((id % per_node) as u16)))
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("node.id {0} is out of range: at most {NODE_ID_MAX}, so that every shard's broker id (node.id × {SHARDS_PER_NODE_MAX} + shard) fits an i32")]
    NodeIdOutOfRange(u32),
    #[error("{0} shards asked for: a node runs 1 to {SHARDS_PER_NODE_MAX} (each shard is a broker with id node.id × {SHARDS_PER_NODE_MAX} + shard)")]
    ShardCount(usize),
    #[error("port {port} + {shards} shards passes 65535: shard s listens on port + s")]
    PortRange { port: u16, shards: usize },
}

/// Checks that `node` with `shard_count` shards gives every shard a broker id.
pub fn check_identity(node: NodeId, shard_count: usize) -> Result<(), IdentityError> {
    if node.0 > NODE_ID_MAX {
        return Err(IdentityError::NodeIdOutOfRange(node.0));
    }
    if shard_count == 0 || shard_count > SHARDS_PER_NODE_MAX as usize {
        return Err(IdentityError::ShardCount(shard_count));
    }
    Ok(())
}

/// One Kafka broker as clients are told of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerAddress<'a> {
    pub broker_id: i32,
    pub host: &'a str,
    pub port: u16,
}

/// The port shard `shard` listens on: `port_base + shard`, except that the
/// shards step over `skipped` (the controller listener's port when it falls
/// in their range, as with `--port 9092` and voters on :9093).
pub fn shard_port(port_base: u16, shard: ShardId, skipped: Option<u16>) -> u16 {
    let port = port_base + shard.0;
    match skipped {
        Some(skipped) if skipped >= port_base && port >= skipped => port + 1,
        _ => port,
    }
}

/// This node as clients see it: one Kafka broker per shard, all on the
/// advertised host, shard s on `port_base + s` (stepping over `skipped_port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNode {
    id: NodeId,
    shard_count: u16,
    advertised_host: String,
    port_base: u16,
    skipped_port: Option<u16>,
}

impl LocalNode {
    /// Refuses a node id or shard count whose broker ids or ports would not fit.
    pub fn new(
        id: NodeId,
        shard_count: usize,
        advertised_host: String,
        port_base: u16,
    ) -> Result<LocalNode, IdentityError> {
        check_identity(id, shard_count)?;
        if port_base as usize + shard_count - 1 > u16::MAX as usize {
            return Err(IdentityError::PortRange { port: port_base, shards: shard_count });
        }
        Ok(LocalNode { id, shard_count: shard_count as u16, advertised_host, port_base, skipped_port: None })
    }

    /// The same node with its shards stepping over `port` (the controller
    /// listener's), when it falls in their range.
    pub fn skipping_port(mut self, port: u16) -> Result<LocalNode, IdentityError> {
        let last = self.port_base as usize + self.shard_count as usize - 1;
        if (self.port_base as usize..=last).contains(&(port as usize)) {
            if last + 1 > u16::MAX as usize {
                return Err(IdentityError::PortRange { port: self.port_base, shards: self.shard_count as usize + 1 });
            }
            self.skipped_port = Some(port);
        }
        Ok(self)
    }

    /// The port the shards step over, if one falls in their range.
    pub fn skipped_port(&self) -> Option<u16> {
        self.skipped_port
    }

    pub fn advertised_host(&self) -> &str {
        &self.advertised_host
    }

    /// The first shard's port.
    pub fn port_base(&self) -> u16 {
        self.port_base
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn shard_count(&self) -> usize {
        self.shard_count as usize
    }

    /// Shard `shard` of this node.
    pub fn replica(&self, shard: ShardId) -> ReplicaPlacement {
        debug_assert!(shard.0 < self.shard_count, "shard {} of a node with {} shards", shard.0, self.shard_count);
        ReplicaPlacement::new(self.id, shard)
    }

    /// The port shard `shard` listens on.
    pub fn port(&self, shard: ShardId) -> u16 {
        debug_assert!(shard.0 < self.shard_count, "shard {} of a node with {} shards", shard.0, self.shard_count);
        shard_port(self.port_base, shard, self.skipped_port)
    }

    /// Where partition `partition` of a new topic (or a topic's new
    /// partition) goes: one replica on a shard of this node.
    pub fn place(&self, topic: &str, partition: i32) -> PartitionAssignment {
        place(topic, partition, self.id, self.shard_count())
    }

    /// Every broker of this node, by shard.
    pub fn brokers(&self) -> impl Iterator<Item = BrokerAddress<'_>> {
        (0..self.shard_count).map(|s| self.broker(ShardId(s)))
    }

    /// Where clients reach broker `broker_id`: None for an id that is not one
    /// of this node's shards (until issue 16, no other node is known).
    pub fn address(&self, broker_id: i32) -> Option<BrokerAddress<'_>> {
        let at = ReplicaPlacement::from_broker_id(broker_id)?;
        (at.node == self.id && at.shard.0 < self.shard_count).then(|| self.broker(at.shard))
    }

    fn broker(&self, shard: ShardId) -> BrokerAddress<'_> {
        BrokerAddress {
            broker_id: self.replica(shard).broker_id(),
            host: &self.advertised_host,
            port: self.port(shard),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_ids_read_as_node_then_shard_and_invert() {
        let at = |node, shard| ReplicaPlacement::new(NodeId(node), ShardId(shard));
        assert_eq!(at(0, 0).broker_id(), 0);
        assert_eq!(at(0, 7).broker_id(), 7, "node 0 keeps the broker ids of the single node");
        assert_eq!(at(2, 3).broker_id(), 2003);
        assert_eq!(ReplicaPlacement::from_broker_id(2003), Some(at(2, 3)));
        assert_eq!(ReplicaPlacement::from_broker_id(-1), None);
        let last = at(NODE_ID_MAX, SHARDS_PER_NODE_MAX - 1);
        assert!(last.broker_id() > 0);
        assert_eq!(ReplicaPlacement::from_broker_id(last.broker_id()), Some(last));
        assert_eq!(ReplicaPlacement::from_broker_id(i32::MAX).map(|p| p.node.0), Some(NODE_ID_MAX + 1));
    }

    #[test]
    fn identities_that_overflow_are_refused() {
        assert_eq!(check_identity(NodeId(NODE_ID_MAX), 1000), Ok(()));
        assert_eq!(check_identity(NodeId(NODE_ID_MAX + 1), 1), Err(IdentityError::NodeIdOutOfRange(NODE_ID_MAX + 1)));
        assert_eq!(check_identity(NodeId(0), 1001), Err(IdentityError::ShardCount(1001)));
        assert_eq!(check_identity(NodeId(0), 0), Err(IdentityError::ShardCount(0)));
        let ports = LocalNode::new(NodeId(0), 2, "h".into(), u16::MAX);
        assert_eq!(ports, Err(IdentityError::PortRange { port: u16::MAX, shards: 2 }));
    }

    #[test]
    fn a_node_advertises_one_broker_per_shard() {
        let node = LocalNode::new(NodeId(2), 2, "h".into(), 9092).unwrap();
        let brokers: Vec<_> = node.brokers().map(|b| (b.broker_id, b.port)).collect();
        assert_eq!(brokers, [(2000, 9092), (2001, 9093)]);
        assert_eq!(node.address(2001).map(|b| (b.host, b.port)), Some(("h", 9093)));
        assert_eq!(node.address(2002), None, "no shard 2");
        assert_eq!(node.address(1), None, "another node's shard");
    }

    #[test]
    fn shards_step_over_the_controller_port() {
        let node = LocalNode::new(NodeId(1), 3, "h".into(), 9092).unwrap().skipping_port(9093).unwrap();
        let ports: Vec<u16> = node.brokers().map(|b| b.port).collect();
        assert_eq!(ports, [9092, 9094, 9095]);
        let apart = LocalNode::new(NodeId(1), 2, "h".into(), 9092).unwrap().skipping_port(19093).unwrap();
        assert_eq!(apart.skipped_port(), None, "a controller port outside the range changes nothing");
        assert_eq!(shard_port(9092, ShardId(1), Some(9092)), 9094, "a skipped base moves every shard up");
        let full = LocalNode::new(NodeId(1), 2, "h".into(), u16::MAX - 1).unwrap().skipping_port(u16::MAX);
        assert!(matches!(full, Err(IdentityError::PortRange { .. })));
    }
}
