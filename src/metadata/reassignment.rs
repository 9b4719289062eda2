//! Replica reassignment (KIP-455, KRaft's `ReplicationControlManager.
//! alterPartitionReassignments`): the change a request for new target
//! replicas (or a cancel) makes to one partition, checked against the
//! registered nodes. The controller leader completes a reassignment once
//! every target replica is in sync (controller/reassignment.rs).
//!
//! Kafka tools name replicas by broker id, and every shard is a broker
//! (node × 1000 + shard): a target broker id names a (node, shard). Two
//! target replicas on one node are refused, since they would not survive
//! the node's loss any better than one. A single node has one replica per
//! partition and nowhere to move it: only its current placement is accepted
//! (moving between shards of one node is not supported).

use super::{MetadataError, MetadataRecord, Snapshot};
use crate::cluster::{PartitionAssignment, ReplicaPlacement};

/// The record that reassigns partition `partition` of `name` to the
/// brokers `target` (`None`: cancel the reassignment under way). `Ok(None)`
/// when there is nothing to change (the target is the current replicas).
/// Unless `allow_replication_factor_change`, the target has as many
/// replicas as the partition had (AlterPartitionReassignments v1).
pub fn reassign(
    snapshot: &Snapshot,
    name: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_replication_factor_change: bool,
) -> Result<Option<MetadataRecord>, MetadataError> {
    let current = snapshot
        .topic(name)
        .and_then(|t| t.partition(partition))
        .ok_or_else(|| MetadataError::UnknownTopic(name.into()))?;
    let invalid = |why: String| MetadataError::InvalidReassignment { name: name.into(), partition, why };
    let live = |node| snapshot.is_unfenced(node);
    let assignment = match target {
        None if !current.is_reassigning() => {
            return Err(MetadataError::NoReassignmentInProgress { name: name.into(), partition })
        }
        None => current.reassignment_cancelled(live).map_err(|why| invalid(why.into()))?,
        Some(brokers) => {
            let (from, to) = (current.original_replicas().len(), brokers.len());
            if !allow_replication_factor_change && from != to {
                return Err(MetadataError::ReplicationFactorChange { name: name.into(), partition, from, to });
            }
            let target = target_replicas(snapshot, current, brokers).map_err(invalid)?;
            if target == current.replicas && !current.is_reassigning() {
                return Ok(None);
            }
            current.reassigned(&target, live).map_err(|why| invalid(why.into()))?
        }
    };
    Ok(Some(MetadataRecord::ChangePartition { name: name.into(), partition, assignment }))
}

/// The placements `brokers` name, if they make a valid target: at least
/// one, each a shard of a registered node, no node twice, and every one
/// not among the partition's original replicas on an unfenced node (a replica already there may stay on a fenced
/// node: moving away from a dead node is what reassignment is for).
fn target_replicas(
    snapshot: &Snapshot,
    current: &PartitionAssignment,
    brokers: &[i32],
) -> Result<Vec<ReplicaPlacement>, String> {
    if brokers.is_empty() {
        return Err("the target replicas are empty".into());
    }
    if snapshot.nodes.is_empty() {
        // A single node: its partitions have one replica and no other node to go to.
        let same = brokers.len() == current.replicas.len()
            && brokers.iter().zip(&current.replicas).all(|(b, r)| *b == r.broker_id());
        return match same {
            true => Ok(current.replicas.clone()),
            false => Err("a single node keeps each partition on its shard: moving a replica needs another node".into()),
        };
    }
    let mut target: Vec<ReplicaPlacement> = Vec::with_capacity(brokers.len());
    for &broker in brokers {
        let at = ReplicaPlacement::from_broker_id(broker)
            .filter(|at| snapshot.nodes.get(&at.node).is_some_and(|n| n.replica(at.shard).is_some()))
            .ok_or_else(|| format!("broker {broker} is not a shard of a registered node"))?;
        if target.contains(&at) {
            return Err(format!("broker {broker} is named twice"));
        }
        if target.iter().any(|t| t.node == at.node) {
            return Err(format!(
                "two target replicas on node {} (brokers of one node are its shards; one replica per node)",
                at.node
            ));
        }
        if !current.original_replicas().contains(&at) && !snapshot.is_unfenced(at.node) {
            return Err(format!("broker {broker} is on node {}, which is fenced", at.node));
        }
        target.push(at);
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::cluster::{NodeId, NodeRegistration, ShardId};

    fn at(node: u32, shard: u16) -> ReplicaPlacement {
        ReplicaPlacement::new(NodeId(node), ShardId(shard))
    }

    fn cluster(fenced: &[u32]) -> Snapshot {
        let mut s = Snapshot::default();
        for node in 1..=4 {
            let registration = NodeRegistration {
                id: NodeId(node),
                incarnation: Uuid::from_u128(node as u128),
                epoch: node as i64,
                host: format!("127.0.0.{node}"),
                port: 9092,
                shards: 2,
                fenced: fenced.contains(&node),
                skipped_port: None,
            };
            s.apply(&MetadataRecord::RegisterNode { registration });
        }
        let partitions = vec![PartitionAssignment::led_by_first(vec![at(1, 0), at(2, 1)])];
        s.apply(&MetadataRecord::CreateTopic {
            name: "t".into(),
            id: Uuid::from_u128(9),
            partitions,
            configs: BTreeMap::new(),
        });
        s
    }

    fn refused(s: &Snapshot, target: &[i32]) -> String {
        match reassign(s, "t", 0, Some(target), true) {
            Err(MetadataError::InvalidReassignment { why, .. }) => why,
            other => panic!("{target:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn a_target_names_shards_of_registered_nodes_one_per_node() {
        let s = cluster(&[3]);
        assert!(refused(&s, &[]).contains("empty"));
        assert!(refused(&s, &[1000, 1000]).contains("twice"));
        assert!(refused(&s, &[1000, 1001]).contains("two target replicas on node 1"));
        assert!(refused(&s, &[1000, 9000]).contains("not a shard"));
        assert!(refused(&s, &[1000, 4002]).contains("not a shard"), "node 4 has shards 0 and 1");
        assert!(refused(&s, &[1000, 3000]).contains("fenced"));
        assert!(refused(&s, &[-1]).contains("not a shard"));
        assert!(matches!(reassign(&s, "t", 1, Some(&[1000]), true), Err(MetadataError::UnknownTopic(_))));
        assert!(matches!(reassign(&s, "u", 0, Some(&[1000]), true), Err(MetadataError::UnknownTopic(_))));
        assert!(matches!(reassign(&s, "t", 0, None, true), Err(MetadataError::NoReassignmentInProgress { .. })));
        assert!(reassign(&s, "t", 0, Some(&[1000, 2001]), true).unwrap().is_none(), "the current replicas: no change");
        let grown = reassign(&s, "t", 0, Some(&[1000, 2001, 4000]), false);
        assert!(matches!(grown, Err(MetadataError::ReplicationFactorChange { from: 2, to: 3, .. })), "{grown:?}");
    }

    #[test]
    fn a_reassignment_is_recorded_then_cancelled() {
        let mut s = cluster(&[]);
        let record = reassign(&s, "t", 0, Some(&[1000, 4001]), true).unwrap().unwrap();
        s.check(&record).unwrap();
        s.apply(&record);
        let a = s.topic("t").unwrap().partition(0).unwrap().clone();
        assert_eq!((a.adding_replicas, a.removing_replicas), (vec![at(4, 1)], vec![at(2, 1)]));
        let cancel = reassign(&s, "t", 0, None, true).unwrap().unwrap();
        s.check(&cancel).unwrap();
        s.apply(&cancel);
        let a = s.topic("t").unwrap().partition(0).unwrap();
        assert_eq!((a.replicas.as_slice(), a.is_reassigning()), (&[at(1, 0), at(2, 1)][..], false));
    }

    #[test]
    fn a_single_node_keeps_its_partitions_where_they_are() {
        let mut s = Snapshot::default();
        let partitions = vec![PartitionAssignment::single(at(0, 1))];
        s.apply(&MetadataRecord::CreateTopic {
            name: "t".into(),
            id: Uuid::from_u128(9),
            partitions,
            configs: BTreeMap::new(),
        });
        assert!(reassign(&s, "t", 0, Some(&[1]), true).unwrap().is_none());
        assert!(refused(&s, &[0]).contains("single node"));
        assert!(refused(&s, &[0, 1]).contains("single node"));
    }
}
