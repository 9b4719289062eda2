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
    /// While a reassignment runs (KIP-455): the replicas it adds, already in
    /// `replicas`, fetching to join the ISR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<ReplicaPlacement>,
    /// While a reassignment runs: the replicas it removes once every target
    /// replica is in sync, still in `replicas` (and serving) until then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<ReplicaPlacement>,
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
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
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
        } else if !self.adding_replicas.iter().chain(&self.removing_replicas).all(|r| self.has_replica(*r)) {
            Some("a replica being added or removed that is not one of the partition's replicas")
        } else if self.adding_replicas.iter().any(|r| self.removing_replicas.contains(r)) {
            Some("a replica both added and removed")
        } else if self.is_reassigning() && self.target_replicas().is_empty() {
            Some("a reassignment that would leave no replica")
        } else {
            None
        }
    }

    /// Whether a reassignment is under way (KIP-455).
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas the partition will have once its reassignment
    /// completes: all of them but the ones being removed, in preference order.
    pub fn target_replicas(&self) -> Vec<ReplicaPlacement> {
        self.replicas.iter().copied().filter(|r| !self.removing_replicas.contains(r)).collect()
    }

    /// The replicas the partition had before its reassignment began: what
    /// a cancelled reassignment returns to.
    pub fn original_replicas(&self) -> Vec<ReplicaPlacement> {
        self.replicas.iter().copied().filter(|r| !self.adding_replicas.contains(r)).collect()
    }

    /// The partition with a reassignment to `target` begun, as KRaft's
    /// `PartitionReassignmentReplicas` does: replicas are the target then
    /// the original ones not in it (so the target's first is the preferred
    /// leader), the new ones are `adding_replicas` and fetch until they join
    /// the ISR by the leader's ISR expansion, the old ones are
    /// `removing_replicas`. A reassignment already under way is replaced, as
    /// if it had been cancelled first. When every target replica is already
    /// in sync (a reorder, or only removals), the reassignment completes at
    /// once. `target` empty is the caller's error to refuse; `live` says
    /// which nodes may lead. Err(why) when no in-sync replica would remain.
    pub fn reassigned(
        &self,
        target: &[ReplicaPlacement],
        live: impl Fn(NodeId) -> bool,
    ) -> Result<PartitionAssignment, &'static str> {
        assert!(!target.is_empty(), "a reassignment's target is checked not to be empty");
        if target.iter().all(|r| self.in_sync(*r)) {
            return self.with_replicas(target.to_vec(), Vec::new(), Vec::new(), &live);
        }
        let original = self.original_replicas();
        let adding: Vec<_> = target.iter().copied().filter(|r| !original.contains(r)).collect();
        let removing: Vec<_> = original.iter().copied().filter(|r| !target.contains(r)).collect();
        let mut replicas = target.to_vec();
        replicas.extend(&removing);
        self.with_replicas(replicas, adding, removing, &live)
    }

    /// The partition back on its original replicas, the ones being added
    /// dropped (ListPartitionReassignments' cancel: null target replicas).
    pub fn reassignment_cancelled(&self, live: impl Fn(NodeId) -> bool) -> Result<PartitionAssignment, &'static str> {
        self.with_replicas(self.original_replicas(), Vec::new(), Vec::new(), &live)
    }

    /// The partition with its reassignment completed, if it can complete:
    /// every target replica is in the ISR. Then the replicas are the
    /// target, the removed ones leave the ISR, and a removed leader hands
    /// over to the first in-sync target replica (its preferred leader).
    pub fn reassignment_completed(&self, live: impl Fn(NodeId) -> bool) -> Option<PartitionAssignment> {
        let target = self.target_replicas();
        let ready = self.is_reassigning() && target.iter().all(|r| self.in_sync(*r));
        ready.then(|| self.with_replicas(target, Vec::new(), Vec::new(), &live).ok()).flatten()
    }

    /// This partition on `replicas`, its ISR cut to them, its leader kept
    /// if it is still in sync or else the first in-sync replica on a live
    /// node (none: offline until one returns); one partition epoch later,
    /// and one leader epoch later if the leader changed.
    fn with_replicas(
        &self,
        replicas: Vec<ReplicaPlacement>,
        adding_replicas: Vec<ReplicaPlacement>,
        removing_replicas: Vec<ReplicaPlacement>,
        live: &impl Fn(NodeId) -> bool,
    ) -> Result<PartitionAssignment, &'static str> {
        let isr: Vec<_> = self.isr.iter().copied().filter(|r| replicas.contains(r)).collect();
        if isr.is_empty() {
            return Err("none of the replicas it would keep is in sync");
        }
        let leader = match self.leader {
            Some(l) if isr.contains(&l) => Some(l),
            _ => replicas.iter().copied().find(|r| isr.contains(r) && live(r.node)),
        };
        let changed = PartitionAssignment {
            replicas,
            isr,
            leader,
            leader_epoch: self.leader_epoch + i32::from(leader != self.leader),
            partition_epoch: self.partition_epoch + 1,
            adding_replicas,
            removing_replicas,
        };
        debug_assert_eq!(changed.invalid(), None, "a reassignment step keeps the partition valid: {changed:?}");
        Ok(changed)
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

    fn at(node: u32) -> ReplicaPlacement {
        ReplicaPlacement::new(NodeId(node), ShardId(0))
    }

    /// The leader's ISR expansion, as the ISR task proposes it once `joining` caught up.
    fn joined(a: &PartitionAssignment, joining: ReplicaPlacement) -> PartitionAssignment {
        let mut isr = a.isr.clone();
        isr.push(joining);
        PartitionAssignment { isr, partition_epoch: a.partition_epoch + 1, ..a.clone() }
    }

    #[test]
    fn a_reassignment_adds_first_and_removes_once_the_target_is_in_sync() {
        let live = |_| true;
        let two = PartitionAssignment::led_by_first(vec![at(1), at(2)]);
        // Move the replica on node 2 to node 4.
        let begun = two.reassigned(&[at(1), at(4)], live).unwrap();
        assert_eq!(begun.replicas, [at(1), at(4), at(2)], "the target first, then the replicas it removes");
        assert_eq!(
            (begun.adding_replicas.as_slice(), begun.removing_replicas.as_slice()),
            (&[at(4)][..], &[at(2)][..])
        );
        assert_eq!(begun.isr, [at(1), at(2)], "the new replica is not in sync yet");
        assert_eq!((begun.leader, begun.leader_epoch, begun.partition_epoch), (Some(at(1)), 0, 1));
        assert_eq!(begun.invalid(), None);
        assert!(begun.reassignment_completed(live).is_none(), "node 4 has not caught up");
        // Node 4 catches up and joins the ISR; the reassignment completes.
        let caught_up = joined(&begun, at(4));
        let done = caught_up.reassignment_completed(live).unwrap();
        assert_eq!((done.replicas.as_slice(), done.isr.as_slice()), (&[at(1), at(4)][..], &[at(1), at(4)][..]));
        assert!(!done.is_reassigning());
        assert_eq!((done.leader, done.leader_epoch, done.partition_epoch), (Some(at(1)), 0, 3));
    }

    #[test]
    fn a_removed_leader_hands_over_to_the_targets_first_in_sync_replica() {
        let live = |n: NodeId| n != NodeId(3);
        let two = PartitionAssignment::led_by_first(vec![at(1), at(2)]);
        let begun = two.reassigned(&[at(3), at(2)], live).unwrap();
        assert_eq!(begun.leader, Some(at(1)), "the old leader leads until the target is in sync");
        let done = joined(&begun, at(3)).reassignment_completed(live).unwrap();
        assert_eq!(done.replicas, [at(3), at(2)]);
        assert_eq!(done.leader, Some(at(2)), "node 3 is fenced: the next in-sync target replica leads");
        assert_eq!(done.leader_epoch, 1, "a new leader, a new epoch");
        let done = joined(&begun, at(3)).reassignment_completed(|_| true).unwrap();
        assert_eq!(done.leader, Some(at(3)), "the preferred (first) target replica leads");
    }

    #[test]
    fn a_reassignment_within_the_isr_completes_at_once() {
        let three = PartitionAssignment::led_by_first(vec![at(1), at(2), at(3)]);
        let shrunk = three.reassigned(&[at(2), at(3)], |_| true).unwrap();
        assert!(!shrunk.is_reassigning());
        assert_eq!((shrunk.replicas.as_slice(), shrunk.isr.as_slice()), (&[at(2), at(3)][..], &[at(2), at(3)][..]));
        assert_eq!((shrunk.leader, shrunk.leader_epoch, shrunk.partition_epoch), (Some(at(2)), 1, 1));
        let reordered = three.reassigned(&[at(3), at(1), at(2)], |_| true).unwrap();
        assert_eq!(reordered.replicas, [at(3), at(1), at(2)]);
        assert_eq!(reordered.leader, Some(at(1)), "a reorder keeps the leader; the rebalance moves it later");
    }

    #[test]
    fn a_cancelled_or_replaced_reassignment_returns_to_the_original_replicas() {
        let live = |_| true;
        let two = PartitionAssignment::led_by_first(vec![at(1), at(2)]);
        let begun = two.reassigned(&[at(1), at(4)], live).unwrap();
        let cancelled = joined(&begun, at(4)).reassignment_cancelled(live).unwrap();
        assert_eq!(
            (cancelled.replicas.as_slice(), cancelled.isr.as_slice()),
            (&[at(1), at(2)][..], &[at(1), at(2)][..])
        );
        assert!(!cancelled.is_reassigning());
        // A second reassignment replaces the first: node 4 is dropped, node 5 added.
        let replaced = begun.reassigned(&[at(1), at(5)], live).unwrap();
        assert_eq!(replaced.replicas, [at(1), at(5), at(2)]);
        assert_eq!(
            (replaced.adding_replicas.as_slice(), replaced.removing_replicas.as_slice()),
            (&[at(5)][..], &[at(2)][..])
        );
        // Only a replica that is being added is in sync: nothing to go back to.
        let only_new = PartitionAssignment { isr: vec![at(4)], leader: Some(at(4)), leader_epoch: 1, ..begun.clone() };
        assert!(only_new.reassignment_cancelled(live).is_err());
    }

    #[test]
    fn a_reassignments_replicas_are_the_partitions() {
        let begun =
            PartitionAssignment::led_by_first(vec![at(1), at(2)]).reassigned(&[at(1), at(4)], |_| true).unwrap();
        let stray = PartitionAssignment { adding_replicas: vec![at(7)], ..begun.clone() };
        assert!(stray.invalid().is_some());
        let both = PartitionAssignment { removing_replicas: vec![at(4)], ..begun.clone() };
        assert!(both.invalid().is_some());
        let nothing_left =
            PartitionAssignment { adding_replicas: vec![], removing_replicas: vec![at(1), at(4), at(2)], ..begun };
        assert!(nothing_left.invalid().is_some());
    }
}
