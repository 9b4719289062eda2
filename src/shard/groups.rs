//! The consumer groups this shard coordinates: those whose offsets-topic
//! partition it owns. Committed offsets are appended to that partition and
//! applied to the coordinator once written; at start-up the partitions are
//! replayed. A timer task drives session and rebalance timeouts.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use super::Shard;
use crate::cluster::ReplicaPlacement;
use crate::group::offsets_topic::{self, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::group::{GroupError, OffsetAndMetadata};
use crate::metadata::Snapshot;
use crate::model::batch::{BatchHeader, HEADER_BYTES};
use crate::model::{now_ms, records, TopicPartition};
use crate::partition::{PartitionError, Replica};
use crate::storage::{PartitionLog, StorageError};

const TICK: Duration = Duration::from_millis(100);
/// Kafka's offsets.retention.check.interval.ms.
const OFFSET_EXPIRY_INTERVAL: Duration = Duration::from_secs(600);
/// Bytes read per step while replaying an offsets partition at start-up.
const REPLAY_READ_BYTES: u32 = 1 << 20;
/// Kafka's `offsets.commit.timeout.ms`: how long a commit waits for every
/// in-sync replica of its offsets partition before it fails.
const OFFSETS_COMMIT_TIMEOUT: Duration = Duration::from_millis(5_000);

/// Most bytes a record adds around its key and value: its length, attributes,
/// timestamp and offset deltas, key and value lengths (varints of at most 5
/// bytes each) and its header count.
const RECORD_FRAMING_BYTES_MAX: usize = 5 + 1 + 5 + 5 + 5 + 5 + 1;

/// One offsets-topic record: a commit, or a tombstone (None) for a deleted offset.
pub type OffsetRecord = (TopicPartition, Option<OffsetAndMetadata>);

fn record_bytes_max(group_id: &str, (partition, offset): &OffsetRecord) -> usize {
    let metadata = offset.as_ref().map(|o| o.metadata.as_str());
    offsets_topic::record_bytes(group_id, partition, metadata) + RECORD_FRAMING_BYTES_MAX
}

/// Most bytes one batch of `records` takes.
fn batch_bytes(group_id: &str, records: &[OffsetRecord]) -> usize {
    HEADER_BYTES + records.iter().map(|r| record_bytes_max(group_id, r)).sum::<usize>()
}

/// How many of `records` (at least one) go in the next batch of at most `bytes_max`.
fn batch_len(group_id: &str, records: &[OffsetRecord], bytes_max: usize) -> usize {
    let mut bytes = HEADER_BYTES;
    let fitting = records.iter().take_while(|r| {
        bytes += record_bytes_max(group_id, r);
        bytes <= bytes_max
    });
    fitting.count().max(1)
}

/// The offsets-topic partitions `here` comes to lead and those it stops
/// leading when its snapshot goes from `old` to `new`. Leading again in
/// another leader epoch counts as elected: snapshots can be skipped (a shard
/// applies the newest committed one), so the partition may have been led
/// elsewhere in between, and what this shard held of its groups is stale.
pub(super) fn offsets_leadership_changes(
    old: &Snapshot,
    new: &Snapshot,
    here: ReplicaPlacement,
) -> (Vec<i32>, Vec<i32>) {
    let led_epoch = |s: &Snapshot, p: i32| {
        let assignment = s.topic(OFFSETS_TOPIC).and_then(|t| t.partition(p))?;
        assignment.is_led_by(here).then_some(assignment.leader_epoch)
    };
    let (mut elected, mut resigned) = (Vec::new(), Vec::new());
    for partition in 0..OFFSETS_TOPIC_PARTITIONS {
        match (led_epoch(old, partition), led_epoch(new, partition)) {
            (before, Some(now)) if before != Some(now) => elected.push(partition),
            (Some(_), None) => resigned.push(partition),
            _ => {}
        }
    }
    (elected, resigned)
}

impl Shard {
    /// The (node, shard) coordinating `group_id`: the leader of its offsets
    /// topic partition, if the offsets topic exists and the partition has one.
    pub fn group_coordinator(&self, group_id: &str) -> Option<ReplicaPlacement> {
        self.snapshot().topic(OFFSETS_TOPIC)?.partition(offsets_topic::partition_for(group_id))?.leader
    }

    /// The offsets-topic replica of `group_id`, or the error telling the
    /// client to look elsewhere. Every group request passes here first, so a
    /// group id the offsets topic could not store never reaches the coordinator.
    pub fn group_replica(&self, group_id: &str) -> Result<Rc<Replica>, GroupError> {
        if group_id.len() > offsets_topic::GROUP_ID_BYTES_MAX {
            return Err(GroupError::GroupIdTooLong {
                bytes: group_id.len(),
                bytes_max: offsets_topic::GROUP_ID_BYTES_MAX,
            });
        }
        match self.group_coordinator(group_id) {
            Some(leader) if leader == self.replica() => {}
            Some(_) => return Err(GroupError::NotCoordinator),
            None => return Err(GroupError::CoordinatorNotAvailable),
        }
        if self.groups.borrow().is_loading(group_id) {
            return Err(GroupError::CoordinatorLoadInProgress);
        }
        let partition = offsets_topic::partition_for(group_id);
        self.partitions.get(OFFSETS_TOPIC, partition).ok_or(GroupError::CoordinatorNotAvailable)
    }

    /// INVALID_COMMIT_OFFSET_SIZE unless `records` fit one batch of the
    /// offsets topic (message.max.bytes), checked before a byte is encoded:
    /// each record repeats the group id, so a commit of many partitions for
    /// a long group id would otherwise write far more than it was sent.
    pub fn check_commit_size(&self, group_id: &str, records: &[OffsetRecord]) -> Result<(), GroupError> {
        let bytes = batch_bytes(group_id, records);
        let bytes_max = self.config.message_max_bytes as usize;
        match bytes <= bytes_max {
            true => Ok(()),
            false => Err(GroupError::CommitTooLarge { bytes, bytes_max }),
        }
    }

    /// Appends `records` for one group to its offsets partition and waits
    /// until they are written: only then may the coordinator apply them.
    /// They go in batches of at most message.max.bytes: a commit is one batch
    /// (`check_commit_size`); tombstones for many offsets may take several.
    pub async fn persist_offsets(
        &self,
        replica: &Replica,
        group_id: &str,
        records: &[OffsetRecord],
    ) -> Result<(), PartitionError> {
        let mut rest = records;
        while !rest.is_empty() {
            let count = batch_len(group_id, rest, self.config.message_max_bytes as usize);
            let (batch, after) = rest.split_at(count);
            rest = after;
            let keys: Vec<Vec<u8>> = batch.iter().map(|(tp, _)| offsets_topic::encode_key(group_id, tp)).collect();
            let values: Vec<Option<Vec<u8>>> =
                batch.iter().map(|(_, o)| o.as_ref().map(offsets_topic::encode_value)).collect();
            let pairs: Vec<records::KeyValue<'_>> =
                keys.iter().zip(&values).map(|(k, v)| (Some(&k[..]), v.as_deref())).collect();
            let batch = records::build_keyed(now_ms(), &pairs);
            let info = replica.append_own(&batch, now_ms())?;
            replica.wait_appended(&info).await?;
            // As Kafka's coordinator, with acks=all: a commit answered before
            // the ISR has it would be lost with the leader's node.
            let replicated = replica.wait_replicated(info.last_offset);
            tokio::time::timeout(OFFSETS_COMMIT_TIMEOUT, replicated).await.map_err(|_| {
                PartitionError::ReplicationTimedOut { timeout_ms: OFFSETS_COMMIT_TIMEOUT.as_millis() as u64 }
            })??;
        }
        Ok(())
    }

    /// Writes tombstones for offsets the coordinator dropped (topic deleted,
    /// offsets expired), each in its group's partition.
    pub async fn persist_tombstones(&self, removed: Vec<(String, TopicPartition)>) {
        let mut by_group: BTreeMap<String, Vec<OffsetRecord>> = BTreeMap::new();
        for (group, tp) in removed {
            by_group.entry(group).or_default().push((tp, None));
        }
        for (group, records) in by_group {
            let written = match self.group_replica(&group) {
                Ok(replica) => self.persist_offsets(&replica, &group, &records).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = written {
                tracing::warn!(shard = self.id, group, "writing offset tombstones failed: {e}");
            }
        }
    }

    /// Loads the committed offsets of offsets-topic partition `partition`,
    /// which this shard has just come to lead (Kafka's onElection): its log
    /// holds every commit the previous leader acknowledged. The caller has
    /// called `begin_loading` when it adopted the snapshot naming this
    /// shard leader, so nothing stale is left and the group's requests wait.
    pub(super) async fn load_groups_of(&self, partition: i32) {
        if let Some(replica) = self.partitions.get(OFFSETS_TOPIC, partition) {
            match self.replay(partition, replica.log()).await {
                Ok(()) => {
                    tracing::info!(shard = self.id, partition, "leading an offsets partition: committed offsets loaded")
                }
                // As before loading existed: serve what could be read rather than nothing.
                Err(e) => tracing::error!(shard = self.id, partition, error = %e, "replaying committed offsets failed"),
            }
        }
        self.groups.borrow_mut().finish_loading(partition);
    }

    /// Kafka's onResignation: this shard no longer leads `partition`; its
    /// groups go, and their waiting members are told NOT_COORDINATOR.
    pub(super) fn unload_groups_of(&self, partition: i32) {
        let groups = self.groups.borrow_mut().unload_partition(partition);
        if groups > 0 {
            tracing::info!(
                shard = self.id,
                partition,
                groups,
                "no longer leading an offsets partition: groups unloaded"
            );
        }
    }

    /// At start-up, before the listener: replays every offsets partition
    /// this shard leads into its coordinator. Those it follows are loaded
    /// if and when it comes to lead them.
    pub async fn load_groups(&self) {
        let snapshot = self.snapshot();
        let here = self.replica();
        let Some(offsets) = snapshot.topic(OFFSETS_TOPIC) else { return };
        for partition in 0..OFFSETS_TOPIC_PARTITIONS {
            if !offsets.partition(partition).is_some_and(|a| a.is_led_by(here)) {
                continue;
            }
            let Some(replica) = self.partitions.get(OFFSETS_TOPIC, partition) else { continue };
            if let Err(e) = self.replay(partition, replica.log()).await {
                tracing::error!(shard = self.id, partition, error = %e, "replaying committed offsets failed");
            }
        }
        let groups = self.groups.borrow().group_count();
        if groups > 0 {
            tracing::info!(shard = self.id, groups, "committed offsets loaded");
        }
    }

    async fn replay(&self, partition: i32, log: &PartitionLog) -> Result<(), StorageError> {
        let mut offset = log.log_start_offset();
        let mut skipped = 0;
        while let Some(slice) = log.read(offset, REPLAY_READ_BYTES).await? {
            let buf = slice.into_bytes().await;
            let buf = buf.map_err(|source| StorageError::Io { context: "replaying offsets".into(), source })?;
            let mut rest = &buf[..];
            while let Ok(header) = BatchHeader::parse(rest) {
                skipped += self.load_batch(&rest[..header.total_bytes().min(rest.len())]);
                offset = header.last_offset() + 1;
                rest = &rest[header.total_bytes().min(rest.len())..];
            }
        }
        if skipped > 0 {
            // Such as a commit for a group id too long for its i16 length,
            // acknowledged before those were refused: no group's offset.
            tracing::warn!(shard = self.id, partition, skipped, "skipped unreadable records of the offsets topic");
        }
        Ok(())
    }

    /// Replays one batch of the offsets topic; returns how many of its
    /// records could not be read (and were skipped).
    fn load_batch(&self, batch: &[u8]) -> usize {
        let Ok(records) = records::records(batch) else {
            tracing::warn!(shard = self.id, "skipping an unreadable batch in the offsets topic");
            return 0;
        };
        let mut coordinator = self.groups.borrow_mut();
        let mut skipped = 0;
        for record in records {
            let Some((group, tp)) = record.key.and_then(offsets_topic::decode_key) else {
                skipped += 1;
                continue;
            };
            match record.value.map(offsets_topic::decode_value) {
                None => coordinator.load_tombstone(&group, &tp),
                Some(Some(offset)) => coordinator.load_commit(&group, tp, offset),
                Some(None) => skipped += 1,
            }
        }
        skipped
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::cluster::{NodeId, PartitionAssignment, ShardId};
    use crate::metadata::TopicMeta;

    fn at(node: u32) -> ReplicaPlacement {
        ReplicaPlacement::new(NodeId(node), ShardId(0))
    }

    /// The offsets topic with every partition on nodes 1, 2, 3, led as `leader(p)` says (None: offline).
    fn offsets_led(leader: impl Fn(i32) -> Option<(u32, i32)>) -> Snapshot {
        let partitions = (0..OFFSETS_TOPIC_PARTITIONS)
            .map(|p| {
                let (node, epoch) = leader(p).unzip();
                let assignment = PartitionAssignment::led_by_first(vec![at(1), at(2), at(3)]);
                PartitionAssignment { leader: node.map(at), leader_epoch: epoch.unwrap_or(1), ..assignment }
            })
            .collect();
        let topic =
            TopicMeta { name: OFFSETS_TOPIC.into(), id: uuid::Uuid::nil(), partitions, configs: Default::default() };
        let mut snapshot = Snapshot::default();
        snapshot.topics.insert(OFFSETS_TOPIC.into(), Arc::new(topic));
        snapshot
    }

    #[test]
    fn offsets_partitions_won_lost_and_won_again_in_a_new_epoch() {
        let before = offsets_led(|p| match p {
            0 => Some((1, 4)), // led here, stays so
            1 => Some((1, 4)), // led here, moves to node 2
            2 => Some((2, 4)), // led elsewhere, comes here
            3 => Some((1, 4)), // led here, and again here two elections later
            4 => Some((1, 4)), // led here, goes offline
            _ => Some((3, 0)),
        });
        let after = offsets_led(|p| match p {
            0 => Some((1, 4)),
            1 => Some((2, 5)),
            2 => Some((1, 5)),
            3 => Some((1, 6)),
            4 => None,
            _ => Some((3, 0)),
        });
        assert_eq!(offsets_leadership_changes(&before, &after, at(1)), (vec![2, 3], vec![1, 4]));
        assert_eq!(offsets_leadership_changes(&after, &after, at(1)), (vec![], vec![]));
        // The offsets topic appearing (cluster mode creates it once enough nodes are up).
        let (elected, resigned) = offsets_leadership_changes(&Snapshot::default(), &after, at(3));
        assert_eq!((elected.len(), resigned), (OFFSETS_TOPIC_PARTITIONS as usize - 5, vec![]));
    }

    #[test]
    fn offsets_batches_are_bounded_and_estimates_are_upper_bounds() {
        let offset =
            OffsetAndMetadata { offset: 1 << 40, leader_epoch: 3, metadata: "m".repeat(300), commit_timestamp_ms: 9 };
        let group = "g".repeat(20_000);
        let records: Vec<OffsetRecord> =
            (0..100).map(|p| (TopicPartition::new("clicks", p), (p % 3 != 0).then(|| offset.clone()))).collect();
        let keys: Vec<Vec<u8>> = records.iter().map(|(tp, _)| offsets_topic::encode_key(&group, tp)).collect();
        let values: Vec<Option<Vec<u8>>> =
            records.iter().map(|(_, o)| o.as_ref().map(offsets_topic::encode_value)).collect();
        let pairs: Vec<records::KeyValue<'_>> =
            keys.iter().zip(&values).map(|(k, v)| (Some(&k[..]), v.as_deref())).collect();
        let built = records::build_keyed(0, &pairs);
        assert!(built.len() <= batch_bytes(&group, &records), "{} > {}", built.len(), batch_bytes(&group, &records));
        let bytes_max = 200_000;
        let mut rest = &records[..];
        while !rest.is_empty() {
            let count = batch_len(&group, rest, bytes_max);
            assert!(batch_bytes(&group, &rest[..count]) <= bytes_max);
            assert!(count == rest.len() || batch_bytes(&group, &rest[..count + 1]) > bytes_max, "as many as fit");
            rest = &rest[count..];
        }
        assert_eq!(batch_len(&group, &records, 10), 1, "a record larger than the bound still goes, alone");
    }
}
