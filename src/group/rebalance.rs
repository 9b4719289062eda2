//! The rebalance state machine of one group: Empty → PreparingRebalance →
//! CompletingRebalance → Stable, generations, and every timeout, as Kafka's
//! GroupCoordinator drives them (prepareRebalance, onCompleteJoin,
//! onExpireHeartbeat, onExpireSync).

use bytes::Bytes;
use tracing::info;

use super::group::{next_generation, Group, JoinTimer};
use super::types::{GroupState, JoinResponse, SyncResponse};
use super::{Ctx, GroupError};

impl Group {
    /// Starts a rebalance unless one is already collecting joins.
    pub(crate) fn maybe_prepare_rebalance(&mut self, ctx: Ctx, reason: &str) {
        if matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty) {
            self.prepare_rebalance(ctx, reason);
        }
    }

    fn prepare_rebalance(&mut self, ctx: Ctx, reason: &str) {
        info!(group = %self.id, generation = self.generation_id, reason, "preparing rebalance");
        if self.state == GroupState::CompletingRebalance {
            // Followers waiting for the old generation's assignment rejoin.
            self.reset_assignments(&GroupError::RebalanceInProgress, ctx.now_ms);
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        let delay_ms = i64::from(ctx.config.group_initial_rebalance_delay_ms);
        let rebalance_ms = self.rebalance_timeout_ms();
        self.join_timer = Some(if self.state == GroupState::Empty && delay_ms > 0 {
            let remaining_ms = (rebalance_ms - delay_ms).max(0);
            JoinTimer::Initial { deadline_ms: ctx.now_ms + delay_ms, remaining_ms }
        } else {
            JoinTimer::Rebalance { deadline_ms: ctx.now_ms + rebalance_ms }
        });
        self.transition(GroupState::PreparingRebalance, ctx.now_ms);
        self.try_complete_join(ctx);
    }

    /// Ends the join phase early once everyone is in (never during the
    /// initial delay, which exists to gather more members).
    pub(crate) fn try_complete_join(&mut self, ctx: Ctx) {
        let early = matches!(self.join_timer, Some(JoinTimer::Rebalance { .. }));
        if self.state == GroupState::PreparingRebalance && early && self.all_members_joined() {
            self.complete_join(ctx);
        }
    }

    /// Kafka's onCompleteJoin: dynamic members that did not rejoin are
    /// dropped, a leader that did not rejoin is replaced, and the next
    /// generation starts.
    fn complete_join(&mut self, ctx: Ctx) {
        let stale: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for member_id in &stale {
            info!(group = %self.id, member_id, "member did not rejoin in time; removing it");
            self.remove_member(member_id, &GroupError::unknown_member(member_id));
        }
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait for
            // them, or for their sessions to expire.
            self.join_timer = Some(JoinTimer::Rebalance { deadline_ms: ctx.now_ms + self.rebalance_timeout_ms() });
            return;
        }
        self.start_next_generation(ctx);
        if self.state == GroupState::CompletingRebalance {
            self.answer_joins(ctx.now_ms);
        }
    }

    /// Keeps a leader that rejoined, else picks a member that did.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader_id) = &self.leader_id else { return false };
        if self.members[leader_id].is_awaiting_join() {
            return true;
        }
        let Some(joined) = self.members.values().find(|m| m.is_awaiting_join()) else { return false };
        self.leader_id = Some(joined.id.clone());
        true
    }

    fn start_next_generation(&mut self, ctx: Ctx) {
        self.generation_id = next_generation(self.generation_id);
        self.join_timer = None;
        self.new_member_added = false;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, ctx.now_ms);
            return;
        }
        self.protocol_name = Some(self.select_protocol());
        self.transition(GroupState::CompletingRebalance, ctx.now_ms);
        // Kafka 3.x: every member must sync within the rebalance timeout.
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline_ms = Some(ctx.now_ms + self.rebalance_timeout_ms());
        info!(group = %self.id, generation = self.generation_id, protocol = ?self.protocol_name,
            members = self.members.len(), "join phase complete");
    }

    fn answer_joins(&mut self, now_ms: i64) {
        // Only the leader is shown the members (and their metadata).
        let answers: Vec<JoinResponse> =
            self.members.keys().map(|id| self.current_join_response(id, self.is_leader(id))).collect();
        for (member, response) in self.members.values_mut().zip(answers) {
            member.answer_join(Ok(response));
            member.refresh_session(now_ms);
            member.is_new = false;
        }
    }

    /// The answer a member gets when its join does not start a rebalance.
    pub(crate) fn current_join_response(&self, member_id: &str, with_members: bool) -> JoinResponse {
        JoinResponse {
            member_id: member_id.to_string(),
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone().unwrap_or_default(),
            skip_assignment: false,
            members: if with_members { self.joined_members() } else { Vec::new() },
        }
    }

    /// The leader's assignment reached us: every member gets its share
    /// (members the leader left out get an empty one) and the group is Stable.
    pub(crate) fn install_assignment(&mut self, assignments: &[(String, Bytes)], now_ms: i64) {
        for member in self.members.values_mut() {
            let assigned = assignments.iter().find(|(id, _)| *id == member.id);
            member.assignment = assigned.map(|(_, a)| a.clone()).unwrap_or_default();
        }
        let (protocol_type, protocol_name) = (self.protocol_type.clone(), self.protocol_name.clone());
        for member in self.members.values_mut() {
            let assignment = member.assignment.clone();
            let response =
                SyncResponse { protocol_type: protocol_type.clone(), protocol_name: protocol_name.clone(), assignment };
            member.answer_sync(Ok(response));
            member.refresh_session(now_ms);
        }
        self.transition(GroupState::Stable, now_ms);
    }

    /// Kafka's resetAndPropagateAssignmentWithError.
    fn reset_assignments(&mut self, error: &GroupError, now_ms: i64) {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
            member.answer_sync(Err(error.clone()));
            member.refresh_session(now_ms);
        }
    }

    /// Removes a member (leave, session expiry) and lets the group react.
    pub(crate) fn remove_member_and_rebalance(&mut self, member_id: &str, ctx: Ctx, reason: &str) {
        self.remove_member(member_id, &GroupError::unknown_member(member_id));
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.maybe_prepare_rebalance(ctx, reason),
            GroupState::PreparingRebalance => self.try_complete_join(ctx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    pub(crate) fn remove_pending_member(&mut self, member_id: &str, ctx: Ctx) {
        self.pending_members.remove(member_id);
        self.try_complete_join(ctx);
    }

    /// Fires whatever timeouts are due at `ctx.now_ms`.
    pub(crate) fn tick(&mut self, ctx: Ctx) {
        self.expire_pending_members(ctx);
        self.expire_sessions(ctx);
        self.expire_join_timer(ctx);
        self.expire_pending_syncs(ctx);
    }

    fn expire_pending_members(&mut self, ctx: Ctx) {
        let due: Vec<String> =
            self.pending_members.iter().filter(|(_, &at)| ctx.now_ms >= at).map(|(id, _)| id.clone()).collect();
        for member_id in due {
            info!(group = %self.id, member_id, "pending member never rejoined; forgetting it");
            self.remove_pending_member(&member_id, ctx);
        }
    }

    fn expire_sessions(&mut self, ctx: Ctx) {
        let due: Vec<String> =
            self.members.values().filter(|m| m.is_session_expired(ctx.now_ms)).map(|m| m.id.clone()).collect();
        for member_id in due {
            // An earlier removal may have refreshed or removed this member.
            if self.members.get(&member_id).is_some_and(|m| m.is_session_expired(ctx.now_ms)) {
                info!(group = %self.id, member_id, "session expired; removing member");
                self.remove_member_and_rebalance(&member_id, ctx, "session expired");
            }
        }
    }

    fn expire_join_timer(&mut self, ctx: Ctx) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        match self.join_timer {
            Some(JoinTimer::Initial { deadline_ms, remaining_ms }) if ctx.now_ms >= deadline_ms => {
                if self.new_member_added && remaining_ms > 0 {
                    // More members arrived during the delay: wait once more.
                    self.new_member_added = false;
                    let delay_ms = i64::from(ctx.config.group_initial_rebalance_delay_ms).min(remaining_ms);
                    let remaining_ms = remaining_ms - delay_ms;
                    self.join_timer = Some(JoinTimer::Initial { deadline_ms: ctx.now_ms + delay_ms, remaining_ms });
                } else {
                    self.complete_join(ctx);
                }
            }
            Some(JoinTimer::Rebalance { deadline_ms }) if ctx.now_ms >= deadline_ms => self.complete_join(ctx),
            _ => {}
        }
    }

    /// Kafka's onExpireSync: members that never sent SyncGroup are removed.
    fn expire_pending_syncs(&mut self, ctx: Ctx) {
        let Some(deadline_ms) = self.sync_deadline_ms else { return };
        if ctx.now_ms < deadline_ms {
            return;
        }
        self.sync_deadline_ms = None;
        if self.pending_sync.is_empty() {
            return;
        }
        let late: Vec<String> = self.pending_sync.iter().cloned().collect();
        for member_id in &late {
            info!(group = %self.id, member_id, "member never sent SyncGroup; removing it");
            self.remove_member(member_id, &GroupError::unknown_member(member_id));
        }
        self.prepare_rebalance(ctx, "pending sync expired");
    }
}
