//! Where the replicas of a new partition go in a cluster: one per node,
//! over the registered, unfenced nodes, on the shard of each node that
//! `cluster::place` picks. The first replica (the preferred leader) rotates
//! with the partition, so leaders spread over the nodes as Kafka's
//! rack-unaware assignment spreads them.

use super::{MetadataError, Snapshot};
use crate::cluster::{place, NodeId, NodeRegistration, PartitionAssignment, ReplicaPlacement};

/// Assignments of partitions `first..first + count` of `topic` with
/// `replication_factor` replicas each.
pub fn spread_replicas(
    snapshot: &Snapshot,
    topic: &str,
    first: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<PartitionAssignment>, MetadataError> {
    let nodes: Vec<&NodeRegistration> = snapshot.unfenced_nodes().collect();
    let factor = usize::try_from(replication_factor).unwrap_or(0);
    if factor == 0 || factor > nodes.len() {
        return Err(MetadataError::ReplicationFactor { asked: replication_factor, available: nodes.len() });
    }
    let assignments = (first..first + count)
        .map(|partition| {
            // The same deterministic spread `place` gives shards, over nodes.
            let start = place(topic, partition, NodeId(0), nodes.len()).replicas[0].shard.0 as usize;
            let replicas = (0..factor)
                .map(|i| {
                    let node = nodes[(start + i) % nodes.len()];
                    place(topic, partition, node.id, node.shards as usize).replicas[0]
                })
                .collect();
            PartitionAssignment::led_by_first(replicas)
        })
        .collect();
    Ok(assignments)
}

/// Assignments given as Kafka broker ids per partition (kafka-topics
/// --replica-assignment), starting at partition `first`: each broker must be
/// a shard of a registered node.
pub fn assign_replicas(
    snapshot: &Snapshot,
    first: i32,
    brokers: &[Vec<i32>],
) -> Result<Vec<PartitionAssignment>, MetadataError> {
    brokers
        .iter()
        .zip(first..)
        .map(|(ids, partition)| {
            let replicas = ids
                .iter()
                .map(|&broker| {
                    ReplicaPlacement::from_broker_id(broker)
                        .filter(|at| snapshot.nodes.get(&at.node).is_some_and(|n| n.replica(at.shard).is_some()))
                        .ok_or(MetadataError::UnknownBroker { partition, broker })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(PartitionAssignment::led_by_first(replicas))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MetadataRecord;

    pub(crate) fn cluster(nodes: &[(u32, bool)]) -> Snapshot {
        let mut s = Snapshot::default();
        for &(id, fenced) in nodes {
            let registration = NodeRegistration {
                id: NodeId(id),
                incarnation: uuid::Uuid::from_u128(id as u128),
                epoch: id as i64,
                host: format!("127.0.0.{id}"),
                port: 9092,
                shards: 2,
                fenced,
                skipped_port: None,
            };
            s.apply(&MetadataRecord::RegisterNode { registration });
        }
        s
    }

    #[test]
    fn replicas_go_one_per_unfenced_node_and_leaders_rotate() {
        let s = cluster(&[(1, false), (2, false), (3, false), (4, true)]);
        let assignments = spread_replicas(&s, "t", 0, 6, 3).unwrap();
        for a in &assignments {
            assert_eq!(a.invalid(), None);
            let mut nodes: Vec<u32> = a.replicas.iter().map(|r| r.node.0).collect();
            nodes.sort();
            assert_eq!(nodes, [1, 2, 3], "one replica per unfenced node, none on the fenced one");
            assert!(a.replicas.iter().all(|r| r.shard.0 < 2));
        }
        let leaders: std::collections::BTreeSet<u32> = assignments.iter().map(|a| a.leader.unwrap().node.0).collect();
        assert_eq!(leaders.len(), 3, "leaders spread over the nodes");
        let too_many = spread_replicas(&s, "t", 0, 1, 4);
        assert!(matches!(too_many, Err(MetadataError::ReplicationFactor { asked: 4, available: 3 })));
        assert!(spread_replicas(&s, "t", 0, 1, 0).is_err());
    }

    #[test]
    fn explicit_assignments_name_shards_of_registered_nodes() {
        let s = cluster(&[(1, false), (2, false)]);
        let a = assign_replicas(&s, 0, &[vec![2001, 1000]]).unwrap();
        assert_eq!(a[0].leader, Some(ReplicaPlacement::new(NodeId(2), crate::cluster::ShardId(1))));
        assert!(matches!(
            assign_replicas(&s, 3, &[vec![1002]]),
            Err(MetadataError::UnknownBroker { partition: 3, broker: 1002 })
        ));
        assert!(matches!(assign_replicas(&s, 0, &[vec![3000]]), Err(MetadataError::UnknownBroker { .. })));
    }
}
