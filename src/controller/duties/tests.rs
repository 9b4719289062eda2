//! The leader's duties with simulated time: fencing after the session
//! timeout, leaders moved only within the ISR, leaderless partitions and
//! their return, the preferred leader restored.

use std::collections::BTreeMap;

use super::*;
use crate::cluster::{NodeRegistration, ShardId};

const TIMEOUT_MS: u64 = 9_000;

fn settings() -> DutySettings {
    DutySettings {
        session_timeout_ms: TIMEOUT_MS,
        auto_leader_rebalance: true,
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

/// Nodes 1..=3 registered at epochs 1..=3 and unfenced; topic "t" with
/// partition 0 on [1, 2, 3] (led by 1) and partition 1 on [2, 3] (led by 2).
fn cluster() -> Snapshot {
    let mut s = Snapshot::default();
    for id in 1..=3u32 {
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
    let partitions = vec![
        PartitionAssignment::led_by_first(vec![at(1), at(2), at(3)]),
        PartitionAssignment::led_by_first(vec![at(2), at(3)]),
    ];
    let create = MetadataRecord::CreateTopic {
        name: "t".into(),
        id: uuid::Uuid::from_u128(9),
        partitions,
        configs: BTreeMap::new(),
    };
    apply_all(&mut s, &[create]);
    s
}

fn beat(sessions: &mut Sessions, state: &Snapshot, nodes: &[u32], now_ms: u64) {
    for &n in nodes {
        let epoch = state.nodes[&NodeId(n)].epoch;
        sessions.record(Heartbeat { node: NodeId(n), epoch, applied: state.version, want_shutdown: false }, now_ms);
    }
}

fn partition(state: &Snapshot, p: i32) -> PartitionAssignment {
    state.topic("t").unwrap().partition(p).unwrap().clone()
}

#[test]
fn nodes_that_heartbeat_are_never_fenced() {
    let state = cluster();
    let mut sessions = Sessions::new(0);
    for now in (0..60_000).step_by(2_000) {
        beat(&mut sessions, &state, &[1, 2, 3], now);
        assert!(plan(&state, &sessions, now, &settings()).is_empty(), "at {now} ms");
    }
}

#[test]
fn a_silent_node_is_fenced_after_the_session_timeout_and_its_leaderships_move_within_the_isr() {
    let mut state = cluster();
    // Partition 0's ISR is {1, 3}: 2 fell behind, so 2 must never lead it.
    let mut p0 = partition(&state, 0);
    p0.isr = vec![at(1), at(3)];
    p0.partition_epoch += 1;
    apply_all(&mut state, &[MetadataRecord::ChangePartition { name: "t".into(), partition: 0, assignment: p0 }]);
    let mut sessions = Sessions::new(0);
    beat(&mut sessions, &state, &[1, 2, 3], 0);
    // Node 1 stops; the others go on.
    let mut now = 0;
    while now <= TIMEOUT_MS {
        beat(&mut sessions, &state, &[2, 3], now);
        assert!(plan(&state, &sessions, now, &settings()).is_empty(), "not yet at {now} ms");
        now += 1_000;
    }
    beat(&mut sessions, &state, &[2, 3], now);
    let records = plan(&state, &sessions, now, &settings());
    assert!(matches!(records[0], MetadataRecord::FenceNode { node: NodeId(1), epoch: 1 }), "{records:?}");
    apply_all(&mut state, &records);
    let p0 = partition(&state, 0);
    assert_eq!(p0.leader, Some(at(3)), "the in-sync replica leads, not node 2 which is out of sync");
    assert_eq!(p0.isr, vec![at(3)]);
    assert_eq!((p0.leader_epoch, p0.partition_epoch), (1, 2));
    assert_eq!(partition(&state, 1).partition_epoch, 0, "a partition without a replica on node 1 is untouched");
    assert!(plan(&state, &sessions, now, &settings()).is_empty(), "nothing more to do");
}

#[test]
fn the_last_in_sync_replica_stays_in_the_isr_and_leads_again_when_its_node_returns() {
    let mut state = cluster();
    let mut sessions = Sessions::new(0);
    beat(&mut sessions, &state, &[1, 2, 3], 0);
    // Node 2 stops first, then node 3: partition 1 ([2, 3]) has no in-sync replica left.
    beat(&mut sessions, &state, &[1, 3], 5_000);
    let records = plan(&state, &sessions, 10_000, &settings());
    apply_all(&mut state, &records);
    assert!(state.nodes[&NodeId(2)].fenced);
    assert_eq!(partition(&state, 1).leader, Some(at(3)));
    beat(&mut sessions, &state, &[1], 15_000);
    let records = plan(&state, &sessions, 15_000, &settings());
    apply_all(&mut state, &records);
    let p1 = partition(&state, 1);
    assert_eq!(p1.leader, None, "no in-sync replica on a live node: offline, not an unclean election");
    assert_eq!(p1.isr, vec![at(3)], "the ISR is never empty: the last in-sync replica stays");
    let p0 = partition(&state, 0);
    assert_eq!((p0.leader, p0.isr.clone()), (Some(at(1)), vec![at(1)]));

    // Node 2 comes back first: it is out of sync, so the partition stays offline.
    let registration = NodeRegistration { epoch: 40, fenced: true, ..state.nodes[&NodeId(2)].clone() };
    apply_all(&mut state, &[MetadataRecord::RegisterNode { registration }]);
    sessions.record(Heartbeat { node: NodeId(2), epoch: 40, applied: 39, want_shutdown: false }, 16_000);
    assert!(plan(&state, &sessions, 16_000, &settings()).is_empty(), "not caught up with its registration yet");
    sessions.record(Heartbeat { node: NodeId(2), epoch: 40, applied: 40, want_shutdown: false }, 17_000);
    let records = plan(&state, &sessions, 17_000, &settings());
    assert_eq!(records, vec![MetadataRecord::UnfenceNode { node: NodeId(2), epoch: 40 }]);
    apply_all(&mut state, &records);
    assert_eq!(partition(&state, 1).leader, None);

    // Node 3, the last in-sync replica, comes back: it leads again.
    let registration = NodeRegistration { epoch: 50, fenced: true, ..state.nodes[&NodeId(3)].clone() };
    apply_all(&mut state, &[MetadataRecord::RegisterNode { registration }]);
    sessions.record(Heartbeat { node: NodeId(3), epoch: 50, applied: 50, want_shutdown: false }, 18_000);
    let records = plan(&state, &sessions, 18_000, &settings());
    apply_all(&mut state, &records);
    let p1 = partition(&state, 1);
    assert_eq!((p1.leader, p1.isr.clone()), (Some(at(3)), vec![at(3)]));
}

#[test]
fn a_restarted_leader_registers_fenced_and_its_partitions_move_at_once() {
    let mut state = cluster();
    let mut sessions = Sessions::new(0);
    beat(&mut sessions, &state, &[1, 2, 3], 0);
    let registration = NodeRegistration { epoch: 30, fenced: true, ..state.nodes[&NodeId(1)].clone() };
    apply_all(&mut state, &[MetadataRecord::RegisterNode { registration }]);
    let records = plan(&state, &sessions, 1_000, &settings());
    apply_all(&mut state, &records);
    assert_eq!(partition(&state, 0).leader, Some(at(2)), "the old life's leadership is not kept");
}

#[test]
fn the_preferred_leader_is_restored_once_in_sync() {
    let mut state = cluster();
    let moved =
        PartitionAssignment { leader: Some(at(2)), leader_epoch: 1, partition_epoch: 1, ..partition(&state, 0) };
    apply_all(&mut state, &[MetadataRecord::ChangePartition { name: "t".into(), partition: 0, assignment: moved }]);
    let mut sessions = Sessions::new(0);
    beat(&mut sessions, &state, &[1, 2, 3], 100_000);
    assert!(plan(&state, &sessions, 100_000, &settings()).is_empty(), "not before the check interval");
    beat(&mut sessions, &state, &[1, 2, 3], 300_000);
    let records = plan(&state, &sessions, 300_000, &settings());
    apply_all(&mut state, &records);
    let p0 = partition(&state, 0);
    assert_eq!((p0.leader, p0.leader_epoch, p0.partition_epoch), (Some(at(1)), 2, 2));
    let off = DutySettings { auto_leader_rebalance: false, ..settings() };
    let mut back = cluster();
    let moved = PartitionAssignment { leader: Some(at(2)), leader_epoch: 1, partition_epoch: 1, ..partition(&back, 0) };
    apply_all(&mut back, &[MetadataRecord::ChangePartition { name: "t".into(), partition: 0, assignment: moved }]);
    assert!(plan(&back, &sessions, 300_000, &off).is_empty(), "auto.leader.rebalance.enable=false");
    // Out of sync: the preferred replica does not lead.
    let mut out = cluster();
    let p = partition(&out, 0);
    let moved =
        PartitionAssignment { leader: Some(at(2)), isr: vec![at(2), at(3)], leader_epoch: 1, partition_epoch: 1, ..p };
    apply_all(&mut out, &[MetadataRecord::ChangePartition { name: "t".into(), partition: 0, assignment: moved }]);
    assert!(plan(&out, &sessions, 300_000, &settings()).is_empty());
}

#[test]
fn a_node_that_asks_to_shut_down_is_fenced_at_once_and_its_leaderships_move_within_the_isr() {
    let mut state = cluster();
    // Partition 0 ([1, 2, 3], led by 1) has ISR {1, 3}: 2 is behind and must never lead it.
    let mut p0 = partition(&state, 0);
    p0.isr = vec![at(1), at(3)];
    p0.partition_epoch += 1;
    apply_all(&mut state, &[MetadataRecord::ChangePartition { name: "t".into(), partition: 0, assignment: p0 }]);
    let mut sessions = Sessions::new(0);
    beat(&mut sessions, &state, &[1, 2, 3], 0);
    assert!(plan(&state, &sessions, 100, &settings()).is_empty());

    // Node 1 gets SIGTERM: its next heartbeat asks to shut down, well within its session.
    let epoch = state.nodes[&NodeId(1)].epoch;
    sessions.record(Heartbeat { node: NodeId(1), epoch, applied: state.version, want_shutdown: true }, 200);
    let records = plan(&state, &sessions, 200, &settings());
    assert_eq!(records[0], MetadataRecord::FenceNode { node: NodeId(1), epoch }, "{records:?}");
    assert_eq!(records.len(), 2, "the fence and partition 0's move, in one proposal: {records:?}");
    apply_all(&mut state, &records);
    let p0 = partition(&state, 0);
    assert_eq!(p0.leader, Some(at(3)), "the in-sync replica leads, not node 2 which is out of sync");
    assert_eq!(p0.isr, vec![at(3)], "the stopping node leaves the ISR");
    assert_eq!((p0.leader_epoch, p0.partition_epoch), (1, 2));
    let leads_nothing = state.topics.values().flat_map(|t| t.partitions.iter()).all(|a| a.leader != Some(at(1)));
    assert!(leads_nothing);

    // It keeps heartbeating while it finishes what is in flight: it stays fenced.
    for now in (300..5_000).step_by(100) {
        sessions.record(Heartbeat { node: NodeId(1), epoch, applied: state.version, want_shutdown: true }, now);
        beat(&mut sessions, &state, &[2, 3], now);
        assert!(plan(&state, &sessions, now, &settings()).is_empty(), "at {now} ms");
    }

    // It comes back as a new process: registers, catches up and is unfenced as any node.
    let registration = NodeRegistration { epoch: 60, fenced: true, ..state.nodes[&NodeId(1)].clone() };
    apply_all(&mut state, &[MetadataRecord::RegisterNode { registration }]);
    sessions.record(Heartbeat { node: NodeId(1), epoch: 60, applied: 60, want_shutdown: false }, 6_000);
    beat(&mut sessions, &state, &[2, 3], 6_000);
    let records = plan(&state, &sessions, 6_000, &settings());
    assert_eq!(records, vec![MetadataRecord::UnfenceNode { node: NodeId(1), epoch: 60 }]);
}

#[test]
fn a_stopping_node_that_is_the_last_in_sync_replica_leaves_its_partition_leaderless_not_unclean() {
    let mut state = cluster();
    // Partition 1 ([2, 3], led by 2) has ISR {2}: 3 is behind.
    let mut p1 = partition(&state, 1);
    p1.isr = vec![at(2)];
    p1.partition_epoch += 1;
    apply_all(&mut state, &[MetadataRecord::ChangePartition { name: "t".into(), partition: 1, assignment: p1 }]);
    let mut sessions = Sessions::new(0);
    beat(&mut sessions, &state, &[1, 3], 100);
    let epoch = state.nodes[&NodeId(2)].epoch;
    sessions.record(Heartbeat { node: NodeId(2), epoch, applied: state.version, want_shutdown: true }, 100);
    let records = plan(&state, &sessions, 100, &settings());
    apply_all(&mut state, &records);
    let p1 = partition(&state, 1);
    assert_eq!(p1.leader, None, "no other in-sync replica: offline rather than an unclean election");
    assert_eq!(p1.isr, vec![at(2)], "the last in-sync replica stays in the ISR and leads again when it returns");
    let p0 = partition(&state, 0);
    assert_eq!((p0.leader, p0.isr.clone()), (Some(at(1)), vec![at(1), at(3)]), "node 2 left partition 0's ISR");
}
