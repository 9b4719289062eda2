//! Where a partition's replicas are and which one leads: what the metadata
//! log records per partition (KRaft's PartitionRecord: replicas, leader,
//! leaderEpoch), and how a single node picks the shard of a new partition.

use serde::{Deserialize, Serialize};

use super::{NodeId, ReplicaPlacement, ShardId};

/// One partition's replicas, its leader among them and the leader's epoch.
/// The in-sync replica set comes with replication (issue 16); until then
/// every replica is in sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAssignment {
    pub replicas: Vec<ReplicaPlacement>,
    pub leader: ReplicaPlacement,
    pub leader_epoch: i32,
}

impl PartitionAssignment {
    /// A partition with one replica, which leads at epoch 0: every
    /// partition of a single node.
    pub fn single(at: ReplicaPlacement) -> PartitionAssignment {
        PartitionAssignment { replicas: vec![at], leader: at, leader_epoch: 0 }
    }

    /// Whether a replica of this partition lives at `at`.
    pub fn has_replica(&self, at: ReplicaPlacement) -> bool {
        self.replicas.contains(&at)
    }

    /// Why this assignment cannot be applied, if it cannot: a partition
    /// needs a replica, and its leader must be one of them.
    pub fn invalid(&self) -> Option<&'static str> {
        if self.replicas.is_empty() {
            Some("a partition without replicas")
        } else if !self.has_replica(self.leader) {
            Some("a leader that is not one of the partition's replicas")
        } else if self.leader_epoch < 0 {
            Some("a negative leader epoch")
        } else {
            None
        }
    }
}

/// Where partition `partition` of `topic` goes on `node`: one replica on a
/// shard picked by a deterministic spread that starts each topic at a
/// different shard, so small topics do not all land on shard 0. The result
/// is recorded in the metadata log, so a later change of this function
/// never moves existing partitions.
pub fn place(topic: &str, partition: i32, node: NodeId, shard_count: usize) -> PartitionAssignment {
    assert!(shard_count > 0, "a node has at least one shard");
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = topic.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let shard = (hash.wrapping_add(partition as u64) % shard_count as u64) as u16;
    PartitionAssignment::single(ReplicaPlacement::new(node, ShardId(shard)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_spreads_partitions_over_shards() {
        let shards: Vec<u16> = (0..4).map(|p| place("t", p, NodeId(0), 2).leader.shard.0).collect();
        assert_eq!(shards.iter().filter(|s| **s == 0).count(), 2);
        assert!(shards.iter().all(|s| *s < 2));
        assert_eq!(place("t", 3, NodeId(0), 2), place("t", 3, NodeId(0), 2));
        let on_node_5 = place("t", 3, NodeId(5), 2);
        assert_eq!(on_node_5.replicas, [on_node_5.leader]);
        assert_eq!((on_node_5.leader.node, on_node_5.leader_epoch), (NodeId(5), 0));
    }

    #[test]
    fn an_assignment_leads_from_one_of_its_replicas() {
        let at = |shard| ReplicaPlacement::new(NodeId(0), ShardId(shard));
        assert_eq!(PartitionAssignment::single(at(1)).invalid(), None);
        let elsewhere = PartitionAssignment { replicas: vec![at(0)], leader: at(1), leader_epoch: 0 };
        assert!(elsewhere.invalid().is_some());
        let none = PartitionAssignment { replicas: vec![], leader: at(0), leader_epoch: 0 };
        assert!(none.invalid().is_some());
    }
}
