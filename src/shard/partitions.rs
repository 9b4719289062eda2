//! The replicas this shard hosts, kept in step with the metadata snapshot:
//! a partition with a replica on (this node, this shard) is opened, a
//! deleted topic's replicas are closed and their files removed, and topic
//! config changes reach the open ones.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tokio::sync::Notify;

use crate::cluster::ReplicaPlacement;
use crate::config::{BrokerConfig, TopicConfig};
use crate::metadata::{Snapshot, TopicMeta};
use crate::model::TopicPartition;
use crate::partition::{ProducerBudget, Replica, ReplicaHost};
use crate::storage::{HotTail, LogConfig};

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
}

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
                match Replica::open(id, &dir, config.clone(), log_config, &host) {
                    Ok((replica, report)) => {
                        tracing::info!(topic = %meta.name, partition, ?report, "partition log opened");
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

    /// Clean shutdown: every log flushes, syncs and writes its indexes.
    pub async fn close_all(&self) {
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
    if let Err(e) = std::fs::remove_dir_all(dir) {
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
}
