//! ListGroups, DescribeGroups, DeleteGroups and OffsetDelete.

use std::collections::HashSet;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

use super::group::Group;
use super::member::Member;
use super::types::{DeletedOffsets, GroupDescription, GroupListing, GroupState, MemberDescription};
use super::{Coordinator, GroupError};
use crate::model::TopicPartition;

/// The protocol type of groups of Kafka consumers, whose protocol metadata
/// is a ConsumerProtocolSubscription.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

impl Coordinator {
    /// ListGroups, sorted by group id; an empty `states` filter lists all.
    pub fn list_groups(&self, states: &[GroupState]) -> Vec<GroupListing> {
        let mut listings: Vec<GroupListing> = self
            .groups
            .values()
            .filter(|g| states.is_empty() || states.contains(&g.state))
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect();
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listings
    }

    /// DescribeGroups for one group; an unknown group is Dead with no members.
    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        match self.groups.get(group_id) {
            Some(group) => group.describe(),
            None => GroupDescription {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
        }
    }

    /// DeleteGroups for one group: only an Empty group can go. Returns the
    /// partitions whose committed offsets went with it, for tombstones.
    pub fn delete_group(&mut self, group_id: &str) -> Result<Vec<TopicPartition>, GroupError> {
        let Some(group) = self.groups.get(group_id) else {
            return Err(GroupError::GroupIdNotFound { group_id: group_id.to_string() });
        };
        if group.state != GroupState::Empty {
            return Err(GroupError::NonEmptyGroup);
        }
        let group = self.groups.remove(group_id).expect("looked up above");
        Ok(group.offsets.into_keys().collect())
    }

    /// OffsetDelete, as Kafka's OffsetMetadataManager.deleteOffsets: forgets
    /// the group's committed offsets of `partitions`. The group must be Empty
    /// or a consumer group; partitions of a topic its members subscribe to
    /// keep their offsets and get GROUP_SUBSCRIBED_TO_TOPIC, the others
    /// succeed whether or not they had an offset. A group left with neither
    /// members nor offsets is forgotten, as replaying its tombstones would.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<DeletedOffsets, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return Err(GroupError::GroupIdNotFound { group_id: group_id.to_string() });
        };
        let consumer_group = group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE);
        if group.state != GroupState::Empty && !consumer_group {
            return Err(GroupError::NonEmptyGroup);
        }
        let subscribed = group.subscribed_topics();
        let mut deleted = DeletedOffsets::default();
        for partition in partitions {
            let topic = &partition.topic;
            // Topics unknown (metadata that does not parse) count as subscribed, as in Kafka.
            if subscribed.as_ref().map_or(consumer_group, |topics| topics.contains(topic.as_str())) {
                deleted.outcomes.push(Err(GroupError::GroupSubscribedToTopic { topic: topic.clone() }));
                continue;
            }
            if group.offsets.remove(partition).is_some() {
                deleted.removed.push(partition.clone());
            }
            deleted.outcomes.push(Ok(()));
        }
        if group.is_disposable() {
            self.groups.remove(group_id);
        }
        Ok(deleted)
    }
}

impl Group {
    /// The topics the members of a consumer group subscribe to (none when it
    /// has no members), from their metadata for the group's protocol, read as
    /// its version-0 prefix as Kafka's ClassicGroup does. None when that is
    /// not known: another protocol type, no protocol chosen yet, or metadata
    /// that does not parse.
    fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let mut topics = HashSet::new();
        if self.members.is_empty() {
            return Some(topics);
        }
        let protocol = self.protocol_name.as_deref()?;
        for member in self.members.values() {
            let mut metadata = member.metadata(protocol);
            // Every version of the subscription starts with its version (i16) and v0's fields.
            if metadata.len() < 2 {
                return None;
            }
            metadata.advance(2);
            let subscription = ConsumerProtocolSubscription::decode(&mut metadata, 0).ok()?;
            topics.extend(subscription.topics.into_iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = if stable { self.protocol_name.clone().unwrap_or_default() } else { String::new() };
        let describe = |m: &Member| MemberDescription {
            member_id: m.id.clone(),
            group_instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            metadata: if stable { m.metadata(&protocol) } else { Bytes::new() },
            assignment: if stable { m.assignment.clone() } else { Bytes::new() },
        };
        let members = self.members.values().map(describe).collect();
        GroupDescription {
            group_id: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol,
            members,
        }
    }
}
