//! One group's membership: members in join order, the leader, static
//! instance ids, members pending a MEMBER_ID_REQUIRED rejoin, and protocol
//! selection. The rebalance state machine over it is in `rebalance.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};

use indexmap::IndexMap;
use tracing::debug;

use super::member::Member;
use super::types::{GroupState, JoinGroup, JoinedMember, OffsetAndMetadata, Protocol};
use super::{Ctx, GroupConfig, GroupError};
use crate::model::TopicPartition;

/// When the current join phase ends if not every member has rejoined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinTimer {
    /// group.initial.rebalance.delay.ms of a group that was Empty: never ends
    /// early, and extends while new members keep arriving, up to
    /// `remaining_ms` more.
    Initial { deadline_ms: i64, remaining_ms: i64 },
    /// The rebalance timeout; ends early once everyone has rejoined.
    Rebalance { deadline_ms: i64 },
}

/// The generation after `generation_id`. Generations are compared only for
/// equality, so past i32::MAX they start again at 1 rather than overflow
/// (a client that rejoins with changed protocols makes one per request).
pub(crate) fn next_generation(generation_id: i32) -> i32 {
    generation_id.checked_add(1).unwrap_or(1)
}

#[derive(Debug)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    /// When `state` was entered; offsets of an Empty group expire from here.
    pub state_since_ms: i64,
    pub generation_id: i32,
    /// Set by the first member and kept while the group exists (an Empty
    /// group that once had members expires its offsets from `state_since_ms`).
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: IndexMap<String, Member>,
    /// group.instance.id → member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED → expiry deadline.
    pub pending_members: HashMap<String, i64>,
    /// Members that have not sent SyncGroup since the join phase completed.
    pub pending_sync: HashSet<String>,
    pub sync_deadline_ms: Option<i64>,
    pub join_timer: Option<JoinTimer>,
    /// A new member joined during the initial delay, which extends it.
    pub new_member_added: bool,
    pub offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            sync_deadline_ms: None,
            join_timer: None,
            new_member_added: false,
            offsets: BTreeMap::new(),
        }
    }

    pub fn transition(&mut self, state: GroupState, now_ms: i64) {
        debug!(group = %self.id, from = self.state.as_str(), to = state.as_str(), "group state");
        self.state = state;
        self.state_since_ms = now_ms;
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    pub fn member(&mut self, member_id: &str) -> &mut Member {
        self.members.get_mut(member_id).expect("member validated before use")
    }

    pub fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.id.clone());
        }
        if let Some(instance_id) = &member.instance_id {
            self.static_members.insert(instance_id.clone(), member.id.clone());
        }
        let previous = self.members.insert(member.id.clone(), member);
        assert!(previous.is_none(), "member ids are unique");
    }

    /// Removes a member, answering its waiters with `error`; the leader
    /// passes to the oldest remaining member. Does not trigger a rebalance.
    pub fn remove_member(&mut self, member_id: &str, error: &GroupError) {
        let Some(mut member) = self.members.shift_remove(member_id) else { return };
        member.fail_waiters(error);
        if let Some(instance_id) = &member.instance_id {
            if self.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance_id);
            }
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
    }

    /// What `Coordinator::guarded` does to a group an operation left broken:
    /// every member goes (answering its waiters UNKNOWN_MEMBER_ID, so that
    /// clients rejoin afresh), the generation moves on (fencing the old one's
    /// commits), and the group is Empty with its committed offsets.
    pub fn reset_after_bug(&mut self, now_ms: i64) {
        for (member_id, mut member) in std::mem::take(&mut self.members) {
            member.fail_waiters(&GroupError::unknown_member(&member_id));
        }
        self.static_members.clear();
        self.pending_members.clear();
        self.pending_sync.clear();
        self.leader_id = None;
        self.protocol_name = None;
        self.sync_deadline_ms = None;
        self.join_timer = None;
        self.new_member_added = false;
        self.generation_id = next_generation(self.generation_id);
        self.transition(GroupState::Empty, now_ms);
    }

    /// Gives a static member a new member id; the old id's waiters are fenced.
    pub fn replace_static_member(&mut self, old_id: &str, new_id: &str) {
        let mut member = self.members.shift_remove(old_id).expect("static member exists");
        let instance_id = member.instance_id.clone().expect("static member has an instance id");
        member.fail_waiters(&GroupError::FencedInstanceId { instance_id: instance_id.clone() });
        member.id = new_id.to_string();
        self.members.insert(new_id.to_string(), member);
        if self.is_leader(old_id) {
            self.leader_id = Some(new_id.to_string());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_string());
        }
        self.static_members.insert(instance_id, new_id.to_string());
    }

    /// Kafka's validateCurrentMember: an instance id must map to this member
    /// id (else the caller is fenced), and the member must exist.
    pub fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        if let Some(instance_id) = instance_id {
            return match self.static_members.get(instance_id) {
                Some(current) if current != member_id => {
                    Err(GroupError::FencedInstanceId { instance_id: instance_id.to_string() })
                }
                Some(_) => Ok(()),
                None => Err(GroupError::unknown_member(member_id)),
            };
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(GroupError::unknown_member(member_id))
        }
    }

    pub fn validate_generation(&self, generation_id: i32) -> Result<(), GroupError> {
        if generation_id == self.generation_id {
            return Ok(());
        }
        Err(GroupError::IllegalGeneration { expected: self.generation_id, got: generation_id })
    }

    /// Whether a joiner fits the group: same protocol type, and at least one
    /// protocol every other member supports. The joiner's own current
    /// protocols (by member id, or by instance id for a static member coming
    /// back) are left out, since its join replaces them.
    pub fn supports_protocols(&self, join: &JoinGroup) -> bool {
        if join.protocol_type.is_empty() || join.protocols.is_empty() {
            return false;
        }
        let same_instance = |m: &Member| join.group_instance_id.is_some() && m.instance_id == join.group_instance_id;
        let mut others = self.members.values().filter(|m| m.id != join.member_id && !same_instance(m)).peekable();
        if others.peek().is_none() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(join.protocol_type.as_str()) {
            return false;
        }
        let others: Vec<_> = others.collect();
        join.protocols.iter().any(|p| others.iter().all(|m| m.supports(&p.name)))
    }

    /// Kafka's acceptJoiningMember (group.max.size), with one bound more: a
    /// join that adds a member or a MEMBER_ID_REQUIRED pending id also needs
    /// members plus pending ids below the limit. Kafka counts neither pending
    /// ids nor, while rebalancing, members yet to rejoin, so a flood of first
    /// joins could grow a group without bound. Members already in (by member
    /// id, or a static member by its instance id) are let back as in Kafka;
    /// a pending id holds its place already.
    pub fn accepts_joiner(&self, join: &JoinGroup, ctx: Ctx) -> bool {
        let known = self.members.get(&join.member_id).or_else(|| {
            let instance_id = join.group_instance_id.as_ref()?;
            self.members.get(self.static_members.get(instance_id)?)
        });
        let size_max = ctx.config.group_size_max;
        let holds_place = self.pending_members.contains_key(&join.member_id);
        let occupied = self.members.len() + self.pending_members.len() - usize::from(holds_place);
        if known.is_none() && occupied >= size_max {
            return false;
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                known.is_some_and(Member::is_awaiting_join) || self.awaiting_join_count() < size_max
            }
            GroupState::CompletingRebalance | GroupState::Stable => known.is_some() || self.members.len() < size_max,
        }
    }

    pub fn awaiting_join_count(&self) -> usize {
        self.members.values().filter(|m| m.is_awaiting_join()).count()
    }

    /// Every member has rejoined and no MEMBER_ID_REQUIRED joiner is due back.
    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(Member::is_awaiting_join)
    }

    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members.values().map(|m| i64::from(m.rebalance_timeout_ms)).max().unwrap_or(0)
    }

    /// Kafka's selectProtocol: among protocols every member supports, each
    /// member votes for its first choice; most votes wins. Ties go to the
    /// leader's preference order, so the choice is deterministic.
    pub fn select_protocol(&self) -> String {
        let leader = &self.members[self.leader_id.as_deref().expect("a group with members has a leader")];
        let candidates: Vec<&str> = leader
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|n| self.members.values().all(|m| m.supports(n)))
            .collect();
        assert!(!candidates.is_empty(), "joins are refused unless a common protocol remains");
        let votes = |name: &str| self.members.values().filter(|m| m.vote(&candidates) == Some(name)).count();
        let mut best = candidates[0];
        for &name in &candidates[1..] {
            if votes(name) > votes(best) {
                best = name;
            }
        }
        best.to_string()
    }

    /// The members' metadata for the chosen protocol, as the leader gets it.
    pub fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        let joined = |m: &Member| JoinedMember {
            member_id: m.id.clone(),
            group_instance_id: m.instance_id.clone(),
            metadata: m.metadata(protocol),
        };
        self.members.values().map(joined).collect()
    }

    /// The first broken invariant between the fields, if any. The
    /// coordinator checks them after every operation, in release builds too:
    /// a broken one is a bug, and the group is reset rather than left to
    /// panic a later timer (see `Coordinator::guarded`).
    pub fn broken_invariant(&self, config: &GroupConfig) -> Option<&'static str> {
        let members = &self.members;
        if self.leader_id.is_some() == members.is_empty() {
            return Some("a group has a leader if and only if it has members");
        }
        if self.leader_id.as_ref().is_some_and(|l| !members.contains_key(l)) {
            return Some("the leader is a member");
        }
        let static_ok = |(i, m): (&String, &String)| members.get(m).is_some_and(|m| m.instance_id.as_ref() == Some(i));
        if self.static_members.len() != members.values().filter(|m| m.instance_id.is_some()).count()
            || !self.static_members.iter().all(static_ok)
        {
            return Some("static_members maps each instance id to the one member holding it");
        }
        if !self.pending_sync.iter().all(|m| members.contains_key(m)) {
            return Some("pending syncs are members");
        }
        if self.pending_members.keys().any(|m| members.contains_key(m)) {
            return Some("a pending member id is not yet a member");
        }
        if members.len() + self.pending_members.len() > config.group_size_max {
            return Some("members and pending members fit group.max.size");
        }
        if !members.values().all(|m| self.protocol_type.as_deref() == Some(m.protocol_type.as_str())) {
            return Some("every member has the group's protocol type");
        }
        let common = |p: &Protocol| members.values().all(|m| m.supports(&p.name));
        if members.values().next().is_some_and(|first| !first.protocols.iter().any(common)) {
            return Some("the members have a protocol in common");
        }
        if self.state != GroupState::PreparingRebalance && members.values().any(Member::is_awaiting_join) {
            return Some("joins wait only while the group prepares a rebalance");
        }
        if self.state != GroupState::CompletingRebalance && members.values().any(|m| m.sync_waiter.is_some()) {
            return Some("syncs wait only while the group completes a rebalance");
        }
        let chosen = self.protocol_name.as_deref();
        let ok = match self.state {
            GroupState::Empty | GroupState::Dead => members.is_empty() && self.join_timer.is_none(),
            GroupState::PreparingRebalance => self.join_timer.is_some(),
            GroupState::CompletingRebalance | GroupState::Stable => {
                chosen.is_some_and(|p| !members.is_empty() && members.values().all(|m| m.supports(p)))
            }
        };
        if !ok {
            return Some("the state agrees with the members, the join timer and the chosen protocol");
        }
        None
    }
}
