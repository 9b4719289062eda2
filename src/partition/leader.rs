//! What a leading replica knows of its followers, and the rules it applies
//! with it (Kafka's `Partition` with its `Replica` states): where each
//! follower's log ends, when it was last caught up, the high watermark they
//! allow, who leaves and who joins the ISR. Pure functions of that state and
//! a clock, so that the rules are tested with simulated time; the replica
//! (replica.rs) holds the state and the shard's ISR task acts on the answers.

use crate::cluster::{PartitionAssignment, ReplicaPlacement};

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
        }
    }

    /// A fetch from `fetch_offset` at `now_ms`, the leader's log end then
    /// being `leader_end` (Kafka's `updateFetchState`): caught up now if it
    /// asked from the leader's end, or caught up at its previous fetch if it
    /// now asks from where the leader ended then.
    pub fn fetched(&mut self, fetch_offset: i64, leader_end: i64, now_ms: i64) {
        if fetch_offset >= leader_end {
            self.last_caught_up_ms = self.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= self.last_fetch_leader_end {
            self.last_caught_up_ms = self.last_caught_up_ms.max(self.last_fetch_ms);
        }
        self.log_end_offset = fetch_offset;
        self.last_fetch_leader_end = leader_end;
        self.last_fetch_ms = now_ms;
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
/// start may hold a diverging tail of an older leader's, so it waits.
pub fn caught_up(
    isr: &[ReplicaPlacement],
    followers: &Followers,
    high_watermark: i64,
    epoch_start_offset: i64,
) -> Vec<ReplicaPlacement> {
    followers
        .progress
        .iter()
        .filter(|p| {
            !isr.contains(&p.at) && p.log_end_offset >= high_watermark && p.log_end_offset >= epoch_start_offset
        })
        .map(|p| p.at)
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{NodeId, ShardId};

    const LAG_MS: u64 = 30_000;

    fn at(node: u32) -> ReplicaPlacement {
        ReplicaPlacement::new(NodeId(node), ShardId(0))
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
        followers.get_mut(at(2)).unwrap().fetched(80, 100, 10);
        followers.get_mut(at(3)).unwrap().fetched(60, 100, 10);
        assert_eq!(high_watermark(5, 100, &assignment.isr, &followers), 60);
        // A follower out of the ISR does not hold it back.
        let isr = [at(1), at(2)];
        assert_eq!(high_watermark(60, 100, &isr, &followers), 80);
        // Nor does the leader's own unwritten tail go past its written end.
        assert_eq!(high_watermark(60, 70, &isr, &followers), 70);
        // A follower truncated below it does not pull it back.
        followers.get_mut(at(2)).unwrap().fetched(10, 100, 20);
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
            followers.get_mut(at(2)).unwrap().fetched(100, 100, t);
        }
        assert_eq!(out_of_sync(&assignment.isr, &followers, 30_000, LAG_MS), vec![], "exactly lag_time_max: stays");
        assert_eq!(out_of_sync(&assignment.isr, &followers, 30_001, LAG_MS), vec![at(3)]);
        // Follower 3 fetching but always behind the leader's end of its previous fetch still leaves.
        let three_ = followers.get_mut(at(3)).unwrap();
        three_.fetched(10, 200, 35_000);
        three_.fetched(20, 300, 36_000);
        assert_eq!(out_of_sync(&assignment.isr, &followers, 36_000, LAG_MS), vec![at(3)]);
        // Reaching the leader's end of its previous fetch counts as caught up then.
        followers.get_mut(at(3)).unwrap().fetched(300, 400, 37_000);
        assert_eq!(followers.get(at(3)).unwrap().last_caught_up_ms, 36_000);
        assert_eq!(out_of_sync(&assignment.isr, &followers, 37_000, LAG_MS), vec![]);
        // A follower already out of the ISR is not named again.
        assert_eq!(out_of_sync(&[at(1), at(2)], &followers, 90_000, LAG_MS), vec![at(2)]);
    }

    #[test]
    fn a_follower_joins_the_isr_once_it_holds_the_high_watermark_and_the_epoch_start() {
        let assignment = PartitionAssignment { isr: vec![at(1), at(2)], ..three() };
        let mut followers = Followers::of(&assignment, at(1), &Followers::default(), 0);
        followers.get_mut(at(3)).unwrap().fetched(49, 60, 10);
        assert_eq!(caught_up(&assignment.isr, &followers, 50, 0), vec![]);
        followers.get_mut(at(3)).unwrap().fetched(50, 60, 20);
        assert_eq!(caught_up(&assignment.isr, &followers, 50, 55), vec![], "behind the epoch's start");
        assert_eq!(caught_up(&assignment.isr, &followers, 50, 50), vec![at(3)]);
        assert_eq!(proposed_isr(&assignment, &[], &[at(3)]), Some(vec![at(1), at(2), at(3)]));
        assert_eq!(proposed_isr(&assignment, &[at(2)], &[]), Some(vec![at(1)]));
        assert_eq!(proposed_isr(&assignment, &[], &[]), None);
        assert_eq!(proposed_isr(&assignment, &[], &[at(2)]), None, "already in sync: no change");
    }

    #[test]
    fn followers_keep_their_progress_across_a_new_assignment() {
        let assignment = three();
        let mut followers = Followers::of(&assignment, at(1), &Followers::default(), 0);
        followers.get_mut(at(2)).unwrap().fetched(7, 7, 5);
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
    fn a_follower_truncates_to_the_leaders_end_of_its_epoch_never_past_its_own_end() {
        assert_eq!(truncation_offset(100, 80), 80, "a diverging tail of an old leader's is cut");
        assert_eq!(truncation_offset(100, 150), 100, "the leader has more: nothing to cut");
        assert_eq!(truncation_offset(100, 100), 100);
        assert_eq!(truncation_offset(100, -1), 0, "an epoch the leader never had: nothing of it is kept");
    }
}
