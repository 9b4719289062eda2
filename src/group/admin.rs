//! ListGroups, DescribeGroups and DeleteGroups.

use bytes::Bytes;

use super::group::Group;
use super::member::Member;
use super::types::{GroupDescription, GroupListing, GroupState, MemberDescription};
use super::{Coordinator, GroupError};
use crate::model::TopicPartition;

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
}

impl Group {
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
