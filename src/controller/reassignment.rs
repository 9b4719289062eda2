//! The controller leader's reassignment duty (KRaft's
//! `ReplicationControlManager`, KIP-455): a partition whose reassignment is
//! under way completes once every target replica is in its ISR (the new
//! replicas got there by the leader's ISR expansion, fetching like any
//! follower). Completing sets the replicas to the target, drops the removed
//! ones from the ISR and, if the leader was removed, elects the target's
//! first in-sync replica; the removed replicas' shards then close and
//! delete their copies when they apply the snapshot (Kafka's StopReplica
//! with delete). A pure function of the state, run in every duty plan.

use crate::cluster::PartitionAssignment;
use crate::metadata::Snapshot;

/// Every partition whose reassignment can complete now, completed.
pub fn completions(state: &Snapshot) -> Vec<(String, i32, PartitionAssignment)> {
    let live = |node| state.is_unfenced(node);
    let mut done = Vec::new();
    for topic in state.topics.values() {
        for (p, a) in topic.partitions.iter().enumerate().filter(|(_, a)| a.is_reassigning()) {
            if let Some(completed) = a.reassignment_completed(live) {
                tracing::info!(
                    topic = %topic.name,
                    partition = p,
                    replicas = ?completed.replicas.iter().map(|r| r.broker_id()).collect::<Vec<_>>(),
                    "reassignment complete"
                );
                done.push((topic.name.clone(), p as i32, completed));
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::duties::{plan, DutySettings, Heartbeat, Sessions};
    use super::*;
    use crate::cluster::{NodeId, NodeRegistration, ReplicaPlacement, ShardId};
    use crate::metadata::{reassign, MetadataRecord};

    const TIMEOUT_MS: u64 = 9_000;

    fn settings() -> DutySettings {
        DutySettings {
            session_timeout_ms: TIMEOUT_MS,
            auto_leader_rebalance: false,
            imbalance_check_interval_ms: 300_000,
            imbalance_percentage_max: 10,
        }
    }

    fn at(node: u32) -> ReplicaPlacement {
        ReplicaPlacement::new(NodeId(node), ShardId(0))
    }

    fn apply_all(state: &mut Snapshot, records: &[MetadataRecord]) {
        for r in records {
            state.check(r).unwrap_or_else(|e| panic!("{r:?}: {e}"));
            state.apply(r);
        }
    }

    /// Nodes 1..=4, unfenced; topic "t" partition 0 on [1, 2], led by 1.
    fn cluster() -> Snapshot {
        let mut s = Snapshot::default();
        for id in 1..=4u32 {
            let registration = NodeRegistration {
                id: NodeId(id),
                incarnation: uuid::Uuid::from_u128(id as u128),
                epoch: id as i64,
                host: "h".into(),
                port: 9092,
                shards: 1,
                fenced: true,
                skipped_port: None,
            };
            apply_all(&mut s, &[MetadataRecord::RegisterNode { registration }]);
            apply_all(&mut s, &[MetadataRecord::UnfenceNode { node: NodeId(id), epoch: id as i64 }]);
        }
        let partitions = vec![PartitionAssignment::led_by_first(vec![at(1), at(2)])];
        let id = uuid::Uuid::from_u128(9);
        apply_all(
            &mut s,
            &[MetadataRecord::CreateTopic { name: "t".into(), id, partitions, configs: BTreeMap::new() }],
        );
        s
    }

    fn partition(state: &Snapshot) -> PartitionAssignment {
        state.topic("t").unwrap().partition(0).unwrap().clone()
    }

    /// Every node heartbeats at `now_ms`, except `silent`.
    fn sessions(state: &Snapshot, silent: &[u32], now_ms: u64) -> Sessions {
        let mut sessions = Sessions::new(0);
        for n in (1..=4).filter(|n| !silent.contains(n)) {
            let epoch = state.nodes[&NodeId(n)].epoch;
            sessions.record(Heartbeat { node: NodeId(n), epoch, applied: state.version, want_shutdown: false }, now_ms);
        }
        sessions
    }

    /// What the leader's ISR task proposes once `joining` caught up.
    fn expand_isr(state: &mut Snapshot, joining: ReplicaPlacement) {
        let a = partition(state);
        let mut isr = a.isr.clone();
        isr.push(joining);
        let assignment = PartitionAssignment { isr, partition_epoch: a.partition_epoch + 1, ..a };
        apply_all(state, &[MetadataRecord::ChangePartition { name: "t".into(), partition: 0, assignment }]);
    }

    #[test]
    fn a_reassignment_completes_only_once_the_new_replica_is_in_sync() {
        let mut state = cluster();
        let begin = reassign(&state, "t", 0, Some(&[1000, 4000]), true).unwrap().unwrap();
        apply_all(&mut state, &[begin]);
        // The new replica fetches for a while: the duty leaves the partition as it is.
        for now in (1_000..8_000).step_by(1_000) {
            assert_eq!(plan(&state, &sessions(&state, &[], now), now, &settings()), []);
        }
        assert_eq!(partition(&state).replicas, [at(1), at(4), at(2)]);
        // An ISR change made on the state before the reassignment is refused.
        let stale = PartitionAssignment { partition_epoch: 1, ..cluster().topic("t").unwrap().partitions[0].clone() };
        let stale = MetadataRecord::ChangePartition { name: "t".into(), partition: 0, assignment: stale };
        assert!(state.check(&stale).is_err());
        expand_isr(&mut state, at(4));
        let records = plan(&state, &sessions(&state, &[], 8_000), 8_000, &settings());
        apply_all(&mut state, &records);
        let done = partition(&state);
        assert_eq!((done.replicas.as_slice(), done.isr.as_slice()), (&[at(1), at(4)][..], &[at(1), at(4)][..]));
        assert!(!done.is_reassigning());
        assert_eq!(plan(&state, &sessions(&state, &[], 9_000), 9_000, &settings()), [], "done once");
    }

    #[test]
    fn a_removed_leader_hands_over_when_the_reassignment_completes() {
        let mut state = cluster();
        let record = reassign(&state, "t", 0, Some(&[3000, 4000]), true).unwrap().unwrap();
        apply_all(&mut state, &[record]);
        let begun = partition(&state);
        assert_eq!(
            (begun.adding_replicas.as_slice(), begun.removing_replicas.as_slice()),
            (&[at(3), at(4)][..], &[at(1), at(2)][..])
        );
        expand_isr(&mut state, at(4));
        assert_eq!(completions(&state), [], "node 3 is not in sync yet");
        expand_isr(&mut state, at(3));
        let records = plan(&state, &sessions(&state, &[], 1_000), 1_000, &settings());
        apply_all(&mut state, &records);
        let done = partition(&state);
        assert_eq!((done.replicas.as_slice(), done.leader), (&[at(3), at(4)][..], Some(at(3))));
        assert_eq!(done.leader_epoch, 1);
    }

    #[test]
    fn a_new_replica_whose_node_dies_holds_the_reassignment_until_cancelled() {
        let mut state = cluster();
        let record = reassign(&state, "t", 0, Some(&[1000, 4000]), true).unwrap().unwrap();
        apply_all(&mut state, &[record]);
        // Node 4 stops heartbeating: fenced, never in sync, the reassignment waits.
        let now = TIMEOUT_MS + 1_000;
        let records = plan(&state, &sessions(&state, &[4], now), now, &settings());
        apply_all(&mut state, &records);
        assert!(!state.is_unfenced(NodeId(4)));
        assert!(partition(&state).is_reassigning());
        assert!(
            matches!(
                reassign(&state, "t", 0, Some(&[1000, 4000, 3000]), true),
                Err(crate::metadata::MetadataError::InvalidReassignment { .. })
            ),
            "a new target may not keep a replica on the fenced node 4"
        );
        let record = reassign(&state, "t", 0, None, true).unwrap().unwrap();
        apply_all(&mut state, &[record]);
        let back = partition(&state);
        assert_eq!((back.replicas.as_slice(), back.is_reassigning()), (&[at(1), at(2)][..], false));
    }
}
