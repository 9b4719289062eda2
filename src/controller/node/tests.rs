//! Three controllers in memory with simulated time and a network the test
//! controls: election, commit, leader loss and re-election, a minority that
//! cannot commit, registration and fencing end to end, restart from disk.

use std::collections::{BTreeMap, HashSet};

use super::*;
use crate::cluster::{PartitionAssignment, ReplicaPlacement, ShardId};
use crate::metadata::MetadataError;

const SESSION_MS: u64 = 3_000;

struct Sim {
    dirs: Vec<tempfile::TempDir>,
    nodes: Vec<Option<ControllerNode>>,
    snapshots: Vec<watch::Receiver<Arc<Snapshot>>>,
    /// Nodes cut off from every other (messages to and from them are lost).
    cut: HashSet<u32>,
    now_ms: u64,
}

fn settings(me: u32) -> NodeSettings {
    NodeSettings {
        me: NodeId(me),
        voters: vec![NodeId(1), NodeId(2), NodeId(3)],
        registration: NodeRegistration {
            id: NodeId(me),
            incarnation: Uuid::new_v4(),
            epoch: 0,
            host: format!("127.0.0.{me}"),
            port: 9092,
            shards: 2,
            fenced: true,
            skipped_port: None,
        },
        duties: DutySettings {
            session_timeout_ms: SESSION_MS,
            auto_leader_rebalance: true,
            imbalance_check_interval_ms: 5_000,
            imbalance_percentage_max: 10,
        },
        heartbeat_interval_ms: 500,
        proposal_timeout_ms: 5_000,
        internal_topic: None,
    }
}

fn open(dir: &std::path::Path, me: u32) -> (ControllerNode, watch::Receiver<Arc<Snapshot>>) {
    let storage = DurableStorage::open(dir, &[1, 2, 3].map(|n| raft_id(NodeId(n)))).unwrap();
    let (published, snapshots) = watch::channel(Arc::new(Snapshot::default()));
    (ControllerNode::new(storage, settings(me), published).unwrap(), snapshots)
}

impl Sim {
    fn new() -> Sim {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let (nodes, snapshots) = (1..=3).map(|n| open(dirs[n - 1].path(), n as u32)).map(|(n, s)| (Some(n), s)).unzip();
        Sim { dirs, nodes, snapshots, cut: HashSet::new(), now_ms: 0 }
    }

    fn node(&mut self, n: u32) -> &mut ControllerNode {
        self.nodes[n as usize - 1].as_mut().expect("a running node")
    }

    /// One tick of every running node, and every message delivered until none is left.
    fn step(&mut self) {
        self.now_ms += TICK_MS;
        let now = self.now_ms;
        let mut out = Outbox::default();
        for node in self.nodes.iter_mut().flatten() {
            node.tick(now, &mut out);
            node.drive(now, &mut out).unwrap();
        }
        let mut rounds = 0;
        while !out.messages.is_empty() || !out.heartbeats.is_empty() {
            rounds += 1;
            assert!(rounds < 1_000, "messages never settle");
            let (messages, heartbeats) = (std::mem::take(&mut out.messages), std::mem::take(&mut out.heartbeats));
            for m in messages {
                let (from, to) = (node_of(m.from).unwrap().0, node_of(m.to).unwrap().0);
                if self.cut.contains(&from) || self.cut.contains(&to) {
                    continue;
                }
                if let Some(node) = self.nodes[to as usize - 1].as_mut() {
                    node.step(m);
                    node.drive(now, &mut out).unwrap();
                }
            }
            for (to, heartbeat) in heartbeats {
                if self.cut.contains(&to.0) || self.cut.contains(&heartbeat.node.0) {
                    continue;
                }
                if let Some(node) = self.nodes[to.0 as usize - 1].as_mut() {
                    node.heartbeat(heartbeat, now);
                }
            }
        }
    }

    fn run_until(&mut self, what: &str, ms_max: u64, mut done: impl FnMut(&mut Sim) -> bool) {
        let until = self.now_ms + ms_max;
        while !done(self) {
            assert!(self.now_ms < until, "{what}: not within {ms_max} ms");
            self.step();
        }
    }

    fn leader(&self) -> Option<u32> {
        let leaders: Vec<u32> =
            self.nodes.iter().flatten().filter(|n| n.is_leader()).map(|n| n.settings.me.0).collect();
        assert!(leaders.len() <= 1 || !self.cut.is_empty(), "two leaders at once without a partition: {leaders:?}");
        leaders.into_iter().find(|l| !self.cut.contains(l))
    }

    /// Proposes through node `n` and runs until it is answered.
    fn propose(&mut self, n: u32, records: Vec<MetadataRecord>) -> Result<Arc<Snapshot>, ControllerError> {
        let (reply, mut answer) = oneshot::channel();
        let now = self.now_ms;
        self.node(n).propose(records, Some(reply), now);
        for _ in 0..100 {
            self.step();
            if let Ok(result) = answer.try_recv() {
                return result;
            }
        }
        panic!("proposal through node {n} never answered");
    }

    fn crash(&mut self, n: u32) {
        self.nodes[n as usize - 1] = None;
    }

    fn restart(&mut self, n: u32) {
        let (node, snapshots) = open(self.dirs[n as usize - 1].path(), n);
        self.nodes[n as usize - 1] = Some(node);
        self.snapshots[n as usize - 1] = snapshots;
    }

    fn all_serving(&mut self) -> bool {
        self.nodes.iter().flatten().all(|n| n.registered() && n.state().is_unfenced(n.settings.me))
    }
}

fn topic(name: &str, replicas: Vec<ReplicaPlacement>) -> MetadataRecord {
    let partitions = vec![PartitionAssignment::led_by_first(replicas)];
    MetadataRecord::CreateTopic { name: name.into(), id: Uuid::new_v4(), partitions, configs: BTreeMap::new() }
}

fn at(node: u32) -> ReplicaPlacement {
    ReplicaPlacement::new(NodeId(node), ShardId(0))
}

#[test]
fn three_nodes_elect_a_leader_register_and_commit_on_every_node() {
    let mut sim = Sim::new();
    sim.run_until("a leader", 5_000, |s| s.leader().is_some());
    sim.run_until("every node registered and unfenced", 10_000, Sim::all_serving);
    let leader = sim.leader().unwrap();
    let state = sim.node(leader).state().clone();
    assert_eq!(state.controller, Some(NodeId(leader)), "the log names the controller");
    assert!(state.cluster_id.is_some(), "the first leader fixes the cluster id");
    let epochs: Vec<i64> = (1..=3).map(|n| state.nodes[&NodeId(n)].epoch).collect();
    assert!(
        epochs.iter().all(|e| *e > 0) && epochs.windows(2).all(|w| w[0] != w[1]),
        "epochs are log indexes: {epochs:?}"
    );

    // A change proposed through a follower is forwarded, committed and applied everywhere.
    let follower = (1..=3).find(|n| *n != leader).unwrap();
    let after = sim.propose(follower, vec![topic("t", vec![at(1), at(2), at(3)])]).unwrap();
    assert!(after.topic("t").is_some(), "answered with the state that holds it");
    sim.run_until("every node applied it", 2_000, |s| s.snapshots.iter().all(|r| r.borrow().topic("t").is_some()));
    let refused = sim.propose(leader, vec![topic("t", vec![at(1)])]);
    assert!(matches!(refused, Err(ControllerError::Metadata(MetadataError::TopicExists(_)))), "{refused:?}");
    let versions: HashSet<u64> = sim.nodes.iter().flatten().map(|n| n.state().version).collect();
    assert_eq!(versions.len(), 1, "every node holds the same state");
}

#[test]
fn a_lost_leader_is_replaced_its_node_fenced_and_a_minority_cannot_commit() {
    let mut sim = Sim::new();
    sim.run_until("all serving", 15_000, Sim::all_serving);
    sim.propose(1, vec![topic("t", vec![at(1), at(2), at(3)])]).unwrap();
    let old = sim.leader().unwrap();
    sim.cut.insert(old);
    sim.run_until("a new leader among the majority", 5_000, |s| s.leader().is_some_and(|l| l != old));
    let new = sim.leader().unwrap();
    // The cut-off old leader cannot commit anything.
    let (reply, mut answer) = oneshot::channel();
    let now = sim.now_ms;
    sim.node(old).propose(vec![topic("minority", vec![at(old)])], Some(reply), now);
    // The majority commits; after the session timeout the old leader's node is fenced.
    sim.propose(new, vec![topic("majority", vec![at(new)])]).unwrap();
    sim.run_until("the silent node fenced", 2 * SESSION_MS + 2_000, |s| {
        s.nodes[new as usize - 1].as_ref().unwrap().state().nodes[&NodeId(old)].fenced
    });
    let state = sim.node(new).state().clone();
    let p0 = state.topic("t").unwrap().partition(0).unwrap().clone();
    assert!(p0.leader.is_some_and(|l| l.node != NodeId(old)), "{p0:?}");
    assert!(!p0.isr.contains(&at(old)));
    sim.run_until("the minority's proposal times out", 6_000, |_| answer.try_recv().is_ok());
    assert!(sim.node(new).state().topic("minority").is_none(), "a minority never commits");

    // The node comes back: it catches up, heartbeats and is unfenced (not re-registered: same process).
    sim.cut.clear();
    sim.run_until("the returning node unfenced", 10_000, |s| {
        s.nodes[new as usize - 1].as_ref().unwrap().state().is_unfenced(NodeId(old))
    });
    assert!(sim.node(old).state().topic("majority").is_some(), "it caught up with what it missed");
    assert!(sim.node(old).state().topic("minority").is_none());
}

#[test]
fn a_restarted_node_replays_its_log_and_registers_with_a_new_epoch() {
    let mut sim = Sim::new();
    sim.run_until("all serving", 15_000, Sim::all_serving);
    sim.propose(2, vec![topic("kept", vec![at(1), at(2), at(3)])]).unwrap();
    let before = sim.node(1).state().nodes[&NodeId(3)].epoch;
    sim.crash(3);
    sim.restart(3);
    assert!(sim.node(3).state().topic("kept").is_some() || sim.node(3).applied() == 0);
    sim.run_until("node 3 registered again", 10_000, |s| {
        let state = s.nodes[0].as_ref().unwrap().state();
        state.nodes[&NodeId(3)].epoch > before && s.nodes[2].as_ref().unwrap().registered()
    });
    sim.run_until("node 3 unfenced", 10_000, Sim::all_serving);
    assert!(sim.node(3).state().topic("kept").is_some(), "its log replayed");

    // The whole quorum restarts: everything committed is still there.
    for n in 1..=3 {
        sim.crash(n);
    }
    for n in 1..=3 {
        sim.restart(n);
    }
    sim.run_until("a leader after a full restart", 5_000, |s| s.leader().is_some());
    sim.run_until("all serving again", 15_000, Sim::all_serving);
    assert!(sim.node(1).state().topic("kept").is_some());
    let cluster_ids: HashSet<_> = sim.nodes.iter().flatten().map(|n| n.state().cluster_id.clone()).collect();
    assert_eq!(cluster_ids.len(), 1, "one cluster id, kept across restarts");
}

#[test]
fn a_long_log_is_compacted_and_a_node_that_missed_it_gets_the_snapshot() {
    let mut sim = Sim::new();
    sim.run_until("all serving", 15_000, Sim::all_serving);
    let leader = sim.leader().unwrap();
    // A follower cut off while the log grows past the bound and is compacted.
    let lagging = (1..=3).find(|n| *n != leader).unwrap();
    sim.cut.insert(lagging);
    for i in 0..(LOG_ENTRIES_MAX as i64 / 64 + 2) {
        // Many records per entry would not grow the log: one entry each.
        for j in 0..64 {
            let (reply, _answer) = oneshot::channel();
            let now = sim.now_ms;
            sim.node(leader).propose(vec![topic(&format!("t{i}-{j}"), vec![at(leader)])], Some(reply), now);
        }
        sim.step();
    }
    sim.run_until("compacted", 5_000, |s| {
        s.nodes[leader as usize - 1].as_ref().unwrap().raw.store().entries_held() < LOG_ENTRIES_MAX
    });
    sim.cut.clear();
    sim.run_until("the lagging node caught up", 20_000, |s| {
        let behind = s.nodes[lagging as usize - 1].as_ref().unwrap().state();
        behind.topics.len() == s.nodes[leader as usize - 1].as_ref().unwrap().state().topics.len()
    });
    sim.crash(lagging);
    sim.restart(lagging);
    assert!(sim.node(lagging).state().topics.len() > LOG_ENTRIES_MAX / 2, "restored from its snapshot");
}

#[test]
fn a_node_shutting_down_is_fenced_and_its_leaderships_move_well_within_its_session() {
    for stopping_leader in [false, true] {
        let mut sim = Sim::new();
        sim.run_until("all serving", 15_000, Sim::all_serving);
        let leader = sim.leader().unwrap();
        let stopping = if stopping_leader { leader } else { (1..=3).find(|n| *n != leader).unwrap() };
        let replicas: Vec<_> = [stopping].into_iter().chain((1..=3).filter(|n| *n != stopping)).map(at).collect();
        sim.propose(leader, vec![topic("t", replicas)]).unwrap();
        sim.node(stopping).begin_shutdown();
        let started = sim.now_ms;
        sim.run_until("the stopping node fenced in its own state", SESSION_MS / 2, |s| {
            s.snapshots[stopping as usize - 1].borrow().nodes[&NodeId(stopping)].fenced
        });
        assert!(sim.now_ms - started < SESSION_MS, "fenced on request, not by the session timeout");
        let state = sim.snapshots[stopping as usize - 1].borrow().clone();
        let p0 = state.topic("t").unwrap().partition(0).unwrap().clone();
        assert!(p0.leader.is_some_and(|l| l.node != NodeId(stopping)), "moved to an in-sync replica: {p0:?}");
        assert!(!p0.isr.contains(&at(stopping)), "{p0:?}");
        // It keeps heartbeating until it stops: it is not unfenced meanwhile.
        for _ in 0..20 {
            sim.step();
        }
        assert!(sim.snapshots[stopping as usize - 1].borrow().nodes[&NodeId(stopping)].fenced);
        // A quorum leader that stops has handed the leadership over by then,
        // and the new leader's ChangeController is what the node sees.
        let controller = sim.snapshots[stopping as usize - 1].borrow().controller;
        assert!(controller.is_some_and(|c| c != NodeId(stopping)), "controller {controller:?}");
        assert!(sim.leader().is_some_and(|l| l != stopping));
        // A new process on that node registers again and is unfenced as usual.
        sim.crash(stopping);
        sim.restart(stopping);
        sim.run_until("the restarted node serving", 15_000, Sim::all_serving);
    }
}
