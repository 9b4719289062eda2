//! SyncGroup, Heartbeat and LeaveGroup: the requests of members that have
//! joined (Kafka's handleSyncGroup, handleHeartbeat, handleLeaveGroup).

use tokio::sync::oneshot;

use super::group::Group;
use super::types::{GroupState, Heartbeat, LeaveGroup, LeavingMember, MemberLeave, Reply, SyncGroup, SyncResponse};
use super::{guarded, Check, Coordinator, Ctx, GroupError};

impl Coordinator {
    /// Handles a SyncGroup. Followers that sync before the leader wait for
    /// its assignment; the leader's sync answers everyone.
    pub fn sync(&mut self, sync: SyncGroup, now_ms: i64) -> Reply<SyncResponse> {
        let ctx = Ctx { config: &self.config, now_ms };
        if sync.group_id.is_empty() {
            return Reply::Ready(Err(GroupError::InvalidGroupId));
        }
        let Some(group) = self.groups.get_mut(&sync.group_id) else {
            return Reply::Ready(Err(GroupError::unknown_member(&sync.member_id)));
        };
        let reply = guarded(group, ctx, Check::Invariants, &mut self.groups_reset, |g, ctx| g.sync(sync, ctx));
        reply.unwrap_or(Reply::Ready(Err(GroupError::UnknownServerError)))
    }

    /// Handles a Heartbeat. REBALANCE_IN_PROGRESS tells the member to rejoin.
    pub fn heartbeat(&mut self, heartbeat: Heartbeat, now_ms: i64) -> Result<(), GroupError> {
        let ctx = Ctx { config: &self.config, now_ms };
        if heartbeat.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let Some(group) = self.groups.get_mut(&heartbeat.group_id) else {
            return Err(GroupError::unknown_member(&heartbeat.member_id));
        };
        let beat = |g: &mut Group, ctx: Ctx| g.heartbeat(&heartbeat, ctx.now_ms);
        guarded(group, ctx, Check::PanicsOnly, &mut self.groups_reset, beat)
            .unwrap_or(Err(GroupError::UnknownServerError))
    }

    /// Handles a (batch) LeaveGroup: one answer per leaving member.
    pub fn leave(&mut self, leave: LeaveGroup, now_ms: i64) -> Result<Vec<MemberLeave>, GroupError> {
        let ctx = Ctx { config: &self.config, now_ms };
        if leave.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let Some(group) = self.groups.get_mut(&leave.group_id) else {
            let unknown =
                |m: LeavingMember| MemberLeave { result: Err(GroupError::unknown_member(&m.member_id)), member: m };
            return Ok(leave.members.into_iter().map(unknown).collect());
        };
        let leave_all = |g: &mut Group, ctx: Ctx| {
            let answers = leave.members.into_iter().map(|m| MemberLeave { result: g.leave(&m, ctx), member: m });
            answers.collect()
        };
        guarded(group, ctx, Check::Invariants, &mut self.groups_reset, leave_all).ok_or(GroupError::UnknownServerError)
    }
}

impl Group {
    fn sync(&mut self, sync: SyncGroup, ctx: Ctx) -> Reply<SyncResponse> {
        if let Err(error) = self.validate_sync(&sync) {
            return Reply::Ready(Err(error));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Reply::Ready(Err(GroupError::unknown_member(&sync.member_id))),
            GroupState::PreparingRebalance => Reply::Ready(Err(GroupError::RebalanceInProgress)),
            GroupState::CompletingRebalance => {
                let (sender, receiver) = oneshot::channel();
                self.member(&sync.member_id).await_sync(sender);
                self.pending_sync.remove(&sync.member_id);
                if self.is_leader(&sync.member_id) {
                    self.install_assignment(&sync.assignments, ctx.now_ms);
                }
                Reply::Waiting(receiver)
            }
            GroupState::Stable => {
                self.pending_sync.remove(&sync.member_id);
                let member = self.member(&sync.member_id);
                member.refresh_session(ctx.now_ms);
                let assignment = member.assignment.clone();
                let (protocol_type, protocol_name) = (self.protocol_type.clone(), self.protocol_name.clone());
                Reply::Ready(Ok(SyncResponse { protocol_type, protocol_name, assignment }))
            }
        }
    }

    fn validate_sync(&self, sync: &SyncGroup) -> Result<(), GroupError> {
        self.validate_member(&sync.member_id, sync.group_instance_id.as_deref())?;
        self.validate_generation(sync.generation_id)?;
        let mismatch = |asked: &Option<String>, ours: &Option<String>| asked.is_some() && asked != ours;
        if mismatch(&sync.protocol_type, &self.protocol_type) || mismatch(&sync.protocol_name, &self.protocol_name) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    fn heartbeat(&mut self, heartbeat: &Heartbeat, now_ms: i64) -> Result<(), GroupError> {
        self.validate_member(&heartbeat.member_id, heartbeat.group_instance_id.as_deref())?;
        self.validate_generation(heartbeat.generation_id)?;
        if matches!(self.state, GroupState::Empty | GroupState::Dead) {
            return Err(GroupError::unknown_member(&heartbeat.member_id));
        }
        self.member(&heartbeat.member_id).refresh_session(now_ms);
        if self.state == GroupState::PreparingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    fn leave(&mut self, leaving: &LeavingMember, ctx: Ctx) -> Result<(), GroupError> {
        let instance_id = leaving.group_instance_id.as_deref();
        if leaving.member_id.is_empty() {
            // Administrative removal of a static member by its instance id.
            let member_id = instance_id.and_then(|i| self.static_members.get(i)).cloned();
            let member_id = member_id.ok_or_else(|| GroupError::unknown_member(""))?;
            self.remove_member_and_rebalance(&member_id, ctx, "static member removed by LeaveGroup");
            return Ok(());
        }
        if self.pending_members.contains_key(&leaving.member_id) {
            self.remove_pending_member(&leaving.member_id, ctx);
            return Ok(());
        }
        self.validate_member(&leaving.member_id, instance_id)?;
        self.remove_member_and_rebalance(&leaving.member_id, ctx, "member left");
        Ok(())
    }
}
