//! Committed offsets, kept in memory per group. They are durable in the
//! offsets topic: the shard validates a commit here, appends it, and applies
//! it here only once it is durable; at start-up it replays the topic through
//! `load_commit` / `load_tombstone`. Removals (group deletion, deleted
//! topics, expiry) return what they removed so the shard writes tombstones.

use super::group::Group;
use super::types::{GroupState, OffsetAndMetadata, RemovedOffsets};
use super::{guarded, Check, Coordinator, Ctx, GroupError};
use crate::model::TopicPartition;

impl Coordinator {
    /// Kafka's validateOffsetCommit. Generation -1 with no member id and no
    /// instance id is a "simple" commit, allowed on an Empty or unknown group
    /// (an unknown group is created Empty). Members must name the current
    /// generation; a commit refreshes the member's session.
    pub fn validate_commit(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let ctx = Ctx { config: &self.config, now_ms };
        let group = match self.groups.get_mut(group_id) {
            Some(group) => group,
            // A positive generation of a group we do not know is stale.
            None if generation_id >= 0 => {
                return Err(GroupError::IllegalGeneration { expected: -1, got: generation_id });
            }
            None => self.groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id, now_ms)),
        };
        let validate = |g: &mut Group, ctx: Ctx| g.validate_commit(generation_id, member_id, group_instance_id, ctx);
        guarded(group, ctx, Check::PanicsOnly, &mut self.groups_reset, validate)
            .unwrap_or(Err(GroupError::UnknownServerError))
    }

    /// OFFSET_METADATA_TOO_LARGE check for one partition of a commit.
    pub fn check_offset_metadata(&self, metadata: &str) -> Result<(), GroupError> {
        let bytes_max = self.config.offset_metadata_bytes_max;
        if metadata.len() > bytes_max {
            return Err(GroupError::OffsetMetadataTooLarge { bytes: metadata.len(), bytes_max });
        }
        Ok(())
    }

    /// Stores durable commits (creating the group if it was deleted since).
    pub fn apply_commit(
        &mut self,
        group_id: &str,
        offsets: impl IntoIterator<Item = (TopicPartition, OffsetAndMetadata)>,
        now_ms: i64,
    ) {
        let group = self.groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id, now_ms));
        group.offsets.extend(offsets);
    }

    /// Replays one stored commit at start-up, without validation.
    pub fn load_commit(&mut self, group_id: &str, partition: TopicPartition, offset: OffsetAndMetadata) {
        let since_ms = offset.commit_timestamp_ms;
        let group = self.groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id, since_ms));
        group.state_since_ms = group.state_since_ms.max(since_ms);
        group.offsets.insert(partition, offset);
    }

    /// Replays a stored tombstone: forgets the offset, and the group once it
    /// has neither offsets nor members.
    pub fn load_tombstone(&mut self, group_id: &str, partition: &TopicPartition) {
        let Some(group) = self.groups.get_mut(group_id) else { return };
        group.offsets.remove(partition);
        if group.is_disposable() {
            self.groups.remove(group_id);
        }
    }

    /// OffsetFetch: the given partitions (-1 for those without a commit), or
    /// every committed partition of the group when `partitions` is None.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Vec<(TopicPartition, OffsetAndMetadata)> {
        let group = self.groups.get(group_id);
        match partitions {
            None => group.map(|g| g.offsets.iter().map(|(p, o)| (p.clone(), o.clone())).collect()).unwrap_or_default(),
            Some(partitions) => partitions
                .iter()
                .map(|p| {
                    let offset = group.and_then(|g| g.offsets.get(p)).cloned();
                    (p.clone(), offset.unwrap_or_else(OffsetAndMetadata::unknown))
                })
                .collect(),
        }
    }

    /// A topic was deleted: its offsets leave every group, and Empty groups
    /// left without offsets are removed (Kafka's cleanupGroupMetadata).
    pub fn delete_topic_offsets(&mut self, topic: &str) -> RemovedOffsets {
        self.remove_offsets(|_, partition, _| partition.topic == topic)
    }

    /// offsets.retention.minutes: offsets of Empty groups expire
    /// `retention_ms` after the group became Empty, or for groups that never
    /// had members ("simple" committers, or groups known only from the
    /// offsets topic) after their commit. Call it rarely (Kafka: every
    /// offsets.retention.check.interval.ms, 10 minutes).
    pub fn expire_offsets(&mut self, now_ms: i64, retention_ms: i64) -> RemovedOffsets {
        self.remove_offsets(|group, _, offset| group.is_offset_expired(offset, now_ms, retention_ms))
    }

    fn remove_offsets(
        &mut self,
        doomed: impl Fn(&Group, &TopicPartition, &OffsetAndMetadata) -> bool,
    ) -> RemovedOffsets {
        let mut removed = RemovedOffsets::default();
        for group in self.groups.values_mut() {
            let gone: Vec<TopicPartition> =
                group.offsets.iter().filter(|(p, o)| doomed(group, p, o)).map(|(p, _)| p.clone()).collect();
            for partition in gone {
                group.offsets.remove(&partition);
                removed.offsets.push((group.id.clone(), partition));
            }
            if group.is_disposable() {
                removed.groups.push(group.id.clone());
            }
        }
        for group_id in &removed.groups {
            self.groups.remove(group_id);
        }
        removed
    }
}

impl Group {
    fn validate_commit(
        &mut self,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
        ctx: Ctx,
    ) -> Result<(), GroupError> {
        let simple = generation_id < 0 && member_id.is_empty() && instance_id.is_none();
        if simple {
            // Only members may commit for a group that has them.
            return if self.state == GroupState::Empty { Ok(()) } else { Err(GroupError::unknown_member(member_id)) };
        }
        self.validate_member(member_id, instance_id)?;
        self.validate_generation(generation_id)?;
        match self.state {
            GroupState::Stable | GroupState::PreparingRebalance => {
                // Members learn of a rebalance from their next heartbeat.
                self.member(member_id).refresh_session(ctx.now_ms);
                Ok(())
            }
            GroupState::CompletingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Empty | GroupState::Dead => Err(GroupError::unknown_member(member_id)),
        }
    }

    fn is_offset_expired(&self, offset: &OffsetAndMetadata, now_ms: i64, retention_ms: i64) -> bool {
        if self.state != GroupState::Empty {
            return false;
        }
        let since_ms = if self.protocol_type.is_some() { self.state_since_ms } else { offset.commit_timestamp_ms };
        now_ms - since_ms >= retention_ms
    }

    /// An Empty group with no offsets is forgotten (Kafka marks it Dead);
    /// one still expecting a MEMBER_ID_REQUIRED rejoin is kept.
    pub(crate) fn is_disposable(&self) -> bool {
        self.state == GroupState::Empty && self.offsets.is_empty() && self.pending_members.is_empty()
    }
}
