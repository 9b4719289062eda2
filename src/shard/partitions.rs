//! The logs of the partitions this shard holds a replica of, kept in step
//! with the metadata snapshot: a partition with a replica on (this node, this
//! shard) is opened, a deleted topic's logs are closed and removed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tokio::sync::Notify;

use crate::cluster::ReplicaPlacement;
use crate::config::{BrokerConfig, TopicConfig};
use crate::metadata::{Snapshot, TopicMeta};
use crate::storage::{HotTail, LogConfig, PartitionLog};

/// A topic's local logs, indexed by partition; `None` where no replica is here.
struct TopicLogs {
    id: uuid::Uuid,
    logs: Vec<Option<Rc<PartitionLog>>>,
}

/// A log opened from the files of an earlier run: its producers are rebuilt.
pub struct Reopened {
    pub topic: String,
    pub partition: i32,
    pub log: Rc<PartitionLog>,
}

pub struct Partitions {
    topics: RefCell<HashMap<String, TopicLogs>>,
    /// The memory budget the logs share for their recent writes.
    hot_tail: Rc<HotTail>,
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
        Partitions { topics: RefCell::default(), hot_tail: HotTail::new(hot_bytes) }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Rc<PartitionLog>> {
        let topics = self.topics.borrow();
        let logs = &topics.get(topic)?.logs;
        usize::try_from(partition).ok().and_then(|p| logs.get(p)).and_then(|log| log.clone())
    }

    /// Brings the local logs in line with `snapshot`: opens the new
    /// partitions with a replica `here`, closes and deletes the logs of
    /// topics that are gone (or were re-created under a new id).
    pub async fn sync(
        &self,
        here: ReplicaPlacement,
        snapshot: &Snapshot,
        broker: &BrokerConfig,
        clean: bool,
        written: &Rc<Notify>,
    ) -> Vec<Reopened> {
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
        let mut reopened = Vec::new();
        for meta in snapshot.topics.values() {
            self.open_new(here, meta, broker, clean, written, &mut reopened);
        }
        reopened
    }

    fn open_new(
        &self,
        here: ReplicaPlacement,
        meta: &TopicMeta,
        broker: &BrokerConfig,
        clean: bool,
        written: &Rc<Notify>,
        reopened: &mut Vec<Reopened>,
    ) {
        let mut topics = self.topics.borrow_mut();
        let entry = topics.entry(meta.name.clone()).or_insert_with(|| TopicLogs { id: meta.id, logs: Vec::new() });
        let config = match TopicConfig::resolve(&meta.configs, broker) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(topic = %meta.name, error = %e, "stored topic config is invalid; using broker defaults");
                TopicConfig::broker_defaults(broker)
            }
        };
        let log_config = log_config(&config, broker);
        // Topic config changes reach the open logs here.
        for log in entry.logs.iter().flatten() {
            log.set_config(log_config);
        }
        for (partition, assignment) in meta.partitions.iter().enumerate().skip(entry.logs.len()) {
            let log = assignment.has_replica(here).then(|| {
                let dir = partition_dir(&broker.data_dir, &meta.name, partition as i32);
                match PartitionLog::open(&dir, log_config, clean, written.clone(), self.hot_tail.clone()) {
                    Ok((log, report)) => {
                        tracing::info!(topic = %meta.name, partition, ?report, "partition log opened");
                        if !report.created {
                            reopened.push(Reopened { topic: meta.name.clone(), partition: partition as i32, log: log.clone() });
                        }
                        Some(log)
                    }
                    Err(e) => {
                        tracing::error!(topic = %meta.name, partition, error = %e, "cannot open partition log; it stays offline");
                        None
                    }
                }
            });
            entry.logs.push(log.flatten());
        }
    }

    async fn remove(&self, name: &str, broker: &BrokerConfig) {
        let Some(topic) = self.topics.borrow_mut().remove(name) else { return };
        for (partition, log) in topic.logs.into_iter().enumerate() {
            let Some(log) = log else { continue };
            if let Err(e) = log.close().await {
                tracing::warn!(topic = name, partition, error = %e, "closing deleted partition");
            }
            let dir = partition_dir(&broker.data_dir, name, partition as i32);
            // Cold path: topic deletion is rare, so a blocking unlink on the shard is acceptable.
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "removing deleted partition's files");
            }
        }
        tracing::info!(topic = name, "topic deleted");
    }

    /// Every local log with its topic and partition, as of now.
    pub fn all(&self) -> Vec<(String, usize, Rc<PartitionLog>)> {
        self.topics
            .borrow()
            .iter()
            .flat_map(|(name, t)| {
                t.logs.iter().enumerate().filter_map(move |(p, l)| l.clone().map(|l| (name.clone(), p, l)))
            })
            .collect()
    }

    /// Clean shutdown: every log flushes, syncs and writes its indexes.
    pub async fn close_all(&self) {
        for (topic, partition, log) in self.all() {
            if let Err(e) = log.close().await {
                tracing::error!(%topic, partition, error = %e, "closing partition log");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cluster::{NodeId, PartitionAssignment, ReplicaPlacement, ShardId};
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
                PartitionAssignment { replicas: vec![at(0, 0), here], leader: at(0, 0), leader_epoch: 3 },
            ];
            let id = uuid::Uuid::from_u128(1);
            let mut snapshot = Snapshot::default();
            snapshot.apply(&MetadataRecord::CreateTopic { name: "t".into(), id, partitions, configs: BTreeMap::new() });
            let logs = Partitions::new(&broker);
            logs.sync(here, &snapshot, &broker, true, &Rc::new(Notify::new())).await;
            let open: Vec<i32> = (0..4).filter(|p| logs.get("t", *p).is_some()).collect();
            assert_eq!(open, [2, 3], "not another shard of this node, not this shard's number on another node");
            logs.close_all().await;
        });
    }
}
