//! The replicas this shard hosts, kept in step with the metadata snapshot:
//! a partition with a replica on (this node, this shard) is opened, a
//! deleted topic's replicas are closed and their files removed, and topic
//! config changes reach the open ones.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::cluster::ReplicaPlacement;
use crate::config::{BrokerConfig, TopicConfig};
use crate::metadata::{Snapshot, TopicMeta};
use crate::model::TopicPartition;
use crate::partition::{hw_checkpoint, ProducerBudget, Replica, ReplicaHost};
use crate::storage::{HotTail, LogConfig};

use super::strays;

/// A topic's local replicas, indexed by partition; `None` where no replica is here.
struct TopicReplicas {
    id: uuid::Uuid,
    replicas: Vec<Option<Rc<Replica>>>,
    /// Whether the last snapshot placed a replica of the partition here
    /// (open or not: one that failed to open is not retried on every
    /// snapshot, only when a reassignment brings it here again).
    assigned: Vec<bool>,
}

pub struct Partitions {
    topics: RefCell<HashMap<String, TopicReplicas>>,
    /// The memory budget the logs share for their recent writes.
    hot_tail: Rc<HotTail>,
    /// The bound on idempotent producers the replicas share.
    pub producers: Rc<ProducerBudget>,
    /// Wakes the shard's ISR task: a follower caught up (replication/isr.rs).
    isr_changes: Notify,
    /// Wakes the shard's fetcher supervisor: some replica's role changed.
    roles: Notify,
    /// The shard's high watermark checkpoint (partition/hw_checkpoint.rs).
    high_watermarks: RefCell<HighWatermarks>,
}

/// Where this shard checkpoints its replicas' high watermarks, what the
/// checkpoint held when the shard started (each replica starts from its
/// entry), the text last handed to a write (unchanged: not written again),
/// and whether a write is under way on its helper thread.
#[derive(Default)]
struct HighWatermarks {
    path: Option<PathBuf>,
    restored: HashMap<TopicPartition, i64>,
    written: String,
    /// Set while a periodic write runs off the shard's thread: shared with
    /// that one thread only, never with another shard.
    writing: Arc<AtomicBool>,
}

/// How often clean shutdown looks whether a periodic checkpoint write has
/// ended before it writes the last one (they share the temporary file).
const CHECKPOINT_WRITE_POLL: Duration = Duration::from_millis(5);

pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

pub fn log_config(topic: &TopicConfig, broker: &BrokerConfig) -> LogConfig {
    LogConfig {
        segment_bytes: topic.segment_bytes,
        segment_ms: topic.segment_ms,
        index_interval_bytes: broker.log_index_interval_bytes,
        flush_messages: topic.flush_messages,
        flush_ms: topic.flush_ms,
        direct_io: broker.log_direct_io,
    }
}

impl Partitions {
    pub fn new(broker: &BrokerConfig) -> Partitions {
        // Only logs written with O_DIRECT keep hot bytes: the page cache
        // holds the others'.
        let hot_bytes = if broker.log_direct_io { broker.log_hot_tail_bytes } else { 0 };
        Partitions {
            topics: RefCell::default(),
            hot_tail: HotTail::new(hot_bytes),
            producers: Rc::new(ProducerBudget::default()),
            isr_changes: Notify::new(),
            roles: Notify::new(),
            high_watermarks: RefCell::default(),
        }
    }

    /// A follower may join an ISR: the shard's ISR task looks now rather
    /// than at its next tick (Kafka expands the ISR on the fetch itself).
    pub fn isr_changes_due(&self) {
        self.isr_changes.notify_one();
    }

    /// Resolves after some replica's role or leader epoch changed.
    pub async fn roles_changed(&self) {
        self.roles.notified().await
    }

    /// Resolves when [`isr_changes_due`](Self::isr_changes_due) was called.
    pub async fn isr_changes_wanted(&self) {
        self.isr_changes.notified().await
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Rc<Replica>> {
        let topics = self.topics.borrow();
        let replicas = &topics.get(topic)?.replicas;
        usize::try_from(partition).ok().and_then(|p| replicas.get(p)).and_then(|replica| replica.clone())
    }

    /// Brings the local replicas in line with `snapshot`: opens what is new
    /// here, closes and deletes the replicas of topics that are gone (or were
    /// re-created under a new id). Returns the replicas opened from the files
    /// of an earlier run, whose producers are to be rebuilt.
    pub async fn sync(
        &self,
        here: ReplicaPlacement,
        snapshot: &Snapshot,
        broker: &BrokerConfig,
        clean: bool,
    ) -> Vec<Rc<Replica>> {
        let gone: Vec<String> = {
            let topics = self.topics.borrow();
            topics
                .iter()
                .filter(|(name, t)| snapshot.topic(name).is_none_or(|meta| meta.id != t.id))
                .map(|(name, _)| name.clone())
                .collect()
        };
        for name in gone {
            self.remove(&name, broker).await;
        }
        // A reassignment moved these replicas elsewhere: Kafka's StopReplica with delete.
        for (name, partition, replica) in self.moved_away(here, snapshot) {
            delete_replica(&replica, &partition_dir(&broker.data_dir, &name, partition)).await;
            tracing::info!(topic = name, partition, "replica moved away by a reassignment; its files are deleted");
        }
        self.read_high_watermarks(here, broker);
        let mut reopened = Vec::new();
        for meta in snapshot.topics.values() {
            self.open_new(here, meta, broker, clean, &mut reopened);
        }
        self.assign_roles(here, snapshot);
        reopened
    }

    /// Each local replica leads or follows as its partition's assignment
    /// says, at its leader epoch (see `Replica::set_assignment`). A replica
    /// that cannot record its new epoch durably stops leading: it is
    /// reported and left as it was, and the next snapshot tries again.
    fn assign_roles(&self, here: ReplicaPlacement, snapshot: &Snapshot) {
        let now_ms = crate::model::now_ms();
        let topics = self.topics.borrow();
        for (name, local) in topics.iter() {
            let Some(meta) = snapshot.topic(name) else { continue };
            for (replica, assignment) in local.replicas.iter().zip(&meta.partitions) {
                let Some(replica) = replica else { continue };
                match replica.set_assignment(here, assignment, now_ms) {
                    Ok(true) if assignment.replicas.len() > 1 => {
                        self.roles.notify_one();
                        tracing::info!(
                            topic = %name,
                            partition = replica.partition(),
                            leader = ?assignment.leader.map(|l| l.broker_id()),
                            leader_epoch = assignment.leader_epoch,
                            leads = assignment.is_led_by(here),
                            "partition role"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(topic = %name, partition = replica.partition(), error = %e, "cannot take the partition's new leader epoch")
                    }
                }
            }
        }
    }

    fn open_new(
        &self,
        here: ReplicaPlacement,
        meta: &TopicMeta,
        broker: &BrokerConfig,
        clean: bool,
        reopened: &mut Vec<Rc<Replica>>,
    ) {
        let mut topics = self.topics.borrow_mut();
        let entry = topics.entry(meta.name.clone()).or_insert_with(|| TopicReplicas {
            id: meta.id,
            replicas: Vec::new(),
            assigned: Vec::new(),
        });
        let config = match TopicConfig::resolve(&meta.configs, broker) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(topic = %meta.name, error = %e, "stored topic config is invalid; using broker defaults");
                TopicConfig::broker_defaults(broker)
            }
        };
        let log_config = log_config(&config, broker);
        // Topic config changes reach the open replicas here.
        for replica in entry.replicas.iter().flatten() {
            replica.set_config(config.clone(), log_config);
        }
        let host =
            ReplicaHost { hot_tail: self.hot_tail.clone(), producers: self.producers.clone(), clean_shutdown: clean };
        for (partition, assignment) in meta.partitions.iter().enumerate() {
            let placed_here = assignment.has_replica(here);
            let known = partition < entry.replicas.len();
            // New partitions, and replicas a reassignment brings to this shard.
            let newly_here = placed_here && !(known && entry.assigned[partition]);
            let replica = newly_here.then(|| {
                let id = TopicPartition::new(meta.name.as_str(), partition as i32);
                let dir = partition_dir(&broker.data_dir, &meta.name, partition as i32);
                let checkpointed = self.high_watermarks.borrow().restored.get(&id).copied();
                if let Err(e) = strays::claim(&dir, meta.id) {
                    tracing::error!(topic = %meta.name, partition, error = %e, "cannot claim the partition directory; the replica stays offline");
                    return None;
                }
                match Replica::open(id, &dir, config.clone(), log_config, &host) {
                    Ok((replica, report)) => {
                        // Before its role: a replica without one reads its high watermark as its log end.
                        if let Some(hw) = checkpointed {
                            replica.restore_high_watermark(hw);
                        }
                        tracing::info!(topic = %meta.name, partition, ?report, ?checkpointed, "partition log opened");
                        if !report.created {
                            reopened.push(replica.clone());
                        }
                        Some(replica)
                    }
                    Err(e) => {
                        tracing::error!(topic = %meta.name, partition, error = %e, "cannot open partition replica; it stays offline");
                        None
                    }
                }
            });
            if !known {
                entry.replicas.push(replica.flatten());
                entry.assigned.push(placed_here);
            } else if newly_here {
                entry.replicas[partition] = replica.flatten();
                entry.assigned[partition] = true;
            }
        }
    }

    /// Takes out the local replicas whose partitions no longer place a
    /// replica here (a completed or cancelled reassignment moved them).
    fn moved_away(&self, here: ReplicaPlacement, snapshot: &Snapshot) -> Vec<(String, i32, Rc<Replica>)> {
        let mut topics = self.topics.borrow_mut();
        let mut moved = Vec::new();
        for (name, local) in topics.iter_mut() {
            let Some(meta) = snapshot.topic(name) else { continue };
            for (partition, assignment) in meta.partitions.iter().enumerate() {
                if local.assigned.get(partition) == Some(&true) && !assignment.has_replica(here) {
                    local.assigned[partition] = false;
                    moved.extend(local.replicas[partition].take().map(|r| (name.clone(), partition as i32, r)));
                }
            }
        }
        moved
    }

    async fn remove(&self, name: &str, broker: &BrokerConfig) {
        let Some(topic) = self.topics.borrow_mut().remove(name) else { return };
        for (partition, replica) in topic.replicas.into_iter().enumerate() {
            let Some(replica) = replica else { continue };
            delete_replica(&replica, &partition_dir(&broker.data_dir, name, partition as i32)).await;
        }
        tracing::info!(topic = name, "topic deleted");
    }

    /// Every local replica, as of now.
    pub fn all(&self) -> Vec<Rc<Replica>> {
        self.topics.borrow().values().flat_map(|t| t.replicas.iter().flatten().cloned()).collect()
    }

    /// Reads the shard's high watermark checkpoint, once, before its first
    /// replicas open. A damaged one is reported and ignored: the replicas
    /// start from 0, as before checkpoints, which hides records until the
    /// followers fetch but exposes none.
    fn read_high_watermarks(&self, here: ReplicaPlacement, broker: &BrokerConfig) {
        let mut high_watermarks = self.high_watermarks.borrow_mut();
        if high_watermarks.path.is_some() {
            return;
        }
        let path = hw_checkpoint::path(&broker.data_dir, here.shard.0);
        match hw_checkpoint::read(&path) {
            Ok(restored) => high_watermarks.restored = restored,
            Err(e) => tracing::error!(error = %e, "high watermark checkpoint ignored: replicas start from 0"),
        }
        high_watermarks.path = Some(path);
    }

    /// The shard's checkpoint text and path, if it changed since the last
    /// write: the high watermarks of its replicated partitions (a single
    /// replica's is its log end, known without a checkpoint).
    fn high_watermarks_due(&self) -> Option<(PathBuf, String)> {
        let path = self.high_watermarks.borrow().path.clone()?;
        let mut entries: Vec<(TopicPartition, i64)> = self
            .all()
            .iter()
            .filter(|r| r.is_replicated())
            .map(|r| (TopicPartition::new(r.topic(), r.partition()), r.high_watermark()))
            .collect();
        let text = hw_checkpoint::format(&mut entries);
        let mut high_watermarks = self.high_watermarks.borrow_mut();
        if text == high_watermarks.written {
            return None;
        }
        high_watermarks.written = text.clone();
        Some((path, text))
    }

    /// Writes the high watermarks of the shard's replicated partitions to
    /// its checkpoint if they changed (the shard's checkpoint task, every
    /// replica.high.watermark.checkpoint.interval.ms). The write and its
    /// fsyncs go to a helper thread, as Kafka's run on its scheduler's: a
    /// journal commit behind an fsync may take long on a busy disk, and the
    /// shard's loop must not wait for it. One write at a time: while one
    /// runs, the next interval's is skipped.
    pub fn checkpoint_high_watermarks(&self) {
        let writing = self.high_watermarks.borrow().writing.clone();
        if writing.load(Ordering::Acquire) {
            return;
        }
        let Some((path, text)) = self.high_watermarks_due() else { return };
        writing.store(true, Ordering::Release);
        let spawned = std::thread::Builder::new().name("hw-checkpoint".into()).spawn({
            let writing = writing.clone();
            move || {
                if let Err(e) = hw_checkpoint::write(&path, &text) {
                    tracing::error!(error = %e, "cannot checkpoint high watermarks; retrying when they change");
                }
                writing.store(false, Ordering::Release);
            }
        });
        if let Err(e) = spawned {
            writing.store(false, Ordering::Release);
            self.high_watermarks.borrow_mut().written.clear();
            tracing::error!(error = %e, "cannot start the high watermark checkpoint's thread; retrying");
        }
    }

    /// Clean shutdown: the high watermarks are checkpointed (once a periodic
    /// write under way has ended), then every log flushes, syncs and writes
    /// its indexes.
    pub async fn close_all(&self) {
        let writing = self.high_watermarks.borrow().writing.clone();
        while writing.load(Ordering::Acquire) {
            tokio::time::sleep(CHECKPOINT_WRITE_POLL).await;
        }
        if let Some((path, text)) = self.high_watermarks_due() {
            if let Err(e) = hw_checkpoint::write(&path, &text) {
                tracing::error!(error = %e, "cannot checkpoint high watermarks at shutdown");
            }
        }
        for replica in self.all() {
            if let Err(e) = replica.log().close().await {
                tracing::error!(topic = replica.topic(), partition = replica.partition(), error = %e, "closing partition log");
            }
        }
    }
}

/// Closes a replica and removes its files: its topic was deleted, or it
/// was moved to another shard.
async fn delete_replica(replica: &Replica, dir: &Path) {
    if let Err(e) = replica.log().close().await {
        tracing::warn!(topic = replica.topic(), partition = replica.partition(), error = %e, "closing deleted partition");
    }
    // Cold path: deletions are rare, so a blocking unlink on the shard is acceptable.
    if let Err(e) = strays::remove_deleted(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "removing deleted partition's files");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cluster::{NodeId, PartitionAssignment, ShardId};
    use crate::metadata::MetadataRecord;

    #[test]
    fn a_log_is_opened_where_a_replica_of_the_partition_is() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let broker = BrokerConfig { data_dir: dir.path().into(), log_direct_io: false, ..BrokerConfig::default() };
            let at = |node, shard| ReplicaPlacement::new(NodeId(node), ShardId(shard));
            let here = at(1, 1);
            let partitions = vec![
                PartitionAssignment::single(at(1, 0)),
                PartitionAssignment::single(at(0, 1)),
                PartitionAssignment::single(here),
                PartitionAssignment { leader_epoch: 3, ..PartitionAssignment::led_by_first(vec![at(0, 0), here]) },
            ];
            let id = uuid::Uuid::from_u128(1);
            let mut snapshot = Snapshot::default();
            snapshot.apply(&MetadataRecord::CreateTopic { name: "t".into(), id, partitions, configs: BTreeMap::new() });
            let logs = Partitions::new(&broker);
            logs.sync(here, &snapshot, &broker, true).await;
            let open: Vec<i32> = (0..4).filter(|p| logs.get("t", *p).is_some()).collect();
            assert_eq!(open, [2, 3], "not another shard of this node, not this shard's number on another node");
            logs.close_all().await;
        });
    }

    #[test]
    fn a_reassignment_opens_the_new_replica_and_deletes_the_one_moved_away() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let broker = BrokerConfig { data_dir: dir.path().into(), log_direct_io: false, ..BrokerConfig::default() };
            let at = |node, shard| ReplicaPlacement::new(NodeId(node), ShardId(shard));
            let here = at(1, 1);
            let id = uuid::Uuid::from_u128(1);
            let mut snapshot = Snapshot::default();
            let partitions = vec![PartitionAssignment::led_by_first(vec![at(2, 0), at(3, 0)])];
            snapshot.apply(&MetadataRecord::CreateTopic { name: "t".into(), id, partitions, configs: BTreeMap::new() });
            let logs = Partitions::new(&broker);
            logs.sync(here, &snapshot, &broker, true).await;
            assert!(logs.get("t", 0).is_none());
            let change = |assignment| MetadataRecord::ChangePartition { name: "t".into(), partition: 0, assignment };
            let current = snapshot.topic("t").unwrap().partitions[0].clone();
            snapshot.apply(&change(current.reassigned(&[at(2, 0), here], |_| true).unwrap()));
            logs.sync(here, &snapshot, &broker, true).await;
            assert!(logs.get("t", 0).is_some_and(|r| !r.is_leader()), "the added replica is opened, as a follower");
            assert!(partition_dir(dir.path(), "t", 0).exists());
            let current = snapshot.topic("t").unwrap().partitions[0].clone();
            snapshot.apply(&change(current.reassignment_cancelled(|_| true).unwrap()));
            logs.sync(here, &snapshot, &broker, true).await;
            assert!(logs.get("t", 0).is_none(), "cancelled: the replica is closed");
            assert!(!partition_dir(dir.path(), "t", 0).exists(), "and its files deleted");
            logs.close_all().await;
        });
    }

    /// A leader restarted after a crash starts from the high watermark its
    /// shard last checkpointed, bounded by its log end, not from 0: its
    /// followers have not fetched yet, so without the checkpoint it would
    /// hide every acknowledged record (and answer ListOffsets LATEST with 0).
    #[test]
    fn a_replica_restarted_after_a_crash_starts_from_its_checkpointed_high_watermark() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let broker = BrokerConfig { data_dir: dir.path().into(), log_direct_io: false, ..BrokerConfig::default() };
            let at = |node| ReplicaPlacement::new(NodeId(node), ShardId(0));
            let assignment = PartitionAssignment::led_by_first(vec![at(1), at(2)]);
            let id = uuid::Uuid::from_u128(1);
            let mut snapshot = Snapshot::default();
            let partitions = vec![assignment];
            snapshot.apply(&MetadataRecord::CreateTopic { name: "t".into(), id, partitions, configs: BTreeMap::new() });
            let mut nodes = BTreeMap::new();
            for node in [1, 2] {
                nodes.insert(NodeId(node), crate::partition::leader_rules::tests::registration(node, 1));
            }
            let follower = crate::partition::leader_rules::FollowerId { at: at(2), broker_epoch: 1 };

            let logs = Partitions::new(&broker);
            logs.sync(at(1), &snapshot, &broker, true).await;
            let replica = logs.get("t", 0).unwrap();
            for value in [&b"a"[..], b"b", b"c"] {
                let batch = crate::model::records::build_keyed(1, &[(None, Some(value))]);
                let info = replica.append(&batch, &mut crate::model::compression::Decompressor::new(), 1).unwrap();
                replica.wait_appended(&info).await.unwrap();
            }
            replica.follower_fetched(follower, 2, 10, &nodes).unwrap();
            assert_eq!(replica.high_watermark(), 2, "the follower holds 2 of 3");
            logs.checkpoint_high_watermarks();
            let writing = logs.high_watermarks.borrow().writing.clone();
            while writing.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            // The crash: the logs are not closed, nothing else is written.
            drop((replica, logs));

            let logs = Partitions::new(&broker);
            logs.sync(at(1), &snapshot, &broker, false).await;
            let replica = logs.get("t", 0).unwrap();
            assert!(replica.is_leader());
            assert_eq!(replica.log().log_end_offset(), 3);
            assert_eq!(replica.high_watermark(), 2, "the checkpointed high watermark, not 0 nor the log end");
            logs.close_all().await;

            // A checkpoint past the log end (the tail was lost with the page cache) is bounded by it.
            let path = hw_checkpoint::path(dir.path(), 0);
            hw_checkpoint::write(&path, "0\n1\nt 0 7\n").unwrap();
            let logs = Partitions::new(&broker);
            logs.sync(at(1), &snapshot, &broker, true).await;
            assert_eq!(logs.get("t", 0).unwrap().high_watermark(), 3);
            logs.close_all().await;
        });
    }
}
