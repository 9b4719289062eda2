//! `Replica`: one partition as this shard hosts it (Kafka's `Partition` and
//! `UnifiedLog`, Redpanda's `cluster::partition`). Between the Kafka
//! handlers and storage, it owns what makes a log a partition: validation
//! of produced batches, the idempotent producers, the leader epoch (and its
//! checkpoint file), the high watermark, and the notification long polls
//! wait on.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;

use tokio::sync::Notify;

use crate::config::TopicConfig;
use crate::model::compression::Decompressor;
use crate::model::{now_ms, TopicPartition};
use crate::storage::{
    AppendInfo, HeadDeletion, HotTail, LogConfig, PartitionLog, ReadSlice, RecoveryReport, StorageError,
};

use super::leader_epoch::{LeaderEpochCache, LEADER_EPOCH_INITIAL};
use super::producers::{ProducerBudget, ProducerTable, SequenceCheck};
use super::replication::{ReadBound, Replication};
use super::validate::{recompressed, validate_records};
use super::PartitionError;

/// How far back from a log's end its producer table is rebuilt when it
/// reopens: what was in flight at a crash (5 requests of a producer, 64 KiB
/// batches each, several producers), while a start-up reads at most this
/// much per partition (batches under 4 KiB are read whole).
const PRODUCER_REBUILD_WINDOW_BYTES: u64 = 4 << 20;

/// What a shard lends every replica it hosts.
pub struct ReplicaHost {
    /// The memory budget the logs share for their recent writes.
    pub hot_tail: Rc<HotTail>,
    /// The bound on idempotent producers remembered over all replicas.
    pub producers: Rc<ProducerBudget>,
    /// The previous run ended with a clean shutdown (less to check on recovery).
    pub clean_shutdown: bool,
}

pub struct Replica {
    id: TopicPartition,
    log: Rc<PartitionLog>,
    /// The topic's configs, parsed when the metadata snapshot changes.
    config: RefCell<TopicConfig>,
    pub(super) producers: Rc<ProducerTable>,
    pub(super) leader_epochs: RefCell<LeaderEpochCache>,
    /// The partition's leader epoch as the metadata gives it: stamped on
    /// every batch this replica appends as leader, and what requests'
    /// `current_leader_epoch` is checked against.
    pub(super) leader_epoch: Cell<i32>,
    /// Fired by the log whenever its written end moves, and by the replica
    /// when its high watermark or its role does.
    written: Rc<Notify>,
    /// Its place in the partition: leader or follower, and the leader's
    /// view of its followers (replication.rs).
    pub(super) replication: RefCell<Replication>,
    /// The last high watermark answered: it never moves back.
    pub(super) high_watermark: Cell<i64>,
}

impl Replica {
    /// Opens (creating it if need be) the replica whose files are in `dir`:
    /// recovers its log and reads its leader epoch checkpoint. A replica
    /// without one starts epoch 0 at its log end, durably.
    pub fn open(
        id: TopicPartition,
        dir: &Path,
        config: TopicConfig,
        log_config: LogConfig,
        host: &ReplicaHost,
    ) -> Result<(Rc<Replica>, RecoveryReport), PartitionError> {
        Self::open_log_with(id, dir, config, host, |written| {
            PartitionLog::open(dir, log_config, host.clean_shutdown, written, host.hot_tail.clone())
        })
    }

    /// As [`Self::open`], with the log opened by `open_log` (the tests give
    /// one whose file operations fail on demand).
    pub(super) fn open_log_with(
        id: TopicPartition,
        dir: &Path,
        config: TopicConfig,
        host: &ReplicaHost,
        open_log: impl FnOnce(Rc<Notify>) -> Result<(Rc<PartitionLog>, RecoveryReport), StorageError>,
    ) -> Result<(Rc<Replica>, RecoveryReport), PartitionError> {
        // Read before the log opens, so a damaged file keeps the partition offline.
        let mut leader_epochs = LeaderEpochCache::open(dir)?;
        let written = Rc::new(Notify::new());
        let (log, report) = open_log(written.clone())?;
        let latest = match leader_epochs.latest() {
            Some(latest) => latest,
            None => {
                leader_epochs.begin(LEADER_EPOCH_INITIAL, log.log_end_offset())?;
                leader_epochs.latest().expect("an epoch just began")
            }
        };
        let replica = Replica {
            id,
            log,
            config: RefCell::new(config),
            producers: ProducerTable::new(&host.producers),
            leader_epochs: RefCell::new(leader_epochs),
            leader_epoch: Cell::new(latest.epoch),
            written,
            replication: RefCell::new(Replication::default()),
            high_watermark: Cell::new(0),
        };
        Ok((Rc::new(replica), report))
    }

    pub fn topic(&self) -> &str {
        &self.id.topic
    }

    pub fn partition(&self) -> i32 {
        self.id.partition
    }

    /// The partition's log, for reads and for the shard's retention and cleaner tasks.
    pub fn log(&self) -> &Rc<PartitionLog> {
        &self.log
    }

    /// A topic config change: later appends, rolls and flushes follow it.
    pub fn set_config(&self, config: TopicConfig, log_config: LogConfig) {
        *self.config.borrow_mut() = config;
        self.log.set_config(log_config);
    }

    pub fn config(&self) -> std::cell::Ref<'_, TopicConfig> {
        self.config.borrow()
    }

    /// The partition's current leader epoch (the one this replica stamps on
    /// what it appends while it leads).
    pub fn leader_epoch(&self) -> i32 {
        debug_assert!(
            self.leader_epochs.borrow().latest().is_none_or(|e| e.epoch <= self.leader_epoch.get()),
            "the epoch cache never runs ahead of the partition's leader epoch"
        );
        self.leader_epoch.get()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    /// Whole batches from the one holding `offset` on, within `bound`:
    /// consumers read below the high watermark, followers up to the
    /// written end. None at the bound.
    pub async fn read(&self, offset: i64, max_bytes: u32, bound: ReadBound) -> Result<Option<ReadSlice>, StorageError> {
        let end = match bound {
            ReadBound::HighWatermark => self.high_watermark(),
            ReadBound::WrittenEnd => self.log.written_end_offset(),
        };
        self.log.read_below(offset, max_bytes, end).await
    }

    /// Fired whenever the high watermark moves: what long polls wait on.
    pub fn writes(&self) -> &Notify {
        &self.written
    }

    /// Appends a client's batches as the leader (the caller has refused
    /// clients' appends to internal topics): refuses what the topic's
    /// rules forbid, answers a retried idempotent batch with the offsets it
    /// got the first time, recompresses to the topic's codec, and stamps
    /// the leader epoch. The bytes are written later: await
    /// [`wait_appended`](Self::wait_appended) for the acks.
    pub fn append(
        &self,
        records: &[u8],
        decompressor: &mut Decompressor,
        now_ms: i64,
    ) -> Result<AppendInfo, PartitionError> {
        let config = self.config.borrow();
        let first = validate_records(records, &config, decompressor, now_ms).inspect_err(|refusal| {
            tracing::warn!(topic = self.topic(), partition = self.partition(), "produce refused: {refusal}");
        })?;
        self.producers.follow_log(self.log.write_epoch(), |seen| self.log.surviving_end_since(seen));
        match self.producers.check(&first) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate { base_offset } => {
                return Ok(AppendInfo {
                    base_offset,
                    last_offset: base_offset + first.last_offset_delta as i64,
                    log_start_offset: self.log.log_start_offset(),
                    write_epoch: self.log.write_epoch(),
                });
            }
            SequenceCheck::OutOfOrder { expected, got } => {
                return Err(PartitionError::OutOfOrderSequence { expected, got });
            }
            SequenceCheck::AheadOfRollback { expected, got } => {
                return Err(PartitionError::SequenceAheadOfRollback { expected, got });
            }
            SequenceCheck::FencedEpoch => {
                return Err(PartitionError::FencedProducerEpoch { epoch: first.producer_epoch })
            }
        }
        let again = match config.compression {
            Some(codec) => recompressed(records, codec, decompressor)?,
            None => None,
        };
        let info = self.log.append(again.as_deref().unwrap_or(records), self.leader_epoch(), now_ms)?;
        self.producers.record(&first, info.base_offset, now_ms);
        Ok(info)
    }

    /// Appends the broker's own records (the offsets topic's commits and
    /// tombstones): built by the broker, so not validated, but stamped with
    /// the leader epoch as every batch is.
    pub fn append_own(&self, batch: &[u8], now_ms: i64) -> Result<AppendInfo, PartitionError> {
        Ok(self.log.append(batch, self.leader_epoch(), now_ms)?)
    }

    /// Waits until `appended` is written as the topic's flush policy asks.
    pub async fn wait_appended(&self, appended: &AppendInfo) -> Result<(), PartitionError> {
        // The producer table forgets what a failed write rolled back at the
        // next append (`ProducerTable::follow_log`), not here: the rollback
        // may have kept this batch, and later appends may already be recorded.
        Ok(self.log.wait_appended(appended).await?)
    }

    /// Kafka's DeleteRecords: moves the log start up to `offset` (-1: the
    /// high watermark; past it: OFFSET_OUT_OF_RANGE), deleting the segments
    /// wholly below it. Returns the new log start offset.
    pub async fn delete_records(&self, offset: i64) -> Result<(i64, Option<HeadDeletion>), PartitionError> {
        // Kafka's leader deletes below its high watermark at most: what a
        // follower may not have yet is not the client's to delete.
        let high_watermark = self.high_watermark();
        let target = if offset == -1 { high_watermark } else { offset };
        if target > high_watermark {
            let (log_start, written_end_offset) = (self.log_start_offset(), self.log.written_end_offset());
            return Err(StorageError::OffsetOutOfRange { offset, log_start, written_end_offset }.into());
        }
        Ok(self.log.delete_records(target).await?)
    }

    /// Rebuilds the idempotent producers of a replica opened from the files
    /// of an earlier run, so that a batch stored just before a crash and
    /// retried after it is answered as a duplicate.
    pub async fn restore_producers(&self) {
        match self.log.recent_idempotent_batches(PRODUCER_REBUILD_WINDOW_BYTES).await {
            Ok(batches) => {
                // The table is rebuilt from the log as it is now.
                self.producers.follow_log(self.log.write_epoch(), |seen| self.log.surviving_end_since(seen));
                // Their appends' times are unknown: they count from the restart.
                let now_ms = now_ms();
                for h in &batches {
                    self.producers.record(h, h.base_offset, now_ms);
                }
            }
            Err(error) => tracing::warn!(
                topic = self.topic(),
                partition = self.partition(),
                %error,
                "cannot rebuild idempotent producer state: a retried batch may be stored twice"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Duration;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::model::records;
    use crate::partition::leader_epoch::CHECKPOINT_FILE;
    use crate::partition::WriteWaiters;

    fn host() -> ReplicaHost {
        ReplicaHost { hot_tail: HotTail::new(1 << 20), producers: Rc::default(), clean_shutdown: true }
    }

    fn open(dir: &Path, partition: i32) -> Result<Rc<Replica>, PartitionError> {
        let config = TopicConfig::broker_defaults(&BrokerConfig::default());
        let id = TopicPartition::new("t", partition);
        Replica::open(id, dir, config, LogConfig::default(), &host()).map(|(replica, _)| replica)
    }

    async fn produce(replica: &Replica, values: &[&[u8]]) -> AppendInfo {
        let pairs: Vec<records::KeyValue<'_>> = values.iter().map(|v| (None, Some(*v))).collect();
        let batch = records::build_keyed(now_ms(), &pairs);
        let info = replica.append(&batch, &mut Decompressor::new(), now_ms()).expect("append");
        replica.wait_appended(&info).await.expect("written");
        info
    }

    /// The partition leader epoch field of every batch stored from offset 0.
    async fn stored_epochs(replica: &Replica) -> Vec<i32> {
        let slice = replica.log().read(0, 1 << 20).await.unwrap().expect("records");
        let bytes = slice.into_bytes().await.unwrap();
        let mut epochs = Vec::new();
        let mut rest = &bytes[..];
        while let Ok(header) = crate::model::batch::BatchHeader::parse(rest) {
            epochs.push(i32::from_be_bytes(rest[12..16].try_into().unwrap()));
            rest = &rest[header.total_bytes()..];
        }
        epochs
    }

    #[test]
    fn a_new_replica_begins_epoch_0_at_its_log_end_and_keeps_it_across_reopening() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let checkpoint = dir.path().join(CHECKPOINT_FILE);
            let replica = open(dir.path(), 0).unwrap();
            assert_eq!(fs::read_to_string(&checkpoint).unwrap(), "0\n1\n0 0\n");
            produce(&replica, &[b"a", b"b"]).await;
            replica.log().close().await.unwrap();
            drop(replica);

            let reopened = open(dir.path(), 0).unwrap();
            assert_eq!(reopened.leader_epoch(), 0);
            assert_eq!(fs::read_to_string(&checkpoint).unwrap(), "0\n1\n0 0\n", "not rewritten on reopen");
            reopened.log().close().await.unwrap();
            drop(reopened);

            // A data directory from before the checkpoint existed.
            fs::remove_file(&checkpoint).unwrap();
            let migrated = open(dir.path(), 0).unwrap();
            assert_eq!(fs::read_to_string(&checkpoint).unwrap(), "0\n1\n0 2\n", "epoch 0 from the log end");
            migrated.log().close().await.unwrap();
        });
    }

    #[test]
    fn every_batch_appended_carries_the_replicas_epoch() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            // As a replica that led in epochs 0 and 4 would have left it.
            fs::write(dir.path().join(CHECKPOINT_FILE), "0\n2\n0 0\n4 0\n").unwrap();
            let replica = open(dir.path(), 0).unwrap();
            assert_eq!(replica.leader_epoch(), 4);
            produce(&replica, &[b"a"]).await;
            let own = replica.append_own(&records::build_keyed(now_ms(), &[(Some(b"k"), Some(b"v"))]), now_ms());
            replica.wait_appended(&own.unwrap()).await.unwrap();
            assert_eq!(stored_epochs(&replica).await, [4, 4]);
            replica.log().close().await.unwrap();
        });
    }

    #[test]
    fn a_garbled_checkpoint_keeps_the_replica_offline() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CHECKPOINT_FILE), "0\n1\nzero 0\n").unwrap();
        tokio_uring::start(async {
            assert!(matches!(open(dir.path(), 0), Err(PartitionError::CheckpointCorrupt { line: 3, .. })));
        });
    }

    #[test]
    fn a_write_wakes_only_the_long_polls_of_its_partition() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let x = open(&dir.path().join("t-0"), 0).unwrap();
            let y = open(&dir.path().join("t-1"), 1).unwrap();
            let mut on_y = WriteWaiters::register([y.writes()]);
            produce(&x, &[b"to x"]).await;
            let woken = tokio::time::timeout(Duration::from_millis(50), on_y.any()).await;
            assert!(woken.is_err(), "a write to x woke a long poll on y");
            let mut on_x_and_y = WriteWaiters::register([x.writes(), y.writes()]);
            produce(&y, &[b"to y"]).await;
            assert!(tokio::time::timeout(Duration::from_secs(5), on_y.any()).await.is_ok());
            assert!(tokio::time::timeout(Duration::from_secs(5), on_x_and_y.any()).await.is_ok());
            x.log().close().await.unwrap();
            y.log().close().await.unwrap();
        });
    }
}
