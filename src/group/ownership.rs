//! Which groups this coordinator holds: those of the offsets-topic
//! partitions its shard leads. Kafka's GroupCoordinator onElection /
//! onResignation: a shard that comes to lead a partition loads its groups
//! from the log (their committed offsets; membership is not persisted, so
//! members rejoin), and one that stops leading it forgets them at once.
//!
//! Forgetting matters as much as loading. A coordinator that kept a group
//! after its partition moved away would, when the partition came back,
//! still hold the members of that time: the members' new joins would then
//! wait for those ghosts to rejoin until their sessions expired (librdkafka's
//! 45 s), and a join or sync parked on it when the partition left would
//! never be answered by the new coordinator (docs/chaos.md, found 4).

use std::collections::BTreeSet;

use super::group::Group;
use super::offsets_topic::partition_for;
use super::{Coordinator, GroupError};

/// The offsets-topic partitions being loaded: their groups answer
/// COORDINATOR_LOAD_IN_PROGRESS until the log has been replayed.
#[derive(Debug, Default)]
pub(super) struct Loading(BTreeSet<i32>);

impl Coordinator {
    /// Kafka's onResignation: this shard no longer leads offsets-topic
    /// partition `partition`. Its groups are dropped; members waiting in a
    /// join or a sync are answered NOT_COORDINATOR and look the coordinator
    /// up again. Returns how many groups went.
    pub fn unload_partition(&mut self, partition: i32) -> usize {
        self.loading.0.remove(&partition);
        let doomed: Vec<String> = self.groups.keys().filter(|id| partition_for(id) == partition).cloned().collect();
        for group_id in &doomed {
            let group = self.groups.remove(group_id).expect("listed above");
            unload(group);
        }
        doomed.len()
    }

    /// Kafka's onElection, first half: this shard has come to lead
    /// `partition` (or leads it again, in a new leader epoch). Whatever it
    /// held of its groups is stale and goes; until `finish_loading`, their
    /// requests are answered COORDINATOR_LOAD_IN_PROGRESS, so that no client
    /// reads committed offsets from a half-replayed log.
    pub fn begin_loading(&mut self, partition: i32) {
        self.unload_partition(partition);
        self.loading.0.insert(partition);
    }

    /// The log of `partition` has been replayed (`load_commit`, `load_tombstone`).
    pub fn finish_loading(&mut self, partition: i32) {
        self.loading.0.remove(&partition);
    }

    /// Whether `group_id`'s offsets partition is being loaded.
    pub fn is_loading(&self, group_id: &str) -> bool {
        !self.loading.0.is_empty() && self.loading.0.contains(&partition_for(group_id))
    }
}

/// Kafka's onGroupUnloaded: whoever waits on the group is told to find the
/// new coordinator.
fn unload(mut group: Group) {
    for member in group.members.values_mut() {
        member.fail_waiters(&GroupError::NotCoordinator);
    }
}
