//! One member of a group: what it joined with, its assignment, its session
//! deadline and the join/sync requests it is waiting on.

use bytes::Bytes;

use super::types::{JoinGroup, JoinResponse, JoinSender, Protocol, SyncResponse, SyncSender};
use super::GroupError;

/// A new member's JoinGroup is answered within this time or it is dropped
/// (Kafka's GroupCoordinator.NewMemberJoinTimeoutMs): its socket is muted
/// while it waits, so a client that gave up would otherwise stay forever.
pub(crate) const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

#[derive(Debug)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// Past this the member is evicted, unless it waits in a join or sync.
    pub session_deadline_ms: i64,
    /// Joined but not yet through a completed join phase.
    pub is_new: bool,
    pub join_waiter: Option<JoinSender>,
    pub sync_waiter: Option<SyncSender>,
}

impl Member {
    pub fn new(id: String, join: &JoinGroup, now_ms: i64) -> Self {
        Member {
            id,
            instance_id: join.group_instance_id.clone(),
            client_id: join.client_id.clone(),
            client_host: join.client_host.clone(),
            session_timeout_ms: join.session_timeout_ms,
            rebalance_timeout_ms: join.rebalance_timeout_ms,
            protocol_type: join.protocol_type.clone(),
            protocols: join.protocols.clone(),
            assignment: Bytes::new(),
            session_deadline_ms: now_ms + NEW_MEMBER_JOIN_TIMEOUT_MS,
            is_new: true,
            join_waiter: None,
            sync_waiter: None,
        }
    }

    /// Takes a rejoin's protocols and timeouts.
    pub fn update(&mut self, join: &JoinGroup) {
        self.protocols = join.protocols.clone();
        self.session_timeout_ms = join.session_timeout_ms;
        self.rebalance_timeout_ms = join.rebalance_timeout_ms;
    }

    pub fn refresh_session(&mut self, now_ms: i64) {
        self.session_deadline_ms = now_ms + i64::from(self.session_timeout_ms);
    }

    /// Members waiting in a join or a sync are alive by definition (their
    /// sockets are muted), except new members, which must finish joining.
    pub fn is_session_expired(&self, now_ms: i64) -> bool {
        let waiting = self.join_waiter.is_some() || self.sync_waiter.is_some();
        now_ms >= self.session_deadline_ms && (self.is_new || !waiting)
    }

    pub fn is_awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// The member's metadata for a protocol it supports.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| p.metadata.clone()).unwrap_or_default()
    }

    /// The member's first choice among protocols every member supports.
    pub fn vote<'a>(&'a self, candidates: &[&str]) -> Option<&'a str> {
        self.protocols.iter().map(|p| p.name.as_str()).find(|name| candidates.contains(name))
    }

    /// Installs a join waiter; a waiter it replaces (a retried join) is told
    /// to rejoin.
    pub fn await_join(&mut self, waiter: JoinSender) {
        if let Some(old) = self.join_waiter.replace(waiter) {
            let _ = old.send(Err(GroupError::RebalanceInProgress));
        }
    }

    pub fn await_sync(&mut self, waiter: SyncSender) {
        if let Some(old) = self.sync_waiter.replace(waiter) {
            let _ = old.send(Err(GroupError::RebalanceInProgress));
        }
    }

    pub fn answer_join(&mut self, answer: Result<JoinResponse, GroupError>) {
        if let Some(waiter) = self.join_waiter.take() {
            let _ = waiter.send(answer);
        }
    }

    pub fn answer_sync(&mut self, answer: Result<SyncResponse, GroupError>) {
        if let Some(waiter) = self.sync_waiter.take() {
            let _ = waiter.send(answer);
        }
    }

    /// Answers both waiters with an error (the member is removed or fenced).
    pub fn fail_waiters(&mut self, error: &GroupError) {
        self.answer_join(Err(error.clone()));
        self.answer_sync(Err(error.clone()));
    }
}
