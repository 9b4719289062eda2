//! JoinGroup: new members, MEMBER_ID_REQUIRED, rejoins of known members and
//! the static-member replacement path (Kafka's handleJoinGroup,
//! doUnknownJoinGroup, doCurrentMemberJoinGroup, updateStaticMemberAndRebalance).

use tokio::sync::oneshot;
use tracing::info;
use uuid::Uuid;

use super::group::Group;
use super::member::Member;
use super::types::{GroupState, JoinGroup, JoinResponse, Reply};
use super::{guarded, Check, Coordinator, Ctx, GroupError};

impl Coordinator {
    /// Handles a JoinGroup. The answer usually waits for the join phase to
    /// complete (other members' joins, or `tick` reaching a timeout).
    pub fn join(&mut self, join: JoinGroup, now_ms: i64) -> Reply<JoinResponse> {
        let ctx = Ctx { config: &self.config, now_ms };
        if join.group_id.is_empty() {
            return Reply::Ready(Err(GroupError::InvalidGroupId));
        }
        let (min_ms, max_ms) = (ctx.config.group_min_session_timeout_ms, ctx.config.group_max_session_timeout_ms);
        if !(min_ms..=max_ms).contains(&join.session_timeout_ms) {
            let session_timeout_ms = join.session_timeout_ms;
            return Reply::Ready(Err(GroupError::InvalidSessionTimeout { session_timeout_ms, min_ms, max_ms }));
        }
        let group = if join.member_id.is_empty() {
            self.groups.entry(join.group_id.clone()).or_insert_with(|| Group::new(&join.group_id, now_ms))
        } else {
            match self.groups.get_mut(&join.group_id) {
                Some(group) => group,
                None => return Reply::Ready(Err(GroupError::unknown_member(&join.member_id))),
            }
        };
        let reply = guarded(group, ctx, Check::Invariants, &mut self.groups_reset, |g, ctx| g.join(join, ctx));
        reply.unwrap_or(Reply::Ready(Err(GroupError::UnknownServerError)))
    }
}

impl Group {
    fn join(&mut self, join: JoinGroup, ctx: Ctx) -> Reply<JoinResponse> {
        if !self.accepts_joiner(&join, ctx) {
            if self.members.contains_key(&join.member_id) {
                self.remove_member_and_rebalance(&join.member_id, ctx, "group is over group.max.size");
            }
            return Reply::Ready(Err(GroupError::GroupMaxSizeReached));
        }
        if !self.supports_protocols(&join) {
            return Reply::Ready(Err(GroupError::InconsistentGroupProtocol));
        }
        let reply = if join.member_id.is_empty() { self.join_new(join, ctx) } else { self.join_known(join, ctx) };
        self.try_complete_join(ctx);
        reply
    }

    /// A join without a member id: a new member, or a static member back with
    /// a known group.instance.id.
    fn join_new(&mut self, join: JoinGroup, ctx: Ctx) -> Reply<JoinResponse> {
        // Kafka prefixes a static member's id with its instance id.
        let prefix = join.group_instance_id.as_deref().unwrap_or(&join.client_id);
        let member_id = format!("{prefix}-{}", Uuid::new_v4());
        if let Some(instance_id) = &join.group_instance_id {
            if let Some(old_id) = self.static_members.get(instance_id).cloned() {
                return self.rejoin_static(&old_id, member_id, join, ctx);
            }
            return self.add_member_and_rebalance(member_id, join, ctx);
        }
        if join.require_known_member_id {
            // The client rejoins with this id; until then it counts as joining.
            let deadline_ms = ctx.now_ms + i64::from(join.session_timeout_ms);
            self.pending_members.insert(member_id.clone(), deadline_ms);
            return Reply::Ready(Err(GroupError::MemberIdRequired { member_id }));
        }
        self.add_member_and_rebalance(member_id, join, ctx)
    }

    fn join_known(&mut self, join: JoinGroup, ctx: Ctx) -> Reply<JoinResponse> {
        if self.pending_members.contains_key(&join.member_id) {
            if join.group_instance_id.is_some() {
                // Taking an instance id here would leave its holder in the
                // group beside us, with protocols that need not match ours:
                // the next join phase would find no common protocol.
                return Reply::Ready(Err(GroupError::PendingMemberWithInstanceId { member_id: join.member_id }));
            }
            self.pending_members.remove(&join.member_id);
            let member_id = join.member_id.clone();
            return self.add_member_and_rebalance(member_id, join, ctx);
        }
        if let Err(error) = self.validate_member(&join.member_id, join.group_instance_id.as_deref()) {
            return Reply::Ready(Err(error));
        }
        let unchanged = self.members[&join.member_id].protocols == join.protocols;
        let is_leader = self.is_leader(&join.member_id);
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(join, ctx),
            // A repeated join (lost response): answer with what it missed.
            GroupState::CompletingRebalance if unchanged => {
                self.member(&join.member_id).refresh_session(ctx.now_ms);
                Reply::Ready(Ok(self.current_join_response(&join.member_id, is_leader)))
            }
            GroupState::Stable if unchanged && !is_leader => {
                self.member(&join.member_id).refresh_session(ctx.now_ms);
                Reply::Ready(Ok(self.current_join_response(&join.member_id, false)))
            }
            GroupState::CompletingRebalance | GroupState::Stable => self.update_member_and_rebalance(join, ctx),
            GroupState::Empty | GroupState::Dead => Reply::Ready(Err(GroupError::unknown_member(&join.member_id))),
        }
    }

    fn add_member_and_rebalance(&mut self, member_id: String, join: JoinGroup, ctx: Ctx) -> Reply<JoinResponse> {
        let (sender, receiver) = oneshot::channel();
        let mut member = Member::new(member_id, &join, ctx.now_ms);
        member.await_join(sender);
        if self.state == GroupState::PreparingRebalance && self.generation_id == 0 {
            self.new_member_added = true;
        }
        info!(group = %self.id, member_id = %member.id, instance_id = ?member.instance_id, "member joins");
        self.add_member(member);
        self.maybe_prepare_rebalance(ctx, "member joined");
        Reply::Waiting(receiver)
    }

    fn update_member_and_rebalance(&mut self, join: JoinGroup, ctx: Ctx) -> Reply<JoinResponse> {
        let (sender, receiver) = oneshot::channel();
        let member = self.member(&join.member_id);
        member.update(&join);
        member.await_join(sender);
        self.maybe_prepare_rebalance(ctx, "member rejoined");
        Reply::Waiting(receiver)
    }

    /// A static member restarted: it takes a new member id and the old id is
    /// fenced. A Stable group whose protocol choice is unchanged gives it its
    /// old assignment back without a rebalance.
    fn rejoin_static(&mut self, old_id: &str, new_id: String, join: JoinGroup, ctx: Ctx) -> Reply<JoinResponse> {
        let leader_before = self.leader_id.clone().unwrap_or_default();
        info!(group = %self.id, old_id, new_id, "static member rejoins");
        self.replace_static_member(old_id, &new_id);
        let (sender, receiver) = oneshot::channel();
        let member = self.member(&new_id);
        member.refresh_session(ctx.now_ms);
        member.update(&join);
        member.await_join(sender);
        match self.state {
            GroupState::Stable if self.protocol_name.as_deref() == Some(self.select_protocol().as_str()) => {
                let response = self.static_rejoin_response(&new_id, leader_before, join.supports_skip_assignment);
                self.member(&new_id).answer_join(Ok(response));
            }
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(ctx, "static member rejoined with other protocols")
            }
            GroupState::PreparingRebalance => {}
            GroupState::Empty | GroupState::Dead => unreachable!("a group with a static member has members"),
        }
        Reply::Waiting(receiver)
    }

    /// The current generation, so the member syncs and gets its old
    /// assignment. A leader that can skip assignment (v9+) learns it leads;
    /// otherwise the old leader id is returned, so the rejoined member does
    /// not believe it leads and compute an assignment nobody would receive.
    fn static_rejoin_response(&self, member_id: &str, leader_before: String, skip_capable: bool) -> JoinResponse {
        let mut response = self.current_join_response(member_id, false);
        if skip_capable && self.is_leader(member_id) {
            response.members = self.joined_members();
            response.skip_assignment = true;
        } else if !skip_capable {
            response.leader_id = leader_before;
        }
        response
    }
}
