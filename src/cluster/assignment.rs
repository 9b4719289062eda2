//! Where a partition's replicas are, which of them are in sync and which one
//! leads: what the metadata log records per partition (KRaft's
//! PartitionRecord: replicas, isr, leader, leaderEpoch, partitionEpoch), and
//! how a single node picks the shard of a new partition.

use serde::{Deserialize, Serialize};

use super::{NodeId, ReplicaPlacement, ShardId};

/// One partition's replicas, the in-sync ones among them, its leader (one
/// of the in-sync replicas, or none: the partition is offline) and the
/// leader's epoch.
///
/// `leader_epoch` goes up by one with every change of leader (what fences a
/// deposed leader's appends and fetches); `partition_epoch` goes up with
/// every change at all (leader or ISR), so a leader's request to change the
/// ISR is refused when it was made on an older state (KRaft's
/// AlterPartition check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAssignment {
    pub replicas: Vec<ReplicaPlacement>,
    /// Metadata logs written before replication have no ISR: every replica
    /// was in sync (see [`PartitionAssignment::normalized`]).
    #[serde(default)]
    pub isr: Vec<ReplicaPlacement>,
    pub leader: Option<ReplicaPlacement>,
    pub leader_epoch: i32,
    #[serde(default)]
    pub partition_epoch: i32,
}

impl PartitionAssignment {
    /// A partition with one replica, which leads at epoch 0: every
    /// partition of a single node.
    pub fn single(at: ReplicaPlacement) -> PartitionAssignment {
        PartitionAssignment::led_by_first(vec![at])
    }

    /// A new partition on `replicas`, all in sync, led by the first (its
    /// preferred leader, as Kafka's) at epoch 0.
    pub fn led_by_first(replicas: Vec<ReplicaPlacement>) -> PartitionAssignment {
        PartitionAssignment {
            isr: replicas.clone(),
            leader: replicas.first().copied(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    /// An assignment read from a metadata log written before the ISR was
    /// recorded: every replica was in sync.
    pub fn normalized(mut self) -> PartitionAssignment {
        if self.isr.is_empty() {
            self.isr = self.replicas.clone();
        }
        self
    }

    /// The preferred leader: the first replica (Kafka's rule), which the
    /// leader rebalance brings back once it is in sync again.
    pub fn preferred_leader(&self) -> Option<ReplicaPlacement> {
        self.replicas.first().copied()
    }

    /// Whether `at` leads this partition.
    pub fn is_led_by(&self, at: ReplicaPlacement) -> bool {
        self.leader == Some(at)
    }

    /// Whether the replica at `at` is in sync.
    pub fn in_sync(&self, at: ReplicaPlacement) -> bool {
        self.isr.contains(&at)
    }

    /// Whether a replica of this partition lives at `at`.
    pub fn has_replica(&self, at: ReplicaPlacement) -> bool {
        self.replicas.contains(&at)
    }

    /// Why this assignment cannot be applied, if it cannot: a partition
    /// needs replicas, each once; its ISR is a subset of them; its leader,
    /// if it has one, is in sync.
    pub fn invalid(&self) -> Option<&'static str> {
        let distinct = |list: &[ReplicaPlacement]| {
            let mut nodes: Vec<_> = list.iter().map(|r| r.node).collect();
            nodes.sort_unstable();
            nodes.windows(2).all(|w| w[0] != w[1])
        };
        if self.replicas.is_empty() {
            Some("a partition without replicas")
        } else if !distinct(&self.replicas) {
            Some("two replicas of one partition on one node")
        } else if !self.isr.iter().all(|r| self.has_replica(*r)) || !distinct(&self.isr) {
            Some("an in-sync replica that is not one of the partition's replicas")
        } else if self.leader.is_some_and(|l| !self.in_sync(l)) {
            Some("a leader that is not one of the partition's in-sync replicas")
        } else if self.leader_epoch < 0 || self.partition_epoch < 0 {
            Some("a negative leader or partition epoch")
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
        let shards: Vec<u16> = (0..4).map(|p| place("t", p, NodeId(0), 2).leader.unwrap().shard.0).collect();
        assert_eq!(shards.iter().filter(|s| **s == 0).count(), 2);
        assert!(shards.iter().all(|s| *s < 2));
        assert_eq!(place("t", 3, NodeId(0), 2), place("t", 3, NodeId(0), 2));
        let on_node_5 = place("t", 3, NodeId(5), 2);
        assert_eq!(Some(on_node_5.replicas[0]), on_node_5.leader);
        assert_eq!(on_node_5.isr, on_node_5.replicas);
        assert_eq!((on_node_5.replicas[0].node, on_node_5.leader_epoch), (NodeId(5), 0));
    }

    #[test]
    fn an_assignment_leads_from_one_of_its_replicas() {
        let at = |node, shard| ReplicaPlacement::new(NodeId(node), ShardId(shard));
        assert_eq!(PartitionAssignment::single(at(0, 1)).invalid(), None);
        let three = PartitionAssignment::led_by_first(vec![at(1, 0), at(2, 1), at(3, 0)]);
        assert_eq!(three.invalid(), None);
        let elsewhere = PartitionAssignment { leader: Some(at(4, 0)), ..three.clone() };
        assert!(elsewhere.invalid().is_some());
        let out_of_sync = PartitionAssignment { isr: vec![at(2, 1)], ..three.clone() };
        assert!(out_of_sync.invalid().is_some(), "the leader must be in sync");
        let offline = PartitionAssignment { isr: vec![], leader: None, ..three.clone() };
        assert_eq!(offline.invalid(), None, "a partition may have no leader");
        let twice = PartitionAssignment::led_by_first(vec![at(1, 0), at(1, 1)]);
        assert!(twice.invalid().is_some(), "two replicas on one node");
        let none = PartitionAssignment::led_by_first(vec![]);
        assert!(none.invalid().is_some());
    }
}
