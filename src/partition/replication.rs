//! A replica's place in its partition (Kafka's `Partition.makeLeader` /
//! `makeFollower`, `updateFollowerFetchState`, `maybeIncrementLeaderHW`):
//! the assignment the latest metadata snapshot gives it, whether it leads,
//! what it knows of its followers when it does, and the high watermark
//! that follows from them. The rules themselves are pure functions in
//! leader.rs; this file keeps the state and fires the replica's
//! notification when the high watermark or the role moves, so that long
//! polls and acks=all waits re-check.

use std::collections::BTreeMap;

use crate::cluster::{NodeId, NodeRegistration, PartitionAssignment, ReplicaPlacement};

use super::leader::{self, EpochCheck, FetchPosition, FollowerId, Followers};
use super::{PartitionError, Replica};

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBound {
    /// Consumers: below the high watermark, what every in-sync replica has.
    HighWatermark,
    /// Followers: everything the leader has written.
    WrittenEnd,
}

/// The replica's role, from the latest assignment of its partition.
#[derive(Debug, Clone, Default)]
pub struct Replication {
    /// Where this replica is, and the partition as the metadata last said.
    /// None until the first snapshot is applied: a replica opened alone
    /// (tests, tools) is its partition's only replica and leads it.
    pub placement: Option<(ReplicaPlacement, PartitionAssignment)>,
    /// The followers' progress while this replica leads; empty otherwise.
    pub followers: Followers,
    /// The log end when this replica's leadership began: a follower joins the
    /// ISR only once it holds it (leader.rs `caught_up`).
    pub epoch_start_offset: i64,
    /// The leader epoch a follower last truncated for (follower.rs): it
    /// fetches only once this is the partition's.
    pub truncated_for_epoch: Option<i32>,
    /// The leader found the follower's fetch offset out of range: it asks
    /// OffsetsForLeaderEpoch before fetching again (follower.rs).
    pub leader_end_wanted: bool,
}

impl Replication {
    pub fn leads(&self) -> bool {
        self.placement.as_ref().is_none_or(|(here, a)| a.is_led_by(*here))
    }

    /// The in-sync replicas (this one alone when opened without a snapshot).
    pub fn isr_len(&self) -> usize {
        self.placement.as_ref().map_or(1, |(_, a)| a.isr.len())
    }
}

/// What a leader's replica answers a follower's fetch with, besides records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    pub high_watermark: i64,
    /// The follower holds what it needs to join the ISR: the shard's ISR
    /// task proposes it.
    pub may_join_isr: bool,
}

impl Replica {
    /// Adopts the partition's assignment from a new metadata snapshot: leads
    /// or follows at its leader epoch. A replica that begins leading in a
    /// newer epoch records it in its epoch cache from its log end (durable
    /// before it appends in it), and starts its followers' lag clocks at
    /// `now_ms`. Returns whether the role or the epoch changed (a follower's
    /// fetcher then truncates by OffsetsForLeaderEpoch before fetching).
    pub fn set_assignment(
        &self,
        here: ReplicaPlacement,
        assignment: &PartitionAssignment,
        now_ms: i64,
    ) -> Result<bool, PartitionError> {
        let mut replication = self.replication.borrow_mut();
        let was_leading = replication.leads() && replication.placement.is_some();
        let old_epoch = self.leader_epoch.get();
        let leads = assignment.is_led_by(here);
        let epoch = assignment.leader_epoch;
        if leads {
            let latest = self.leader_epochs.borrow().latest();
            if latest.is_none_or(|l| epoch > l.epoch) {
                self.leader_epochs.borrow_mut().begin(epoch, self.log().log_end_offset())?;
            } else if latest.is_some_and(|l| epoch < l.epoch) {
                // A data directory that saw a later epoch than the metadata
                // gives (a single node's checkpoint from a test, or a
                // metadata log restored from an older copy): keep stamping the
                // later one, epochs never go back.
                tracing::warn!(
                    topic = self.topic(),
                    partition = self.partition(),
                    epoch,
                    ?latest,
                    "the partition's epoch cache is ahead of its metadata; keeping the cache's epoch"
                );
            }
            replication.followers = Followers::of(assignment, here, &replication.followers, now_ms);
            if !was_leading || epoch != old_epoch {
                // The log end as this leadership begins, even when it
                // resumes an epoch the cache has (a restart): what the
                // previous life acknowledged may be anywhere below it, so the
                // high watermark is only trusted again once it reaches it
                // (Kafka's `leaderEpochStartOffsetOpt`).
                replication.epoch_start_offset = self.log().log_end_offset();
            }
        } else {
            replication.followers = Followers::default();
        }
        let cached = self.leader_epochs.borrow().latest().map_or(epoch, |l| l.epoch);
        self.leader_epoch.set(epoch.max(cached));
        let changed = was_leading != leads || epoch != old_epoch || replication.placement.is_none();
        replication.placement = Some((here, assignment.clone()));
        drop(replication);
        // The ISR may have shrunk (acks=all waits re-check) or the role moved.
        self.writes().notify_waiters();
        Ok(changed)
    }

    /// Whether this replica leads its partition.
    pub fn is_leader(&self) -> bool {
        self.replication.borrow().leads()
    }

    /// Whether the partition has other replicas than this one (its high
    /// watermark is then more than its log end, and worth checkpointing).
    pub fn is_replicated(&self) -> bool {
        self.replication.borrow().placement.as_ref().is_some_and(|(_, a)| a.replicas.len() > 1)
    }

    /// Checks a request's `current_leader_epoch` against this replica's.
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), PartitionError> {
        // The metadata's epoch, which clients know (the stamped one may be
        // later only on a single node whose checkpoint ran ahead).
        let ours =
            self.replication.borrow().placement.as_ref().map_or(self.leader_epoch.get(), |(_, a)| a.leader_epoch);
        match leader::check_leader_epoch(requested, ours) {
            EpochCheck::Current => Ok(()),
            EpochCheck::Fenced => Err(PartitionError::FencedLeaderEpoch { requested, ours }),
            EpochCheck::Unknown => Err(PartitionError::UnknownLeaderEpoch { requested, ours }),
        }
    }

    /// KIP-320: where a fetch from `fetch_offset`, whose last fetched batch
    /// had `last_fetched_epoch`, stands against this replica's log
    /// (leader.rs `fetch_position`).
    pub fn fetch_position(&self, last_fetched_epoch: i32, fetch_offset: i64) -> FetchPosition {
        let ends = self.leader_epochs.borrow().end_offset_for(last_fetched_epoch, self.log().log_end_offset());
        leader::fetch_position(last_fetched_epoch, fetch_offset, ends, self.log_start_offset())
    }

    /// Refuses to answer offsets (ListOffsets) while this leader's high
    /// watermark is behind the log end its leadership began with: it may
    /// still be below one the previous leader, or this replica before a
    /// restart, already answered, and a client must never see it go back
    /// (KIP-207). It catches up once the in-sync followers have fetched.
    pub fn check_high_watermark_settled(&self) -> Result<(), PartitionError> {
        let high_watermark = self.high_watermark();
        let replication = self.replication.borrow();
        let leads_in_cluster = replication.placement.is_some() && replication.leads();
        match leads_in_cluster && high_watermark < replication.epoch_start_offset {
            true => Err(PartitionError::HighWatermarkBehindEpochStart {
                high_watermark,
                epoch_start_offset: replication.epoch_start_offset,
            }),
            false => Ok(()),
        }
    }

    /// Every offset below it may be read by consumers: on a leader, the
    /// smallest log end of its in-sync replicas (its own written end
    /// included); on a follower, what its leader last said, bounded by its
    /// own written end. A single replica's is its written end.
    pub fn high_watermark(&self) -> i64 {
        let written = self.log().written_end_offset();
        let replication = self.replication.borrow();
        let hw = match &replication.placement {
            Some((_, assignment)) if replication.leads() => {
                leader::high_watermark(self.high_watermark.get(), written, &assignment.isr, &replication.followers)
            }
            Some(_) => return self.high_watermark.get().min(written),
            None => written,
        };
        self.high_watermark.set(hw);
        hw
    }

    /// Whether `follower` may fetch as a replica of this partition: it is
    /// one, and its broker epoch is not older than the one `nodes` (the
    /// metadata's registrations) gives its node (KIP-903). Both refusals are
    /// Kafka's NOT_LEADER_OR_FOLLOWER.
    pub fn check_follower(
        &self,
        follower: FollowerId,
        nodes: &BTreeMap<NodeId, NodeRegistration>,
    ) -> Result<(), PartitionError> {
        let broker_id = follower.at.broker_id();
        let replication = self.replication.borrow();
        if !replication.placement.as_ref().is_some_and(|(_, a)| a.has_replica(follower.at)) {
            return Err(PartitionError::NotAReplica { broker_id });
        }
        let registered = nodes.get(&follower.at.node).map(|n| n.epoch);
        if leader::broker_epoch_is_stale(follower.broker_epoch, registered) {
            let registered = registered.expect("stale only against a registration");
            return Err(PartitionError::StaleBrokerEpoch { broker_id, sent: follower.broker_epoch, registered });
        }
        Ok(())
    }

    /// A follower's fetch from `fetch_offset` reached this leader at
    /// `now_ms`: its progress is recorded, and the high watermark moves if it
    /// can (waking long polls and acks=all waits). Err when this replica
    /// does not lead or the follower may not fetch ([`check_follower`](Self::check_follower)):
    /// nothing is recorded then.
    pub fn follower_fetched(
        &self,
        follower: FollowerId,
        fetch_offset: i64,
        now_ms: i64,
        nodes: &BTreeMap<NodeId, NodeRegistration>,
    ) -> Result<FollowerFetch, PartitionError> {
        let leader_end = self.log().log_end_offset();
        let hw_before = self.high_watermark.get();
        if !self.is_leader() {
            return Err(PartitionError::NotLeader);
        }
        self.check_follower(follower, nodes)?;
        {
            let mut replication = self.replication.borrow_mut();
            let Some(progress) = replication.followers.get_mut(follower.at) else {
                return Err(PartitionError::NotAReplica { broker_id: follower.at.broker_id() });
            };
            progress.fetched(fetch_offset, leader_end, now_ms, follower.broker_epoch);
        }
        let hw = self.high_watermark();
        if hw != hw_before {
            self.writes().notify_waiters();
        }
        let replication = self.replication.borrow();
        let may_join_isr = replication.placement.as_ref().is_some_and(|(_, a)| {
            !leader::caught_up(&a.isr, &replication.followers, hw, replication.epoch_start_offset, nodes).is_empty()
        });
        Ok(FollowerFetch { high_watermark: hw, may_join_isr })
    }

    /// The ISR this leader would propose now (`replica.lag.time.max.ms` =
    /// `lag_time_max_ms`): without the followers that lag, with those that
    /// caught up and may join by `nodes` (leader.rs `caught_up`). None when
    /// it leads no change, or does not lead.
    pub fn proposed_isr(
        &self,
        now_ms: i64,
        lag_time_max_ms: u64,
        nodes: &BTreeMap<NodeId, NodeRegistration>,
    ) -> Option<PartitionAssignment> {
        let hw = self.high_watermark();
        let replication = self.replication.borrow();
        let (_, assignment) = replication.placement.as_ref().filter(|_| replication.leads())?;
        let leaving = leader::out_of_sync(&assignment.isr, &replication.followers, now_ms, lag_time_max_ms);
        let joining =
            leader::caught_up(&assignment.isr, &replication.followers, hw, replication.epoch_start_offset, nodes);
        let isr = leader::proposed_isr(assignment, &leaving, &joining)?;
        Some(PartitionAssignment { isr, partition_epoch: assignment.partition_epoch + 1, ..assignment.clone() })
    }

    /// The high watermark checkpointed before a restart (hw_checkpoint.rs):
    /// the replica starts from it, bounded by its log end, instead of 0.
    pub fn restore_high_watermark(&self, checkpointed: i64) {
        let hw = checkpointed.clamp(0, self.log().log_end_offset());
        debug_assert!(self.replication.borrow().placement.is_none(), "restored before any role is taken");
        self.high_watermark.set(hw);
    }

    /// A follower learnt its leader's high watermark: its own is that,
    /// bounded by what it has written. Never moves back.
    pub fn set_follower_high_watermark(&self, leader_high_watermark: i64) {
        let hw = leader_high_watermark.min(self.log().written_end_offset());
        if hw > self.high_watermark.get() {
            self.high_watermark.set(hw);
            self.writes().notify_waiters();
        }
    }

    /// Refuses acks=all before appending when fewer replicas than
    /// `min.insync.replicas` are in sync (Kafka's NOT_ENOUGH_REPLICAS).
    pub fn check_min_isr(&self) -> Result<(), PartitionError> {
        let (isr, min) = (self.replication.borrow().isr_len(), self.config().min_insync_replicas);
        match isr as i64 >= i64::from(min) {
            true => Ok(()),
            false => Err(PartitionError::NotEnoughReplicas { isr, min }),
        }
    }

    /// Waits until every in-sync replica holds `last_offset` (acks=all):
    /// the high watermark passes it. Refused if this replica stops leading
    /// meanwhile, or if the ISR has shrunk below `min.insync.replicas` when
    /// it does (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    pub async fn wait_replicated(&self, last_offset: i64) -> Result<(), PartitionError> {
        loop {
            let notified = self.writes().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_leader() {
                return Err(PartitionError::NotLeader);
            }
            if self.high_watermark() > last_offset {
                return self.check_min_isr().map_err(|e| match e {
                    PartitionError::NotEnoughReplicas { isr, min } => {
                        PartitionError::NotEnoughReplicasAfterAppend { isr, min }
                    }
                    other => other,
                });
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;
    use crate::cluster::{NodeId, ShardId};
    use crate::config::{BrokerConfig, TopicConfig};
    use crate::model::compression::Decompressor;
    use crate::model::{now_ms, records, TopicPartition};
    use crate::partition::leader::tests::registered;
    use crate::partition::leader_rules::FollowerId;
    use crate::partition::ReplicaHost;
    use crate::storage::{HotTail, LogConfig};

    fn at(node: u32) -> ReplicaPlacement {
        ReplicaPlacement::new(NodeId(node), ShardId(0))
    }

    /// A follower fetch without a broker epoch (before v15): not checked.
    fn fid(node: u32) -> crate::partition::leader_rules::FollowerId {
        crate::partition::leader_rules::FollowerId {
            at: at(node),
            broker_epoch: crate::partition::leader_rules::BROKER_EPOCH_UNKNOWN,
        }
    }

    fn open(dir: &std::path::Path, overrides: &[(&str, &str)]) -> Rc<Replica> {
        let overrides: BTreeMap<String, String> =
            overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let config = TopicConfig::resolve(&overrides, &BrokerConfig::default()).unwrap();
        let host = ReplicaHost { hot_tail: HotTail::new(1 << 20), producers: Rc::default(), clean_shutdown: true };
        Replica::open(TopicPartition::new("t", 0), dir, config, LogConfig::default(), &host).unwrap().0
    }

    async fn produce(replica: &Replica, value: &[u8]) -> i64 {
        let batch = records::build_keyed(now_ms(), &[(None, Some(value))]);
        let info = replica.append(&batch, &mut Decompressor::new(), now_ms()).unwrap();
        replica.wait_appended(&info).await.unwrap();
        info.last_offset
    }

    #[test]
    fn acks_all_waits_for_every_in_sync_follower_and_consumers_see_only_that() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let replica = open(dir.path(), &[("min.insync.replicas", "2")]);
            let three =
                PartitionAssignment { leader_epoch: 1, ..PartitionAssignment::led_by_first(vec![at(1), at(2), at(3)]) };
            assert!(replica.set_assignment(at(1), &three, 0).unwrap(), "a new role");
            assert_eq!(replica.leader_epoch(), 1, "the metadata's epoch, begun in the cache");
            let last = produce(&replica, b"a").await;
            assert_eq!(replica.high_watermark(), 0, "no follower has it yet");
            let acked = replica.wait_replicated(last);
            tokio::pin!(acked);
            assert!(tokio::time::timeout(Duration::from_millis(20), acked.as_mut()).await.is_err());
            replica.follower_fetched(fid(2), 1, 10, &registered()).unwrap();
            assert_eq!(replica.high_watermark(), 0, "follower 3 is in sync and has not fetched");
            let progress = replica.follower_fetched(fid(3), 1, 10, &registered()).unwrap();
            assert_eq!(progress.high_watermark, 1);
            tokio::time::timeout(Duration::from_secs(1), acked).await.expect("acked").unwrap();
            assert!(matches!(replica.read(0, 1 << 20, ReadBound::HighWatermark).await, Ok(Some(_))));
            assert!(matches!(replica.read(1, 1 << 20, ReadBound::HighWatermark).await, Ok(None)));

            // Follower 3 goes silent: after the lag time it leaves the ISR.
            let _ = produce(&replica, b"b").await;
            // Consumers see only what every in-sync replica has; followers all that is written.
            let below_hw = replica.read(0, 1 << 20, ReadBound::HighWatermark).await.unwrap().unwrap();
            let below_hw = below_hw.into_bytes().await.unwrap();
            let first = crate::model::batch::BatchHeader::parse(&below_hw).unwrap();
            assert_eq!(
                (below_hw.len(), first.last_offset_delta),
                (first.total_bytes(), 0),
                "the batch past the HW is not served"
            );
            let all = replica.read(0, 1 << 20, ReadBound::WrittenEnd).await.unwrap().unwrap();
            assert!(all.len() as usize > first.total_bytes());
            replica.follower_fetched(fid(2), 2, 20_000, &registered()).unwrap();
            assert_eq!(replica.proposed_isr(20_000, 30_000, &registered()), None);
            let shrunk = replica.proposed_isr(40_001, 30_000, &registered()).expect("3 lags");
            assert_eq!((shrunk.isr.clone(), shrunk.partition_epoch, shrunk.leader_epoch), (vec![at(1), at(2)], 1, 1));
            replica.set_assignment(at(1), &shrunk, 40_001).unwrap();
            assert_eq!(replica.high_watermark(), 2, "3 no longer holds it back");
            assert!(replica.check_min_isr().is_ok());
            let alone = PartitionAssignment { isr: vec![at(1)], partition_epoch: 2, ..shrunk.clone() };
            replica.set_assignment(at(1), &alone, 40_002).unwrap();
            assert!(matches!(replica.check_min_isr(), Err(PartitionError::NotEnoughReplicas { isr: 1, min: 2 })));

            // Leadership moves to 2 at epoch 2: waits are refused, epochs checked.
            let moved = PartitionAssignment {
                leader: Some(at(2)),
                isr: vec![at(2)],
                leader_epoch: 2,
                partition_epoch: 3,
                ..alone
            };
            assert!(replica.set_assignment(at(1), &moved, 50_000).unwrap());
            assert!(!replica.is_leader());
            assert!(matches!(replica.wait_replicated(5).await, Err(PartitionError::NotLeader)));
            assert!(matches!(
                replica.follower_fetched(fid(3), 0, 50_000, &registered()),
                Err(PartitionError::NotLeader)
            ));
            assert!(matches!(replica.check_leader_epoch(1), Err(PartitionError::FencedLeaderEpoch { .. })));
            assert!(matches!(replica.check_leader_epoch(3), Err(PartitionError::UnknownLeaderEpoch { .. })));
            assert!(replica.check_leader_epoch(2).is_ok() && replica.check_leader_epoch(-1).is_ok());
            replica.log().close().await.unwrap();
        });
    }

    #[test]
    fn acks_all_with_the_isr_shrunk_below_min_insync_while_waiting_is_refused_after_append() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let replica = open(dir.path(), &[("min.insync.replicas", "2")]);
            let two = PartitionAssignment::led_by_first(vec![at(1), at(2)]);
            replica.set_assignment(at(1), &two, 0).unwrap();
            let last = produce(&replica, b"a").await;
            let alone = PartitionAssignment { isr: vec![at(1)], partition_epoch: 1, ..two };
            replica.set_assignment(at(1), &alone, 1).unwrap();
            let refused = replica.wait_replicated(last).await;
            assert!(matches!(refused, Err(PartitionError::NotEnoughReplicasAfterAppend { isr: 1, min: 2 })));
            assert!(matches!(
                replica.follower_fetched(fid(9), 0, 1, &registered()),
                Err(PartitionError::NotAReplica { .. })
            ));
            replica.log().close().await.unwrap();
        });
    }

    #[test]
    fn a_fetch_from_a_previous_life_of_a_follower_changes_nothing() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let replica = open(dir.path(), &[]);
            let three = PartitionAssignment::led_by_first(vec![at(1), at(2), at(3)]);
            let two = PartitionAssignment { isr: vec![at(1), at(2)], partition_epoch: 1, ..three };
            replica.set_assignment(at(1), &two, 0).unwrap();
            produce(&replica, b"a").await;
            produce(&replica, b"b").await;
            let nodes = registered(); // node 3's broker epoch: 30
            let stale = FollowerId { at: at(3), broker_epoch: 29 };
            let refused = replica.follower_fetched(stale, 2, 10, &nodes);
            assert!(matches!(
                refused,
                Err(PartitionError::StaleBrokerEpoch { broker_id: 3000, sent: 29, registered: 30 })
            ));
            assert!(matches!(replica.check_follower(stale, &nodes), Err(PartitionError::StaleBrokerEpoch { .. })));
            assert_eq!(replica.proposed_isr(10, 30_000, &nodes), None, "a stale fetch does not make 3 caught up");
            // Node 2, in sync, with its current epoch: the HW moves, 3 still out.
            replica.follower_fetched(FollowerId { at: at(2), broker_epoch: 20 }, 2, 10, &nodes).unwrap();
            assert_eq!(replica.high_watermark(), 2);
            assert_eq!(replica.proposed_isr(10, 30_000, &nodes), None);
            // 3 in its current life joins.
            let current = FollowerId { at: at(3), broker_epoch: 30 };
            assert!(replica.follower_fetched(current, 2, 11, &nodes).unwrap().may_join_isr);
            assert_eq!(replica.proposed_isr(11, 30_000, &nodes).unwrap().isr, vec![at(1), at(2), at(3)]);
            replica.log().close().await.unwrap();
        });
    }

    #[test]
    fn delete_records_goes_no_further_than_the_high_watermark() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let replica = open(dir.path(), &[]);
            replica.set_assignment(at(1), &PartitionAssignment::led_by_first(vec![at(1), at(2)]), 0).unwrap();
            produce(&replica, b"a").await;
            produce(&replica, b"b").await;
            replica.follower_fetched(fid(2), 1, 1, &registered()).unwrap();
            assert_eq!(replica.high_watermark(), 1);
            let past = replica.delete_records(2).await;
            assert!(matches!(
                past,
                Err(PartitionError::Storage(crate::storage::StorageError::OffsetOutOfRange { .. }))
            ));
            assert_eq!(replica.delete_records(-1).await.unwrap().0, 1, "-1: the high watermark");
            replica.log().close().await.unwrap();
        });
    }

    #[test]
    fn a_restarted_leader_answers_no_offsets_until_its_high_watermark_reaches_where_it_resumed() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let three =
                PartitionAssignment { leader_epoch: 1, ..PartitionAssignment::led_by_first(vec![at(1), at(2), at(3)]) };
            let replica = open(dir.path(), &[]);
            replica.set_assignment(at(1), &three, 0).unwrap();
            assert!(replica.check_high_watermark_settled().is_ok(), "an empty log: nothing to go back from");
            produce(&replica, b"a").await;
            produce(&replica, b"b").await;
            replica.follower_fetched(fid(2), 2, 1, &registered()).unwrap();
            replica.follower_fetched(fid(3), 2, 1, &registered()).unwrap();
            assert_eq!(replica.high_watermark(), 2, "answered to clients");
            replica.log().close().await.unwrap();
            drop(replica);

            // Killed before its high watermark was checkpointed: it resumes
            // the same epoch from 0, which it must not answer.
            let replica = open(dir.path(), &[]);
            replica.set_assignment(at(1), &three, 10).unwrap();
            let refused = replica.check_high_watermark_settled();
            assert!(matches!(
                refused,
                Err(PartitionError::HighWatermarkBehindEpochStart { high_watermark: 0, epoch_start_offset: 2 })
            ));
            replica.follower_fetched(fid(2), 2, 11, &registered()).unwrap();
            assert!(replica.check_high_watermark_settled().is_err(), "3 is in sync and has not fetched");
            replica.follower_fetched(fid(3), 2, 11, &registered()).unwrap();
            assert!(replica.check_high_watermark_settled().is_ok());
            assert_eq!(replica.high_watermark(), 2);
            replica.log().close().await.unwrap();
        });
    }

    #[test]
    fn a_single_replica_acknowledges_what_it_has_written() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let replica = open(dir.path(), &[]);
            let last = produce(&replica, b"a").await;
            assert_eq!(replica.high_watermark(), 1, "opened alone: its own ISR");
            replica.wait_replicated(last).await.unwrap();
            replica.set_assignment(at(1), &PartitionAssignment::single(at(1)), 0).unwrap();
            assert_eq!(replica.high_watermark(), 1);
            let last = produce(&replica, b"b").await;
            replica.wait_replicated(last).await.unwrap();
            assert_eq!(replica.high_watermark(), 2);
            replica.log().close().await.unwrap();
        });
    }
}
