//! What a leading replica knows of its followers, and the rules it applies
//! with it (Kafka's `Partition` with its `Replica` states): where each
//! follower's log ends, when it was last caught up, the high watermark they
//! allow, who leaves and who joins the ISR. Pure functions of that state and
//! a clock, so that the rules are tested with simulated time; the replica
//! (replica.rs) holds the state and the shard's ISR task acts on the answers.

use std::collections::BTreeMap;

use crate::cluster::{NodeId, NodeRegistration, PartitionAssignment, ReplicaPlacement};

/// The broker epoch of a fetch that carries none (Fetch before v15): not
/// checked, as Kafka does not.
pub const BROKER_EPOCH_UNKNOWN: i64 = -1;

/// Who sends a follower fetch: the replica, and the broker epoch its node was
/// registered with when it sent it (Fetch v15+ `replica_state`, KIP-903).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerId {
    pub at: ReplicaPlacement,
    pub broker_epoch: i64,
}

/// One follower as its leader sees it, from its fetches (Kafka's
/// `ReplicaState`). A follower that has not fetched since this replica
/// began leading has no known log end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    pub at: ReplicaPlacement,
    /// The follower's fetch offset: it holds every offset below it. -1 until its first fetch.
    pub log_end_offset: i64,
    /// The leader's log end when the follower last fetched (Kafka's
    /// lastFetchLeaderLogEndOffset), and when that was.
    pub last_fetch_leader_end: i64,
    pub last_fetch_ms: i64,
    /// The last time the follower had everything the leader had: what
    /// `replica.lag.time.max.ms` is measured from.
    pub last_caught_up_ms: i64,
    /// The broker epoch its last fetch carried: it joins the ISR only while
    /// that is its node's registered one (KIP-903).
    pub broker_epoch: i64,
}

impl FollowerProgress {
    /// A follower of a replica that began leading at `now_ms`: counted as
    /// caught up then (Kafka resets every follower's state so that the new
    /// leader gives each one lag time before it leaves the ISR).
    pub fn new(at: ReplicaPlacement, now_ms: i64) -> FollowerProgress {
        FollowerProgress {
            at,
            log_end_offset: -1,
            last_fetch_leader_end: -1,
            last_fetch_ms: now_ms,
            last_caught_up_ms: now_ms,
            broker_epoch: BROKER_EPOCH_UNKNOWN,
        }
    }

    /// A fetch from `fetch_offset` at `now_ms`, the leader's log end then
    /// being `leader_end` (Kafka's `updateFetchState`): caught up now if it
    /// asked from the leader's end, or caught up at its previous fetch if it
    /// now asks from where the leader ended then.
    pub fn fetched(&mut self, fetch_offset: i64, leader_end: i64, now_ms: i64, broker_epoch: i64) {
        if fetch_offset >= leader_end {
            self.last_caught_up_ms = self.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= self.last_fetch_leader_end {
            self.last_caught_up_ms = self.last_caught_up_ms.max(self.last_fetch_ms);
        }
        self.log_end_offset = fetch_offset;
        self.last_fetch_leader_end = leader_end;
        self.last_fetch_ms = now_ms;
        self.broker_epoch = broker_epoch;
    }
}

/// The followers of one leading replica, in the order of the partition's replicas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Followers {
    pub progress: Vec<FollowerProgress>,
}

impl Followers {
    /// The followers of `assignment` led from `here`, keeping what is known of
    /// those that followed before (`previous`); new ones start at `now_ms`.
    pub fn of(
        assignment: &PartitionAssignment,
        here: ReplicaPlacement,
        previous: &Followers,
        now_ms: i64,
    ) -> Followers {
        let progress = assignment
            .replicas
            .iter()
            .filter(|r| **r != here)
            .map(|r| previous.get(*r).copied().unwrap_or_else(|| FollowerProgress::new(*r, now_ms)))
            .collect();
        Followers { progress }
    }

    pub fn get(&self, at: ReplicaPlacement) -> Option<&FollowerProgress> {
        self.progress.iter().find(|p| p.at == at)
    }

    pub fn get_mut(&mut self, at: ReplicaPlacement) -> Option<&mut FollowerProgress> {
        self.progress.iter_mut().find(|p| p.at == at)
    }
}

/// The offset every in-sync replica holds: the minimum of the leader's
/// written end and the log ends of the in-sync followers (Kafka's
/// `maybeIncrementLeaderHW`). An in-sync follower that has not fetched yet
/// holds it at `current`: the high watermark never moves back.
pub fn high_watermark(current: i64, leader_written_end: i64, isr: &[ReplicaPlacement], followers: &Followers) -> i64 {
    let in_sync_ends = followers.progress.iter().filter(|p| isr.contains(&p.at)).map(|p| p.log_end_offset);
    let candidate = in_sync_ends.fold(leader_written_end, i64::min);
    current.max(candidate)
}

/// The in-sync followers that have not been caught up for longer than
/// `lag_time_max_ms` (Kafka's `getOutOfSyncReplicas`): they leave the ISR.
pub fn out_of_sync(
    isr: &[ReplicaPlacement],
    followers: &Followers,
    now_ms: i64,
    lag_time_max_ms: u64,
) -> Vec<ReplicaPlacement> {
    let lag_max = i64::try_from(lag_time_max_ms).unwrap_or(i64::MAX);
    followers
        .progress
        .iter()
        .filter(|p| isr.contains(&p.at) && now_ms.saturating_sub(p.last_caught_up_ms) > lag_max)
        .map(|p| p.at)
        .collect()
}

/// The followers out of the ISR that hold everything up to the high
/// watermark and what this leader's epoch began with (Kafka's
/// `isFollowerInSync`): they join it. A follower still behind the epoch's
/// start may hold a diverging tail of an older leader's, so it waits. So
/// does one whose node is not registered and unfenced with the broker epoch
/// its fetches carried (KIP-903: progress from a previous life of the
/// process, which lost what it had not flushed, must not make it in sync).
pub fn caught_up(
    isr: &[ReplicaPlacement],
    followers: &Followers,
    high_watermark: i64,
    epoch_start_offset: i64,
    nodes: &BTreeMap<NodeId, NodeRegistration>,
) -> Vec<ReplicaPlacement> {
    followers
        .progress
        .iter()
        .filter(|p| {
            !isr.contains(&p.at)
                && p.log_end_offset >= high_watermark
                && p.log_end_offset >= epoch_start_offset
                && may_join_isr(p, nodes)
        })
        .map(|p| p.at)
        .collect()
}

/// Kafka's `isReplicaIsrEligible` with KIP-903's broker epoch check.
fn may_join_isr(progress: &FollowerProgress, nodes: &BTreeMap<NodeId, NodeRegistration>) -> bool {
    nodes.get(&progress.at.node).is_some_and(|node| {
        !node.fenced && (progress.broker_epoch == BROKER_EPOCH_UNKNOWN || progress.broker_epoch == node.epoch)
    })
}

/// A follower fetch with a broker epoch older than the one its node is
/// registered with (Kafka's `updateFetchStateOrThrow`): a fetcher of the
/// process's previous life, or someone guessing ids. Refused with
/// NOT_LEADER_OR_FOLLOWER. A newer one is accepted: the leader's metadata
/// may lag the node's new registration.
pub fn broker_epoch_is_stale(sent: i64, registered: Option<i64>) -> bool {
    sent != BROKER_EPOCH_UNKNOWN && registered.is_some_and(|registered| registered > sent)
}

/// The ISR the leader proposes: `isr` without `leaving`, with `joining`,
/// in the order of the partition's replicas. None when nothing changes.
pub fn proposed_isr(
    assignment: &PartitionAssignment,
    leaving: &[ReplicaPlacement],
    joining: &[ReplicaPlacement],
) -> Option<Vec<ReplicaPlacement>> {
    if leaving.is_empty() && joining.is_empty() {
        return None;
    }
    let isr: Vec<ReplicaPlacement> = assignment
        .replicas
        .iter()
        .filter(|r| (assignment.in_sync(**r) && !leaving.contains(r)) || joining.contains(r))
        .copied()
        .collect();
    debug_assert!(assignment.leader.is_none_or(|l| isr.contains(&l)), "the leader never leaves its own ISR");
    (isr != assignment.isr).then_some(isr)
}

/// What a request's `current_leader_epoch` says against the replica's epoch
/// (Kafka's `checkCurrentLeaderEpoch`): -1 skips the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochCheck {
    Current,
    /// The client knows an older leader: FENCED_LEADER_EPOCH, it refreshes.
    Fenced,
    /// The client knows a newer epoch than this replica: UNKNOWN_LEADER_EPOCH,
    /// it retries once this replica has caught up with the metadata.
    Unknown,
}

/// Compares a request's `current_leader_epoch` with the replica's.
pub fn check_leader_epoch(requested: i32, ours: i32) -> EpochCheck {
    match requested {
        r if r < 0 || r == ours => EpochCheck::Current,
        r if r < ours => EpochCheck::Fenced,
        _ => EpochCheck::Unknown,
    }
}

/// Where a follower truncates once the leader answered OffsetsForLeaderEpoch
/// for the follower's latest epoch (KIP-101/279): to the end the leader gives
/// that epoch, or its own log end if that is lower; never to its high
/// watermark (which may be stale and would drop acknowledged records the
/// leader still has). `leader_end` -1 (the leader knows no such epoch or
/// older): the follower's whole log is kept only down to what the leader
/// has, so truncate to the leader's answer as given, clamped at 0.
pub fn truncation_offset(own_log_end: i64, leader_end: i64) -> i64 {
    leader_end.max(0).min(own_log_end)
}

/// What the leader's log says of a fetch carrying `last_fetched_epoch`
/// (KIP-320, Kafka's `Partition.readRecords` check), from where the
/// leader's epoch cache ends that epoch (`ends`: its `endOffsetFor`, None
/// when undefined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchPosition {
    /// The fetcher's log agrees with the leader's up to its fetch offset.
    OnLog,
    /// It parts from the leader's log: the largest epoch the leader has at
    /// most the fetcher's and where it ends there. Answered with no
    /// records; the fetcher truncates and fetches again.
    Diverging { epoch: i32, end_offset: i64 },
    /// The leader cannot tell (an epoch newer than its own), or the offset
    /// is below its log start: OFFSET_OUT_OF_RANGE.
    OutOfRange,
}

pub fn fetch_position(
    last_fetched_epoch: i32,
    fetch_offset: i64,
    ends: Option<(i32, i64)>,
    log_start_offset: i64,
) -> FetchPosition {
    let Some((epoch, end_offset)) = ends.filter(|&(epoch, end)| epoch >= 0 && end >= 0) else {
        return FetchPosition::OutOfRange;
    };
    if fetch_offset < log_start_offset {
        return FetchPosition::OutOfRange;
    }
    match epoch < last_fetched_epoch || end_offset < fetch_offset {
        true => FetchPosition::Diverging { epoch, end_offset },
        false => FetchPosition::OnLog,
    }
}

/// Where a follower truncates when its leader answered a diverging epoch
/// (Kafka's `getOffsetTruncationState`): to the leader's end of that epoch,
/// bounded by its own end of the same epoch when it has it (`own`: its
/// `endOffsetFor` of the leader's epoch), or of the largest it has below
/// (the next fetch then checks that one), and by its log end.
pub fn truncation_on_divergence(own_log_end: i64, leader: (i32, i64), own: Option<(i32, i64)>) -> i64 {
    let (_, leader_end) = leader;
    let own_end = own.map_or(own_log_end, |(_, end)| end);
    leader_end.min(own_end).min(own_log_end).max(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cluster::{NodeId, ShardId};

    const LAG_MS: u64 = 30_000;

    fn at(node: u32) -> ReplicaPlacement {
        ReplicaPlacement::new(NodeId(node), ShardId(0))
    }

    /// Nodes 1, 2 and 3 registered unfenced, each with broker epoch 10 × its id.
    pub(crate) fn registered() -> BTreeMap<NodeId, NodeRegistration> {
        (1..=3).map(|n| (NodeId(n), registration(n, 10 * i64::from(n)))).collect()
    }

    pub(crate) fn registration(node: u32, epoch: i64) -> NodeRegistration {
        NodeRegistration {
            id: NodeId(node),
            incarnation: uuid::Uuid::nil(),
            epoch,
            host: "127.0.0.1".into(),
            port: 9092,
            shards: 1,
            fenced: false,
            skipped_port: None,
        }
    }

    fn three() -> PartitionAssignment {
        PartitionAssignment::led_by_first(vec![at(1), at(2), at(3)])
    }

    #[test]
    fn the_high_watermark_is_the_smallest_end_in_the_isr_and_never_moves_back() {
        let assignment = three();
        let mut followers = Followers::of(&assignment, at(1), &Followers::default(), 0);
        assert_eq!(followers.progress.len(), 2, "the leader is not its own follower");
        // Followers that have not fetched hold it where it was.
        assert_eq!(high_watermark(5, 100, &assignment.isr, &followers), 5);
        followers.get_mut(at(2)).unwrap().fetched(80, 100, 10, BROKER_EPOCH_UNKNOWN);
        followers.get_mut(at(3)).unwrap().fetched(60, 100, 10, BROKER_EPOCH_UNKNOWN);
        assert_eq!(high_watermark(5, 100, &assignment.isr, &followers), 60);
        // A follower out of the ISR does not hold it back.
        let isr = [at(1), at(2)];
        assert_eq!(high_watermark(60, 100, &isr, &followers), 80);
        // Nor does the leader's own unwritten tail go past its written end.
        assert_eq!(high_watermark(60, 70, &isr, &followers), 70);
        // A follower truncated below it does not pull it back.
        followers.get_mut(at(2)).unwrap().fetched(10, 100, 20, BROKER_EPOCH_UNKNOWN);
        assert_eq!(high_watermark(70, 100, &isr, &followers), 70);
        // A single replica's is its written end.
        assert_eq!(high_watermark(0, 42, &[at(1)], &Followers::default()), 42);
    }

    #[test]
    fn a_follower_lagging_longer_than_lag_time_max_leaves_the_isr() {
        let assignment = three();
        let mut followers = Followers::of(&assignment, at(1), &Followers::default(), 0);
        // Follower 2 keeps fetching from the leader's end; follower 3 stops at 0 ms.
        for t in (0..=40_000).step_by(500) {
            followers.get_mut(at(2)).unwrap().fetched(100, 100, t, BROKER_EPOCH_UNKNOWN);
        }
        assert_eq!(out_of_sync(&assignment.isr, &followers, 30_000, LAG_MS), vec![], "exactly lag_time_max: stays");
        assert_eq!(out_of_sync(&assignment.isr, &followers, 30_001, LAG_MS), vec![at(3)]);
        // Follower 3 fetching but always behind the leader's end of its previous fetch still leaves.
        let three_ = followers.get_mut(at(3)).unwrap();
        three_.fetched(10, 200, 35_000, BROKER_EPOCH_UNKNOWN);
        three_.fetched(20, 300, 36_000, BROKER_EPOCH_UNKNOWN);
        assert_eq!(out_of_sync(&assignment.isr, &followers, 36_000, LAG_MS), vec![at(3)]);
        // Reaching the leader's end of its previous fetch counts as caught up then.
        followers.get_mut(at(3)).unwrap().fetched(300, 400, 37_000, BROKER_EPOCH_UNKNOWN);
        assert_eq!(followers.get(at(3)).unwrap().last_caught_up_ms, 36_000);
        assert_eq!(out_of_sync(&assignment.isr, &followers, 37_000, LAG_MS), vec![]);
        // A follower already out of the ISR is not named again.
        assert_eq!(out_of_sync(&[at(1), at(2)], &followers, 90_000, LAG_MS), vec![at(2)]);
    }

    #[test]
    fn a_follower_joins_the_isr_once_it_holds_the_high_watermark_and_the_epoch_start() {
        let assignment = PartitionAssignment { isr: vec![at(1), at(2)], ..three() };
        let mut followers = Followers::of(&assignment, at(1), &Followers::default(), 0);
        followers.get_mut(at(3)).unwrap().fetched(49, 60, 10, BROKER_EPOCH_UNKNOWN);
        assert_eq!(caught_up(&assignment.isr, &followers, 50, 0, &registered()), vec![]);
        followers.get_mut(at(3)).unwrap().fetched(50, 60, 20, BROKER_EPOCH_UNKNOWN);
        assert_eq!(caught_up(&assignment.isr, &followers, 50, 55, &registered()), vec![], "behind the epoch's start");
        assert_eq!(caught_up(&assignment.isr, &followers, 50, 50, &registered()), vec![at(3)]);
        assert_eq!(proposed_isr(&assignment, &[], &[at(3)]), Some(vec![at(1), at(2), at(3)]));
        assert_eq!(proposed_isr(&assignment, &[at(2)], &[]), Some(vec![at(1)]));
        assert_eq!(proposed_isr(&assignment, &[], &[]), None);
        assert_eq!(proposed_isr(&assignment, &[], &[at(2)]), None, "already in sync: no change");
    }

    #[test]
    fn a_follower_joins_the_isr_only_with_its_nodes_registered_broker_epoch() {
        let assignment = PartitionAssignment { isr: vec![at(1), at(2)], ..three() };
        let mut followers = Followers::of(&assignment, at(1), &Followers::default(), 0);
        let mut nodes = registered();
        // Caught up, but its fetches carried the epoch of the process's previous life.
        followers.get_mut(at(3)).unwrap().fetched(50, 50, 10, 29);
        assert_eq!(caught_up(&assignment.isr, &followers, 50, 0, &nodes), vec![], "stale broker epoch");
        followers.get_mut(at(3)).unwrap().fetched(50, 50, 20, 30);
        assert_eq!(caught_up(&assignment.isr, &followers, 50, 0, &nodes), vec![at(3)]);
        // The node restarted and registered again: the old progress no longer counts.
        nodes.insert(NodeId(3), registration(3, 31));
        assert_eq!(caught_up(&assignment.isr, &followers, 50, 0, &nodes), vec![]);
        nodes.get_mut(&NodeId(3)).unwrap().epoch = 30;
        nodes.get_mut(&NodeId(3)).unwrap().fenced = true;
        assert_eq!(caught_up(&assignment.isr, &followers, 50, 0, &nodes), vec![], "fenced");
        nodes.remove(&NodeId(3));
        assert_eq!(caught_up(&assignment.isr, &followers, 50, 0, &nodes), vec![], "not registered");
        // A fetch without an epoch (before v15) is not checked, as Kafka's.
        followers.get_mut(at(3)).unwrap().fetched(50, 50, 30, BROKER_EPOCH_UNKNOWN);
        assert_eq!(caught_up(&assignment.isr, &followers, 50, 0, &registered()), vec![at(3)]);
    }

    #[test]
    fn a_fetch_with_an_older_broker_epoch_than_registered_is_stale() {
        assert!(broker_epoch_is_stale(29, Some(30)), "a previous life of the process");
        assert!(!broker_epoch_is_stale(30, Some(30)));
        assert!(!broker_epoch_is_stale(31, Some(30)), "the leader's metadata lags the new registration");
        assert!(!broker_epoch_is_stale(BROKER_EPOCH_UNKNOWN, Some(30)), "before v15: unchecked");
        assert!(!broker_epoch_is_stale(5, None), "not registered: Kafka checks only alive brokers");
    }

    #[test]
    fn followers_keep_their_progress_across_a_new_assignment() {
        let assignment = three();
        let mut followers = Followers::of(&assignment, at(1), &Followers::default(), 0);
        followers.get_mut(at(2)).unwrap().fetched(7, 7, 5, BROKER_EPOCH_UNKNOWN);
        let shrunk = PartitionAssignment { isr: vec![at(1), at(2)], partition_epoch: 1, ..assignment };
        let again = Followers::of(&shrunk, at(1), &followers, 99);
        assert_eq!(again.get(at(2)).unwrap().log_end_offset, 7);
        assert_eq!(again.get(at(3)).unwrap().last_caught_up_ms, 0, "kept, not reset to the new time");
    }

    #[test]
    fn leader_epochs_of_requests_are_checked_as_kafka_does() {
        assert_eq!(check_leader_epoch(-1, 4), EpochCheck::Current, "-1: no check");
        assert_eq!(check_leader_epoch(4, 4), EpochCheck::Current);
        assert_eq!(check_leader_epoch(3, 4), EpochCheck::Fenced);
        assert_eq!(check_leader_epoch(5, 4), EpochCheck::Unknown);
    }

    #[test]
    fn a_fetch_whose_last_epoch_parts_from_the_leaders_log_is_told_where() {
        use FetchPosition::*;
        // The leader's epochs: 2 from 10, 4 from 25, 7 from 40, log end 55 (leader_epoch.rs's example).
        assert_eq!(fetch_position(7, 55, Some((7, 55)), 0), OnLog, "caught up in the latest epoch");
        assert_eq!(fetch_position(7, 50, Some((7, 55)), 0), OnLog);
        assert_eq!(fetch_position(4, 40, Some((4, 40)), 0), OnLog, "at the end of an older epoch");
        assert_eq!(fetch_position(4, 30, Some((4, 40)), 0), OnLog);
        assert_eq!(
            fetch_position(4, 45, Some((4, 40)), 0),
            Diverging { epoch: 4, end_offset: 40 },
            "an old leader's tail of epoch 4 past where the leader's epoch 4 ended"
        );
        assert_eq!(
            fetch_position(5, 42, Some((4, 40)), 0),
            Diverging { epoch: 4, end_offset: 40 },
            "an epoch the leader never had"
        );
        assert_eq!(fetch_position(5, 38, Some((4, 40)), 0), Diverging { epoch: 4, end_offset: 40 });
        assert_eq!(fetch_position(8, 60, None, 0), OutOfRange, "newer than the leader's latest");
        assert_eq!(fetch_position(7, 5, Some((7, 55)), 10), OutOfRange, "below the log start");
    }

    #[test]
    fn a_diverging_follower_truncates_where_both_logs_agree() {
        // The leader's epoch 4 ended at 40; the follower's at 45, its log at 50.
        assert_eq!(truncation_on_divergence(50, (4, 40), Some((4, 45))), 40);
        // The follower's own epoch 4 ended first.
        assert_eq!(truncation_on_divergence(50, (4, 40), Some((4, 35))), 35);
        // It has no epoch 4, only 3 ending at 30: cut there, the next fetch checks 3.
        assert_eq!(truncation_on_divergence(50, (4, 40), Some((3, 30))), 30);
        // Never past its own end, never below 0.
        assert_eq!(truncation_on_divergence(20, (4, 40), None), 20);
        assert_eq!(truncation_on_divergence(20, (0, -1), None), 0);
    }

    #[test]
    fn a_follower_truncates_to_the_leaders_end_of_its_epoch_never_past_its_own_end() {
        assert_eq!(truncation_offset(100, 80), 80, "a diverging tail of an old leader's is cut");
        assert_eq!(truncation_offset(100, 150), 100, "the leader has more: nothing to cut");
        assert_eq!(truncation_offset(100, 100), 100);
        assert_eq!(truncation_offset(100, -1), 0, "an epoch the leader never had: nothing of it is kept");
    }
}
