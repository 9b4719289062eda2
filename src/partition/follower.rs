//! A following replica (Kafka's `Partition` as follower, and the
//! `UnifiedLog.appendAsFollower` / `truncateTo` it calls): it copies its
//! leader's batches with their offsets and epochs, records each new epoch
//! in its epoch cache, keeps its idempotent producers as the leader's (so
//! that it deduplicates retries once it leads), and, whenever its leader or
//! leader epoch changes, truncates what the new leader does not have
//! (KIP-101/279) before it fetches again.

use crate::cluster::ReplicaPlacement;
use crate::model::batch::BatchHeader;
use crate::storage::AppendInfo;

use super::{PartitionError, Replica};

impl Replica {
    /// The leader this replica follows now; None while it leads, or while
    /// its partition has no leader.
    pub fn followed_leader(&self) -> Option<ReplicaPlacement> {
        let replication = self.replication.borrow();
        let (here, assignment) = replication.placement.as_ref()?;
        assignment.leader.filter(|leader| leader != here)
    }

    /// The epoch this follower has not yet reconciled its log with its
    /// leader's for (its leader or leader epoch changed since): see
    /// [`reconciles_on_fetch`](Self::reconciles_on_fetch). None once done.
    pub fn truncation_due(&self) -> Option<i32> {
        let epoch = self.replication.borrow().placement.as_ref()?.1.leader_epoch;
        (self.replication.borrow().truncated_for_epoch != Some(epoch)).then_some(epoch)
    }

    /// Whether this follower reconciles its log for `epoch` by its fetches
    /// (KIP-320, Kafka's fetcher with truncation on fetch): its fetches carry
    /// its latest epoch as `last_fetched_epoch`, and the leader answers a
    /// diverging epoch where its log parts from the leader's. If so it is
    /// marked reconciled and fetches at once. Not so (false) for a log
    /// without an epoch, or once the leader found its fetch offset out of
    /// range ([`fetched_out_of_range`](Self::fetched_out_of_range)): it asks
    /// OffsetsForLeaderEpoch first (KIP-101/279).
    pub fn reconciles_on_fetch(&self, epoch: i32) -> bool {
        let has_epoch = self.latest_epoch().is_some();
        let mut replication = self.replication.borrow_mut();
        if replication.leader_end_wanted || !has_epoch {
            return false;
        }
        replication.truncated_for_epoch = Some(epoch);
        true
    }

    /// The leader found this follower's fetch offset out of range without
    /// its log starting past it: the follower is ahead of the leader's log
    /// (Kafka's `handleOutOfRangeError`), and asks the leader where its
    /// latest epoch ends before it fetches again.
    pub fn fetched_out_of_range(&self) {
        let mut replication = self.replication.borrow_mut();
        replication.leader_end_wanted = true;
        replication.truncated_for_epoch = None;
    }

    /// The latest epoch of the replica's epoch cache: what it asks its new
    /// leader the end of (OffsetsForLeaderEpoch), and the `last_fetched_epoch`
    /// of its fetches. None: an empty log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.leader_epochs.borrow().latest().map(|e| e.epoch)
    }

    /// Kafka's `endOffsetFor` on the leader: the epoch at or below
    /// `requested` this replica knows and where it ended (the start of the
    /// next one, or the log end for the current epoch).
    pub fn end_offset_for(&self, requested: i32) -> (i32, i64) {
        // (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET): an epoch past the latest.
        self.leader_epochs.borrow().end_offset_for(requested, self.log().log_end_offset()).unwrap_or((-1, -1))
    }

    /// Truncates the log to `offset` (what the leader has of the follower's
    /// latest epoch, see `leader::truncation_offset`) and the epoch cache with
    /// it, for the leader epoch `epoch`; then rebuilds the idempotent
    /// producers from what is left. Never below the high watermark's records
    /// the leader still has: the offset comes from the leader.
    pub async fn truncate_for_epoch(&self, offset: i64, epoch: i32) -> Result<(), PartitionError> {
        self.truncate_to(offset).await?;
        let mut replication = self.replication.borrow_mut();
        replication.truncated_for_epoch = Some(epoch);
        replication.leader_end_wanted = false;
        Ok(())
    }

    /// The leader answered a fetch with the epoch `diverging` where this
    /// follower's log parts from its own (KIP-320): the log is cut where
    /// both agree (leader.rs `truncation_on_divergence`); the next fetch
    /// carries the latest epoch left, and the leader checks again.
    pub async fn truncate_diverging(&self, diverging: (i32, i64)) -> Result<(), PartitionError> {
        let own = self.leader_epochs.borrow().end_offset_for(diverging.0, self.log().log_end_offset());
        let offset = super::leader::truncation_on_divergence(self.log().log_end_offset(), diverging, own);
        self.truncate_to(offset).await
    }

    /// Cuts the log, the epoch cache and the idempotent producers at
    /// `offset`. The epoch cache is cut even when the log is not: an epoch
    /// this replica began as leader without appending in it starts at its
    /// log end and is not the new leader's (Kafka's `truncateTo` does so).
    async fn truncate_to(&self, offset: i64) -> Result<(), PartitionError> {
        if offset < self.log().log_end_offset() {
            tracing::info!(
                topic = self.topic(),
                partition = self.partition(),
                from = self.log().log_end_offset(),
                to = offset,
                "truncating to the leader's log"
            );
            self.cut_log(offset).await?;
            self.producers.forget_all();
            self.restore_producers().await;
        }
        // A batch holding `offset` went whole: the log may now end below it.
        let log_end = self.log().log_end_offset();
        self.leader_epochs.borrow_mut().truncate_from_end(log_end)?;
        let hw = self.high_watermark.get().min(log_end);
        self.high_watermark.set(hw);
        Ok(())
    }

    /// Cuts the log at `offset`; below its log start, the whole log goes and
    /// it starts afresh at `offset` (Kafka's `truncateFullyAndStartAt`).
    async fn cut_log(&self, offset: i64) -> Result<(), PartitionError> {
        match offset < self.log().log_start_offset() {
            true => self.log().truncate_fully_and_start_at(offset).await?,
            false => self.log().truncate_to(offset).await?,
        }
        Ok(())
    }

    /// The leader's log starts past this follower's end (retention or
    /// DeleteRecords removed what it lacks): the log starts afresh there.
    pub async fn start_at_leader_log_start(&self, leader_log_start: i64) -> Result<(), PartitionError> {
        tracing::info!(
            topic = self.topic(),
            partition = self.partition(),
            from = self.log().log_end_offset(),
            to = leader_log_start,
            "the leader's log starts past this follower's end: starting afresh there"
        );
        self.log().truncate_fully_and_start_at(leader_log_start).await?;
        self.leader_epochs.borrow_mut().truncate_from_end(leader_log_start)?;
        self.producers.forget_all();
        Ok(())
    }

    /// Appends batches fetched from the leader as they are (offsets and
    /// epochs kept): each batch's epoch is assigned in the epoch cache
    /// (Kafka's `assign`: a new epoch begins at its first batch). The bytes
    /// are written later: await `wait_appended`.
    pub fn append_replicated(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, PartitionError> {
        // The producer table forgets what a truncation or a failed write
        // took before it records what follows, as the leader's append path
        // does: left for later, the cut would be applied to these batches
        // too, and a producer's retry after this replica comes to lead
        // would be stored twice (chaos finding 6).
        self.producers.follow_log(self.log().write_epoch(), |seen| self.log().surviving_end_since(seen));
        let info = self.log().append_replicated(batches, now_ms)?;
        self.leader_epochs.borrow_mut().assign_batches(batches)?;
        let mut rest = batches;
        while let Ok(header) = BatchHeader::parse(rest) {
            if header.producer_id >= 0 && !header.is_control() {
                self.producers.record(&header, header.base_offset, now_ms);
            }
            rest = &rest[header.total_bytes().min(rest.len())..];
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use crate::cluster::{NodeId, PartitionAssignment, ReplicaPlacement, ShardId};
    use crate::config::{BrokerConfig, TopicConfig};
    use crate::model::compression::Decompressor;
    use crate::model::{now_ms, records, TopicPartition};
    use crate::partition::leader::tests::registered;
    use crate::partition::{PartitionError, ReadBound, Replica, ReplicaHost};
    use crate::storage::{HotTail, LogConfig, PartitionLog};

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

    fn open(dir: &std::path::Path) -> Rc<Replica> {
        open_on(dir, false)
    }

    /// `faulty`: the log writes through storage's fault-injecting `LogIo`.
    fn open_on(dir: &std::path::Path, faulty: bool) -> Rc<Replica> {
        let config = TopicConfig::resolve(&BTreeMap::new(), &BrokerConfig::default()).unwrap();
        let host = ReplicaHost { hot_tail: HotTail::new(1 << 20), producers: Rc::default(), clean_shutdown: true };
        let (id, log_config) = (TopicPartition::new("t", 0), LogConfig::default());
        let opened = match faulty {
            false => Replica::open(id, dir, config, log_config, &host),
            true => Replica::open_log_with(id, dir, config, &host, |written| {
                let (hot_tail, io) = (host.hot_tail.clone(), crate::storage::faulty_io::io());
                PartitionLog::open_with_io(dir, log_config, true, written, hot_tail, io)
            }),
        };
        opened.unwrap().0
    }

    /// Replicas a (node 1) and b (node 2) of one partition, each in a
    /// directory of its own that lives as long as the returned dirs; b's
    /// log on the fault-injecting I/O if `b_faulty`.
    fn two_replicas(b_faulty: bool) -> (Rc<Replica>, Rc<Replica>, [tempfile::TempDir; 2]) {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        (open(dirs[0].path()), open_on(dirs[1].path(), b_faulty), dirs)
    }

    /// Leader epoch 3 of a (node 1) and b (node 2), led by node `leader`, set on both.
    fn epoch_three(a: &Replica, b: &Replica, leader: u32) -> PartitionAssignment {
        let nodes = if leader == 1 { vec![at(1), at(2)] } else { vec![at(2), at(1)] };
        let three = PartitionAssignment { leader_epoch: 3, ..PartitionAssignment::led_by_first(nodes) };
        a.set_assignment(at(1), &three, 0).unwrap();
        b.set_assignment(at(2), &three, 0).unwrap();
        three
    }

    #[test]
    fn a_follower_copies_the_leaders_batches_with_their_offsets_and_epochs() {
        tokio_uring::start(async {
            let (leader, follower, _dirs) = two_replicas(false);
            let two = epoch_three(&leader, &follower, 1);
            assert_eq!(follower.followed_leader(), Some(at(1)));
            assert_eq!(leader.followed_leader(), None);
            assert_eq!(follower.truncation_due(), Some(3), "a new follower truncates first");
            follower.truncate_for_epoch(0, 3).await.unwrap();
            assert_eq!(follower.truncation_due(), None);

            for value in [&b"a"[..], b"b"] {
                let batch = records::build_keyed(now_ms(), &[(None, Some(value))]);
                let info = leader.append(&batch, &mut Decompressor::new(), now_ms()).unwrap();
                leader.wait_appended(&info).await.unwrap();
            }
            // What the leader's fetch handler reads for a follower: up to its written end.
            let fetched = leader.read(0, 1 << 20, ReadBound::WrittenEnd).await.unwrap().unwrap();
            let bytes = fetched.into_bytes().await.unwrap();
            let info = follower.append_replicated(&bytes, now_ms()).unwrap();
            follower.wait_appended(&info).await.unwrap();
            assert_eq!((info.base_offset, info.last_offset), (0, 1), "the leader's offsets");
            assert_eq!(follower.latest_epoch(), Some(3), "the leader's epoch, recorded from its batches");
            assert_eq!(follower.end_offset_for(3), (3, 2));

            // The follower reports its end; the leader's high watermark moves and the follower learns it.
            let progress = leader.follower_fetched(fid(2), follower.log().log_end_offset(), 10, &registered()).unwrap();
            assert_eq!(progress.high_watermark, 2);
            assert_eq!(follower.high_watermark(), 0);
            follower.set_follower_high_watermark(progress.high_watermark);
            assert_eq!(follower.high_watermark(), 2);
            follower.set_follower_high_watermark(1);
            assert_eq!(follower.high_watermark(), 2, "never back");

            // A new leader at epoch 4 had only offset 0 of epoch 3: the follower cuts its tail there.
            let moved = PartitionAssignment { leader: Some(at(3)), leader_epoch: 4, partition_epoch: 1, ..two.clone() };
            follower.set_assignment(at(2), &moved, 20).unwrap();
            assert_eq!(follower.truncation_due(), Some(4));
            let to = crate::partition::leader_rules::truncation_offset(follower.log().log_end_offset(), 1);
            follower.truncate_for_epoch(to, 4).await.unwrap();
            assert_eq!((follower.log().log_end_offset(), follower.truncation_due()), (1, None));
            assert_eq!(follower.end_offset_for(3), (3, 1), "epoch 3 ends where the log now ends");
            let left = follower.read(0, 1 << 20, ReadBound::WrittenEnd).await.unwrap().unwrap();
            assert_eq!(
                crate::model::batch::BatchHeader::parse(&left.into_bytes().await.unwrap()).unwrap().last_offset_delta,
                0
            );
            leader.log().close().await.unwrap();
            follower.log().close().await.unwrap();
        });
    }

    async fn write(replica: &Replica, value: &[u8]) {
        let batch = records::build_keyed(now_ms(), &[(None, Some(value))]);
        let info = replica.append(&batch, &mut Decompressor::new(), now_ms()).unwrap();
        replica.wait_appended(&info).await.unwrap();
    }

    async fn copy(from: &Replica, to: &Replica) {
        let offset = to.log().log_end_offset();
        let Some(fetched) = from.read(offset, 1 << 20, ReadBound::WrittenEnd).await.unwrap() else { return };
        let info = to.append_replicated(&fetched.into_bytes().await.unwrap(), now_ms()).unwrap();
        to.wait_appended(&info).await.unwrap();
    }

    /// A batch with `value`, of idempotent producer 7 at `sequence`.
    fn idempotent(value: &[u8], sequence: i32) -> Vec<u8> {
        use crate::model::batch::{self, field};
        let mut bytes = records::build_keyed(now_ms(), &[(None, Some(value))]);
        batch::put(&mut bytes, field::PRODUCER_ID, &7i64.to_be_bytes());
        batch::put(&mut bytes, field::PRODUCER_EPOCH, &0i16.to_be_bytes());
        batch::put(&mut bytes, field::BASE_SEQUENCE, &sequence.to_be_bytes());
        batch::refresh_crc(&mut bytes);
        bytes
    }

    /// Producer 7 offers `value` at `sequence` to `leader`: appended (not yet written) or refused.
    fn offer(leader: &Replica, value: &[u8], sequence: i32) -> Result<crate::storage::AppendInfo, PartitionError> {
        leader.append(&idempotent(value, sequence), &mut Decompressor::new(), now_ms())
    }

    /// Producer 7 writes `value` at `sequence` to `leader`.
    async fn produce(leader: &Replica, value: &[u8], sequence: i32) {
        let info = offer(leader, value, sequence).unwrap();
        leader.wait_appended(&info).await.unwrap();
    }

    /// `b` (node 2) comes to lead in `assignment`'s epoch and producer 7
    /// retries `value` at `sequence`, which b holds at `offset`, its last:
    /// answered with that offset as a duplicate, not stored again.
    fn assert_leads_and_knows_the_retry(
        b: &Replica,
        assignment: PartitionAssignment,
        value: &[u8],
        sequence: i32,
        offset: i64,
    ) {
        b.set_assignment(at(2), &assignment, 10).unwrap();
        let retry = b.append(&idempotent(value, sequence), &mut Decompressor::new(), now_ms());
        let info = retry.expect("a duplicate is answered, not refused");
        assert_eq!(
            (info.base_offset, b.log().log_end_offset()),
            (offset, offset + 1),
            "answered with its offset, not stored again"
        );
    }

    /// A follower that truncated for a new leader (a cut of its log),
    /// copied that leader's batches, then came to lead answers a producer's
    /// retry of a batch it holds as a duplicate: the truncation's cut is
    /// applied before the batches copied since are recorded. (Chaos finding
    /// 6 is the same with a failed write's rollback: the test below.)
    #[test]
    fn a_follower_that_truncated_and_then_leads_knows_the_batches_it_copied_since() {
        tokio_uring::start(async {
            let (a, b, _dirs) = two_replicas(false);
            let three = epoch_three(&a, &b, 1);
            b.truncate_for_epoch(0, 3).await.unwrap();
            produce(&a, b"s0", 0).await;
            produce(&a, b"s1", 1).await;
            copy(&a, &b).await;
            // b leads at epoch 4 with both, writes nothing; a follows it and
            // cuts nothing; then a leads again at epoch 5 and b, following,
            // truncates its epoch-4 start (a cut of the log at its end).
            let four =
                PartitionAssignment { leader: Some(at(2)), leader_epoch: 4, partition_epoch: 1, ..three.clone() };
            b.set_assignment(at(2), &four, 1).unwrap();
            let five =
                PartitionAssignment { leader: Some(at(1)), leader_epoch: 5, partition_epoch: 2, ..three.clone() };
            a.set_assignment(at(1), &five, 2).unwrap();
            b.set_assignment(at(2), &five, 2).unwrap();
            b.truncate_for_epoch(1, 5).await.unwrap();
            assert_eq!(b.log().log_end_offset(), 1, "offset 1 cut");
            copy(&a, &b).await;
            produce(&a, b"s2", 2).await;
            copy(&a, &b).await;
            assert_eq!(b.log().log_end_offset(), 3);

            // b leads at epoch 6; the producer retries sequence 2.
            let six = PartitionAssignment { leader: Some(at(2)), leader_epoch: 6, partition_epoch: 3, ..three };
            assert_leads_and_knows_the_retry(&b, six, b"s2", 2, 2);
            a.log().close().await.unwrap();
            b.log().close().await.unwrap();
        });
    }

    /// Chaos finding 6, as it happened: a follower's write fails (its disk
    /// is full) and is rolled back; it copies that batch again and the next;
    /// then it comes to lead and the producer retries the last one. Seen
    /// failing before the fix (stored again at offset 3): the rollback's cut
    /// was applied to the producer table only at the first append as
    /// leader, and took the batches copied since with it.
    #[test]
    fn a_follower_whose_write_failed_and_then_leads_knows_the_batches_it_copied_since() {
        tokio_uring::start(async {
            let (a, b, _dirs) = two_replicas(true);
            let three = epoch_three(&a, &b, 1);
            b.truncate_for_epoch(0, 3).await.unwrap();
            produce(&a, b"s0", 0).await;
            produce(&a, b"s1", 1).await;
            crate::storage::faulty_io::io().fail_writes(1);
            let fetched = a.read(0, 1 << 20, ReadBound::WrittenEnd).await.unwrap().unwrap();
            let info = b.append_replicated(&fetched.into_bytes().await.unwrap(), now_ms()).unwrap();
            assert!(b.wait_appended(&info).await.is_err(), "the write fails: the disk is full");
            assert_eq!(b.log().log_end_offset(), 0, "rolled back");
            copy(&a, &b).await;
            produce(&a, b"s2", 2).await;
            copy(&a, &b).await;
            assert_eq!(b.log().log_end_offset(), 3);

            let four = PartitionAssignment { leader: Some(at(2)), leader_epoch: 4, partition_epoch: 1, ..three };
            assert_leads_and_knows_the_retry(&b, four, b"s2", 2, 2);
            a.log().close().await.unwrap();
            b.log().close().await.unwrap();
        });
    }

    /// A leader on the faulty disk whose one write of producer 7's batches
    /// 1 to 5 (after batch 0, written) fails and is rolled back.
    async fn leader_whose_write_of_five_batches_failed(dir: &std::path::Path) -> Rc<Replica> {
        let leader = open_on(dir, true);
        produce(&leader, b"s0", 0).await;
        crate::storage::faulty_io::io().fail_writes(1);
        let failing: Vec<_> = (1..=5).map(|sequence| offer(&leader, b"lost", sequence).unwrap()).collect();
        for info in &failing {
            assert!(leader.wait_appended(info).await.is_err(), "one write of all five fails");
        }
        assert_eq!(leader.log().log_end_offset(), 1, "rolled back");
        leader
    }

    /// Chaos finding 7 (`--seed 14`): a leader's write of a producer's
    /// batches fails (its disk is full) and is rolled back, taking every
    /// batch of the producer's its table remembered. The producer's next
    /// batch, pipelined ahead of the retries of those, must be refused.
    /// Seen failing before the fix (appended at offset 1, a gap of five
    /// sequences): the table forgot the producer, so any sequence went;
    /// librdkafka then took the retries, refused as out of order behind a
    /// later acknowledged batch, as written, and two acknowledged records
    /// were lost.
    #[test]
    fn a_rollback_of_every_batch_a_producer_has_remembered_keeps_its_next_sequence() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let leader = leader_whose_write_of_five_batches_failed(dir.path()).await;
            let ahead = offer(&leader, b"s6", 6);
            assert!(ahead.is_err(), "a batch past the rolled-back ones is refused, not appended: {ahead:?}");
            assert_eq!(leader.log().log_end_offset(), 1, "not appended");
            for sequence in 1..=6 {
                produce(&leader, b"retried", sequence).await;
            }
            assert_eq!(leader.log().log_end_offset(), 7, "the retries, in order");
            leader.log().close().await.unwrap();
        });
    }

    /// Chaos finding 8 (`--seed 14`): the batch pipelined behind ones a
    /// rollback took was refused OUT_OF_ORDER_SEQUENCE_NUMBER, which
    /// librdkafka answers by bumping its producer epoch and sending again,
    /// under new sequences, what it had in flight; what a crash had left
    /// written of those was then stored twice. It must be refused as a
    /// storage error, retried in order (a Kafka leader whose disk fails
    /// answers every batch behind with one), until the rolled-back batches'
    /// retry is appended; out of order after that is out of order again.
    #[test]
    fn a_batch_behind_rolled_back_ones_is_refused_as_their_storage_error() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let leader = leader_whose_write_of_five_batches_failed(dir.path()).await;
            let ahead = offer(&leader, b"s6", 6);
            assert!(
                matches!(ahead, Err(PartitionError::SequenceAheadOfRollback { expected: 1, got: 6 })),
                "refused as the storage error that took the batches before it: {ahead:?}"
            );
            assert_eq!(leader.log().log_end_offset(), 1, "not appended");
            produce(&leader, b"retried", 1).await;
            assert_eq!(leader.log().log_end_offset(), 2, "the retry, in order");
            let still_ahead = offer(&leader, b"s6", 6);
            assert!(
                matches!(still_ahead, Err(PartitionError::OutOfOrderSequence { expected: 2, got: 6 })),
                "the retry came: a gap now is the producer's own: {still_ahead:?}"
            );
            leader.log().close().await.unwrap();
        });
    }

    /// KIP-320 end to end on two logs: an old leader's tail that the new
    /// leader never had is found by the fetch's last epoch and cut where
    /// both logs agree, with no OffsetsForLeaderEpoch round trip.
    #[test]
    fn an_old_leaders_diverging_tail_is_cut_by_its_fetches_last_epoch() {
        use crate::partition::leader_rules::FetchPosition;
        tokio_uring::start(async {
            let (a, b, _dirs) = two_replicas(false);
            // Epoch 3: b leads, writes 0 and 1, a copies them.
            let three = epoch_three(&a, &b, 2);
            write(&b, b"x0").await;
            write(&b, b"x1").await;
            copy(&b, &a).await;
            // b writes 2 and 3 that a never gets; then a leads at epoch 4 and writes 2.
            write(&b, b"lost2").await;
            write(&b, b"lost3").await;
            let four =
                PartitionAssignment { leader: Some(at(1)), leader_epoch: 4, partition_epoch: 1, ..three.clone() };
            a.set_assignment(at(1), &four, 1).unwrap();
            write(&a, b"a2").await;
            // b returns as a follower of a: it fetches at once, reconciling on fetch.
            assert!(b.set_assignment(at(2), &four, 2).unwrap());
            let due = b.truncation_due().expect("a new leader");
            assert!(b.reconciles_on_fetch(due), "a log with epochs reconciles by its fetches");
            assert_eq!(b.truncation_due(), None);
            let (last_epoch, fetch_offset) = (b.latest_epoch().unwrap(), b.log().log_end_offset());
            assert_eq!((last_epoch, fetch_offset), (3, 4));
            let position = a.fetch_position(last_epoch, fetch_offset);
            assert_eq!(position, FetchPosition::Diverging { epoch: 3, end_offset: 2 });
            let FetchPosition::Diverging { epoch, end_offset } = position else { unreachable!() };
            b.truncate_diverging((epoch, end_offset)).await.unwrap();
            assert_eq!(b.log().log_end_offset(), 2, "cut where both logs agree");
            assert_eq!(a.fetch_position(b.latest_epoch().unwrap(), 2), FetchPosition::OnLog);
            copy(&a, &b).await;
            assert_eq!((b.log().log_end_offset(), b.latest_epoch()), (3, Some(4)));
            assert_eq!(a.fetch_position(4, 3), FetchPosition::OnLog);
            let values = b.read(0, 1 << 20, ReadBound::WrittenEnd).await.unwrap().unwrap().into_bytes().await.unwrap();
            let text = String::from_utf8_lossy(&values);
            assert!(text.contains("x1") && text.contains("a2") && !text.contains("lost"), "{text}");

            // A follower the leader finds out of range asks OffsetsForLeaderEpoch before fetching again.
            b.fetched_out_of_range();
            let due = b.truncation_due().expect("out of range");
            assert!(!b.reconciles_on_fetch(due));
            b.truncate_for_epoch(b.log().log_end_offset(), due).await.unwrap();
            assert_eq!(b.truncation_due(), None);
            assert!(b.reconciles_on_fetch(due), "reconciled: back to fetching");
            a.log().close().await.unwrap();
            b.log().close().await.unwrap();
        });
    }

    /// An epoch this replica began as leader without appending in it starts
    /// at its log end; the new leader never had it. The cut at the log end
    /// removes it (Kafka's truncateTo does), or every fetch would diverge.
    #[test]
    fn an_epoch_begun_without_appends_is_cut_even_when_the_log_is_not() {
        tokio_uring::start(async {
            let (a, b, _dirs) = two_replicas(false);
            let three = epoch_three(&a, &b, 1);
            write(&a, b"x0").await;
            copy(&a, &b).await;
            // b leads epoch 4 without writing; then a leads epoch 5.
            let four =
                PartitionAssignment { leader: Some(at(2)), leader_epoch: 4, partition_epoch: 1, ..three.clone() };
            b.set_assignment(at(2), &four, 1).unwrap();
            let five = PartitionAssignment { leader: Some(at(1)), leader_epoch: 5, partition_epoch: 2, ..four };
            a.set_assignment(at(1), &five, 2).unwrap();
            b.set_assignment(at(2), &five, 2).unwrap();
            assert_eq!(b.latest_epoch(), Some(4));
            let position = a.fetch_position(4, 1);
            let crate::partition::leader_rules::FetchPosition::Diverging { epoch, end_offset } = position else {
                panic!("{position:?}")
            };
            assert_eq!((epoch, end_offset), (3, 1));
            b.truncate_diverging((epoch, end_offset)).await.unwrap();
            assert_eq!((b.log().log_end_offset(), b.latest_epoch()), (1, Some(3)));
            assert_eq!(a.fetch_position(3, 1), crate::partition::leader_rules::FetchPosition::OnLog);
            a.log().close().await.unwrap();
            b.log().close().await.unwrap();
        });
    }
}
