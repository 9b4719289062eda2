//! The consumer groups this shard coordinates: those whose offsets-topic
//! partition it owns. Committed offsets are appended to that partition and
//! applied to the coordinator once written; at start-up the partitions are
//! replayed. A timer task drives session and rebalance timeouts.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use super::Shard;
use crate::group::offsets_topic::{self, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::group::{GroupError, OffsetAndMetadata};
use crate::model::batch::BatchHeader;
use crate::model::{now_ms, records, TopicPartition};
use crate::storage::{PartitionLog, StorageError};

const TICK: Duration = Duration::from_millis(100);
/// Kafka's offsets.retention.check.interval.ms.
const OFFSET_EXPIRY_INTERVAL: Duration = Duration::from_secs(600);
/// Bytes read per step while replaying an offsets partition at start-up.
const REPLAY_READ_BYTES: u32 = 1 << 20;

/// One offsets-topic record: a commit, or a tombstone (None) for a deleted offset.
pub type OffsetRecord = (TopicPartition, Option<OffsetAndMetadata>);

impl Shard {
    /// The shard coordinating `group_id`, if the offsets topic exists.
    pub fn group_coordinator(&self, group_id: &str) -> Option<u16> {
        self.snapshot().topic(OFFSETS_TOPIC)?.owner(offsets_topic::partition_for(group_id))
    }

    /// The offsets log of `group_id`, or the error telling the client to look elsewhere.
    pub fn group_log(&self, group_id: &str) -> Result<Rc<PartitionLog>, GroupError> {
        match self.group_coordinator(group_id) {
            Some(shard) if shard == self.id => {}
            Some(_) => return Err(GroupError::NotCoordinator),
            None => return Err(GroupError::CoordinatorNotAvailable),
        }
        let partition = offsets_topic::partition_for(group_id);
        self.partitions.get(OFFSETS_TOPIC, partition).ok_or(GroupError::CoordinatorNotAvailable)
    }

    /// Appends `records` for one group to its offsets partition and waits
    /// until they are written: only then may the coordinator apply them.
    pub async fn persist_offsets(
        &self,
        log: &PartitionLog,
        group_id: &str,
        records: &[OffsetRecord],
    ) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = records.iter().map(|(tp, _)| offsets_topic::encode_key(group_id, tp)).collect();
        let values: Vec<Option<Vec<u8>>> =
            records.iter().map(|(_, o)| o.as_ref().map(offsets_topic::encode_value)).collect();
        let pairs: Vec<records::KeyValue<'_>> =
            keys.iter().zip(&values).map(|(k, v)| (Some(&k[..]), v.as_deref())).collect();
        let batch = records::build_keyed(now_ms(), &pairs);
        let info = log.append(&batch, now_ms())?;
        log.wait_appended(&info).await
    }

    /// Writes tombstones for offsets the coordinator dropped (topic deleted,
    /// offsets expired), each in its group's partition.
    pub async fn persist_tombstones(&self, removed: Vec<(String, TopicPartition)>) {
        let mut by_group: BTreeMap<String, Vec<OffsetRecord>> = BTreeMap::new();
        for (group, tp) in removed {
            by_group.entry(group).or_default().push((tp, None));
        }
        for (group, records) in by_group {
            let written = match self.group_log(&group) {
                Ok(log) => self.persist_offsets(&log, &group, &records).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = written {
                tracing::warn!(shard = self.id, group, "writing offset tombstones failed: {e}");
            }
        }
    }

    /// Replays every offsets partition this shard owns into its coordinator.
    pub async fn load_groups(&self) {
        for partition in 0..OFFSETS_TOPIC_PARTITIONS {
            let Some(log) = self.partitions.get(OFFSETS_TOPIC, partition) else { continue };
            if let Err(e) = self.replay(&log).await {
                tracing::error!(shard = self.id, partition, error = %e, "replaying committed offsets failed");
            }
        }
        let groups = self.groups.borrow().group_count();
        if groups > 0 {
            tracing::info!(shard = self.id, groups, "committed offsets loaded");
        }
    }

    async fn replay(&self, log: &PartitionLog) -> Result<(), StorageError> {
        let mut offset = log.log_start_offset();
        while let Some(slice) = log.read(offset, REPLAY_READ_BYTES).await? {
            let buf = slice.into_bytes().await;
            let buf = buf.map_err(|source| StorageError::Io { context: "replaying offsets".into(), source })?;
            let mut rest = &buf[..];
            while let Ok(header) = BatchHeader::parse(rest) {
                self.load_batch(&rest[..header.total_bytes().min(rest.len())]);
                offset = header.last_offset() + 1;
                rest = &rest[header.total_bytes().min(rest.len())..];
            }
        }
        Ok(())
    }

    fn load_batch(&self, batch: &[u8]) {
        let Ok(records) = records::records(batch) else {
            tracing::warn!(shard = self.id, "skipping an unreadable batch in the offsets topic");
            return;
        };
        let mut coordinator = self.groups.borrow_mut();
        for record in records {
            let Some((group, tp)) = record.key.and_then(offsets_topic::decode_key) else { continue };
            match record.value.map(offsets_topic::decode_value) {
                None => coordinator.load_tombstone(&group, &tp),
                Some(Some(offset)) => coordinator.load_commit(&group, tp, offset),
                Some(None) => tracing::warn!(shard = self.id, group, "skipping an unreadable offset record"),
            }
        }
    }

    /// Drives the coordinator's timeouts until the shard stops.
    pub async fn run_group_timers(self: Rc<Self>) {
        let mut last_expiry = tokio::time::Instant::now();
        while !self.stopping.get() {
            tokio::time::sleep(TICK).await;
            self.groups.borrow_mut().tick(now_ms());
            if last_expiry.elapsed() >= OFFSET_EXPIRY_INTERVAL {
                last_expiry = tokio::time::Instant::now();
                let retention_ms = self.config.offsets_retention_minutes.saturating_mul(60_000);
                let removed = self.groups.borrow_mut().expire_offsets(now_ms(), retention_ms);
                self.persist_tombstones(removed.offsets).await;
            }
        }
    }

    /// A deleted topic's committed offsets go too, as in Kafka.
    pub async fn forget_topic_offsets(&self, topic: &str) {
        let removed = self.groups.borrow_mut().delete_topic_offsets(topic);
        self.persist_tombstones(removed.offsets).await;
    }
}
