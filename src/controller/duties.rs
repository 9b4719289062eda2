//! The controller leader's duties (KRaft's ClusterControlManager and
//! ReplicationControlManager), as pure functions of the metadata state, the
//! nodes' sessions and the clock, so they are tested with simulated time:
//!
//! - a node whose heartbeats stopped for `broker.session.timeout.ms` is
//!   fenced, and so is one whose heartbeat asks to shut down (KRaft's
//!   controlled shutdown: BrokerHeartbeat with wantShutDown), at once; a
//!   fenced node that heartbeats, does not want to shut down and has applied
//!   the log up to its own registration is unfenced;
//! - every partition is kept consistent with the fenced set: a replica on a
//!   fenced node leaves the ISR (except the last one, so the ISR is never
//!   empty), and a partition led from a fenced node gets a new leader from
//!   the ISR (never from outside it: `unclean.leader.election.enable` is
//!   false) or none at all, and gets one back when an in-sync replica's node
//!   is unfenced; every change bumps the partition epoch, a new leader the
//!   leader epoch;
//! - leadership moves back to a partition's preferred (first) replica when
//!   it is in sync and its node's share of partitions it does not lead
//!   passes `leader.imbalance.per.broker.percentage` (auto leader rebalance);
//! - a reassignment completes once its target replicas are all in sync
//!   (`reassignment`).

use std::collections::{BTreeMap, HashMap};

use crate::cluster::{NodeId, PartitionAssignment, ReplicaPlacement};
use crate::metadata::{MetadataRecord, Snapshot};

/// What the duties read of the configuration.
#[derive(Debug, Clone)]
pub struct DutySettings {
    pub session_timeout_ms: u64,
    pub auto_leader_rebalance: bool,
    pub imbalance_check_interval_ms: u64,
    /// leader.imbalance.per.broker.percentage (Kafka's default: 10).
    pub imbalance_percentage_max: u32,
}

/// The last heartbeat the controller leader heard from one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub node: NodeId,
    /// The broker epoch of the registration the node heartbeats for.
    pub epoch: i64,
    /// The highest metadata log index the node has applied.
    pub applied: u64,
    /// The node is stopping (SIGTERM): it asks to be fenced and to lead
    /// nothing before it goes (Kafka's wantShutDown).
    pub want_shutdown: bool,
}

/// The sessions the controller leader keeps (in memory only: a new leader
/// gives every node a full session timeout from its election, as Kafka's).
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    /// When this controller became leader.
    pub leader_since_ms: u64,
    last: HashMap<NodeId, (u64, Heartbeat)>,
    /// When the preferred leaders were last checked.
    pub rebalanced_ms: u64,
}

impl Sessions {
    pub fn new(now_ms: u64) -> Sessions {
        Sessions { leader_since_ms: now_ms, last: HashMap::new(), rebalanced_ms: now_ms }
    }

    pub fn record(&mut self, heartbeat: Heartbeat, now_ms: u64) {
        self.last.insert(heartbeat.node, (now_ms, heartbeat));
    }

    /// The node's session for registration `epoch` has run out.
    fn expired(&self, node: NodeId, epoch: i64, now_ms: u64, timeout_ms: u64) -> bool {
        let heard = match self.last.get(&node) {
            Some((at, h)) if h.epoch == epoch => *at,
            _ => self.leader_since_ms,
        };
        now_ms.saturating_sub(heard) > timeout_ms
    }

    /// The node heartbeats for registration `epoch` and has applied the log
    /// up to it (KRaft unfences a broker once caught up), and is not
    /// shutting down.
    fn caught_up(&self, node: NodeId, epoch: i64, now_ms: u64, timeout_ms: u64) -> bool {
        self.last.get(&node).is_some_and(|(at, h)| {
            h.epoch == epoch
                && h.applied >= epoch as u64
                && !h.want_shutdown
                && now_ms.saturating_sub(*at) <= timeout_ms
        })
    }

    /// The node's last heartbeat for registration `epoch` asked to shut down.
    pub fn wants_shutdown(&self, node: NodeId, epoch: i64) -> bool {
        self.last.get(&node).is_some_and(|(_, h)| h.epoch == epoch && h.want_shutdown)
    }
}

/// The records the controller leader proposes now, in one batch: each is
/// checked against the state the ones before it leave.
pub fn plan(state: &Snapshot, sessions: &Sessions, now_ms: u64, settings: &DutySettings) -> Vec<MetadataRecord> {
    let mut work = state.clone();
    let mut records = Vec::new();
    let mut push = |work: &mut Snapshot, record: MetadataRecord| {
        if work.check(&record).is_ok() {
            work.apply(&record);
            records.push(record);
        }
    };
    let timeout = settings.session_timeout_ms;
    let nodes: Vec<_> = work.nodes.values().map(|n| (n.id, n.epoch, n.fenced)).collect();
    for (node, epoch, fenced) in nodes {
        // A node shutting down is fenced like a dead one, in the same batch
        // as the repairs below: one proposal takes it out of every ISR it
        // can leave and moves every leadership it holds to an in-sync replica.
        let leaving = sessions.wants_shutdown(node, epoch);
        if !fenced && (leaving || sessions.expired(node, epoch, now_ms, timeout)) {
            push(&mut work, MetadataRecord::FenceNode { node, epoch });
        } else if fenced && sessions.caught_up(node, epoch, now_ms, timeout) {
            push(&mut work, MetadataRecord::UnfenceNode { node, epoch });
        }
    }
    for (name, partition, assignment) in repairs(&work) {
        push(&mut work, MetadataRecord::ChangePartition { name, partition, assignment });
    }
    for (name, partition, assignment) in super::reassignment::completions(&work) {
        push(&mut work, MetadataRecord::ChangePartition { name, partition, assignment });
    }
    if rebalance_due(sessions, now_ms, settings) {
        for (name, partition, assignment) in preferred_leaders(&work, settings.imbalance_percentage_max) {
            push(&mut work, MetadataRecord::ChangePartition { name, partition, assignment });
        }
    }
    records
}

/// Whether the preferred-leader check ran in this plan (its interval passed).
pub fn rebalance_due(sessions: &Sessions, now_ms: u64, settings: &DutySettings) -> bool {
    settings.auto_leader_rebalance
        && now_ms.saturating_sub(sessions.rebalanced_ms) >= settings.imbalance_check_interval_ms
}

/// A partition as the fenced set wants it, if that differs from what it is.
pub fn repaired(a: &PartitionAssignment, unfenced: impl Fn(NodeId) -> bool) -> Option<PartitionAssignment> {
    let live = |r: &ReplicaPlacement| unfenced(r.node);
    let mut isr: Vec<ReplicaPlacement> = a.isr.iter().copied().filter(live).collect();
    if isr.is_empty() {
        // The last in-sync replica stays in the ISR, fenced or not: it has
        // everything that was acknowledged, and leads again when it returns.
        let last = a.leader.filter(|l| a.in_sync(*l)).or_else(|| a.isr.first().copied());
        isr.extend(last);
    }
    let leader = match a.leader {
        Some(l) if isr.contains(&l) && live(&l) => Some(l),
        // A new leader from the ISR only, in the replicas' (preference) order.
        _ => a.replicas.iter().copied().find(|r| isr.contains(r) && live(r)),
    };
    if isr == a.isr && leader == a.leader {
        return None;
    }
    let leader_epoch = a.leader_epoch + i32::from(leader != a.leader);
    let changed =
        PartitionAssignment { isr, leader, leader_epoch, partition_epoch: a.partition_epoch + 1, ..a.clone() };
    debug_assert_eq!(changed.invalid(), None, "a repaired partition is valid: {changed:?}");
    Some(changed)
}

fn repairs(state: &Snapshot) -> Vec<(String, i32, PartitionAssignment)> {
    let unfenced = |node| state.is_unfenced(node);
    state
        .topics
        .values()
        .flat_map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .filter_map(move |(p, a)| repaired(a, unfenced).map(|c| (t.name.clone(), p as i32, c)))
        })
        .collect()
}

/// Partitions whose leadership goes back to their preferred replica: on
/// nodes where the share of partitions preferring them but led elsewhere
/// passes `percentage_max`, every such partition whose preferred replica is
/// in sync and unfenced.
fn preferred_leaders(state: &Snapshot, percentage_max: u32) -> Vec<(String, i32, PartitionAssignment)> {
    let mut preferring: BTreeMap<NodeId, (u32, u32)> = BTreeMap::new();
    for a in state.topics.values().flat_map(|t| t.partitions.iter()) {
        if let Some(preferred) = a.preferred_leader() {
            let counts = preferring.entry(preferred.node).or_default();
            counts.0 += 1;
            counts.1 += u32::from(a.leader != Some(preferred));
        }
    }
    let imbalanced =
        |node: NodeId| preferring.get(&node).is_some_and(|(all, elsewhere)| *elsewhere * 100 > *all * percentage_max);
    let mut moves = Vec::new();
    for t in state.topics.values() {
        for (p, a) in t.partitions.iter().enumerate() {
            let Some(preferred) = a.preferred_leader() else { continue };
            if a.leader != Some(preferred)
                && a.in_sync(preferred)
                && state.is_unfenced(preferred.node)
                && imbalanced(preferred.node)
            {
                let assignment = PartitionAssignment {
                    leader: Some(preferred),
                    leader_epoch: a.leader_epoch + 1,
                    partition_epoch: a.partition_epoch + 1,
                    ..a.clone()
                };
                moves.push((t.name.clone(), p as i32, assignment));
            }
        }
    }
    moves
}

#[cfg(test)]
mod tests;
