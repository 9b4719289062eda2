//! The cluster: which nodes there are, which shards each node runs, and on
//! which (node, shard) each partition's replicas live. Today one node; this
//! is where issue 16's multi-node replication will live.
//!
//! # Nodes, shards and Kafka broker ids
//!
//! A **node** is one corelog process, named by Kafka's `node.id`
//! ([`NodeId`], `--node-id`, 0 by default). It runs **shards**, one pinned
//! thread per core ([`ShardId`] 0..shard count). Kafka clients know neither:
//! they know brokers. Every shard is advertised as its own Kafka broker, so
//! clients send each partition's requests straight to the core that holds
//! it, and the broker id of a shard is derived from both halves in one place,
//! [`ReplicaPlacement::broker_id`]:
//!
//! ```text
//! broker id = node id × SHARDS_PER_NODE_MAX + shard        (SHARDS_PER_NODE_MAX = 1000)
//! ```
//!
//! so node 0's shards keep broker ids 0..n (the ids of the single node before
//! node ids existed) and broker 2003 reads as node 2, shard 3
//! ([`ReplicaPlacement::from_broker_id`] is the inverse). A broker's listener
//! is the node's advertised host and its base port + shard ([`LocalNode`]).
//! Node ids and shard counts whose broker ids would leave the i32 Kafka gives
//! them are refused when the configuration is loaded.
//!
//! # Placement
//!
//! A partition is placed as replicas, each on one (node, shard), with one of
//! them the leader and a leader epoch ([`PartitionAssignment`], after
//! KRaft's PartitionRecord). A single node has one replica per partition, on
//! the shard [`LocalNode::place`] picks; it leads at epoch 0.
//!
//! # What issue 16 adds here
//!
//! The controller (a Raft quorum whose state machine is today's metadata
//! check/apply) and the topology it keeps: node id → advertised address for
//! every node, replica sets of more than one node with their in-sync
//! replicas, leader elections that bump the epoch.

mod assignment;
mod identity;
mod nodes;

pub use assignment::{place, PartitionAssignment};
pub use identity::{
    check_identity, shard_port, BrokerAddress, IdentityError, LocalNode, NodeId, ReplicaPlacement, ShardId,
    NODE_ID_MAX, SHARDS_PER_NODE_MAX,
};
pub use nodes::{parse_voters, NodeRegistration, Voter, VotersError};
