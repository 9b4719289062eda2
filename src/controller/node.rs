//! One controller of the quorum: a raft-rs `RawNode` over the durable
//! storage, the metadata state it applies, and the leader's duties. It
//! does no I/O but its storage's: the driver (`super::run`, or the
//! simulations in the tests) feeds it messages, proposals, heartbeats and
//! ticks with the time, and sends what it leaves in the [`Outbox`].
//!
//! Committed entries are [`Envelope`]s of `MetadataRecord`s, applied with
//! `Snapshot::check`/`apply` in log order on every node: a record the state
//! refuses is skipped on every node alike, so every node holds the same
//! state at the same index. A `RegisterNode` takes the index it commits at
//! as its broker epoch (KRaft's rule), which only the log can give.

use std::collections::HashMap;
use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::{Entry, EntryType, Message, MessageType};
use raft::{RawNode, StateRole};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::duties::{self, DutySettings, Heartbeat, Sessions};
use super::storage::DurableStorage;
use super::ControllerError;
use crate::cluster::{NodeId, NodeRegistration};
use crate::metadata::{self, MetadataRecord, Snapshot};

/// Ticks without a leader's word before a follower stands for election: 10
/// ticks of `TICK_MS` (raft-rs randomises it between 1 and 2 times this).
pub const ELECTION_TICKS: usize = 10;
/// A leader's heartbeat every tick.
const HEARTBEAT_TICKS: usize = 1;
/// Milliseconds per Raft tick.
pub const TICK_MS: u64 = 100;
/// Entries kept after the last snapshot before the log is compacted into a
/// new one (the metadata state of a few thousand partitions is a few MiB).
const LOG_ENTRIES_MAX: usize = 4_096;
/// Bytes of entries per append message to a follower.
const APPEND_BYTES_MAX: u64 = 1 << 20;
/// Append messages in flight to one follower.
const APPENDS_IN_FLIGHT_MAX: usize = 256;
/// Terms a peer's message may be ahead of this node's: a term grows by one
/// per election (pre-vote keeps a cut-off node from inflating its own), so
/// a million ahead is not a voter that missed some elections but a crafted
/// message, which would push every node to a term near overflow.
const TERM_AHEAD_MAX: u64 = 1 << 20;

/// The raft-rs id of node `node` (raft-rs reserves 0 for "none"; Kafka's
/// node ids start at 0).
pub fn raft_id(node: NodeId) -> u64 {
    node.0 as u64 + 1
}

pub fn node_of(raft_id: u64) -> Option<NodeId> {
    raft_id.checked_sub(1).and_then(|id| u32::try_from(id).ok()).map(NodeId)
}

/// Why a peer's message cannot be stepped, checked before raft-rs sees it:
/// raft-rs appends an append's entries as they come, and entries that skip an index or
/// claim a term past the message's would reach the durable log, where they
/// would stop every later start.
fn malformed(message: &Message) -> Option<&'static str> {
    // Only an append places entries at indexes (a forwarded proposal's have none yet).
    if message.get_msg_type() != MessageType::MsgAppend {
        return None;
    }
    let mut index = message.index;
    for entry in &message.entries {
        let Some(next) = index.checked_add(1) else { return Some("an entry index past the largest") };
        index = next;
        if entry.index != index {
            return Some("entries that do not follow the message's index one by one");
        }
        if entry.term > message.term {
            return Some("an entry of a term past the message's");
        }
    }
    None
}

/// What one log entry holds: the proposer (a process incarnation, so its
/// sequence numbers never repeat across restarts) and the records.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub proposer: Uuid,
    pub seq: u64,
    pub records: Vec<MetadataRecord>,
}

/// Answered once the proposal is applied here, or refused.
pub type Reply = oneshot::Sender<Result<Arc<Snapshot>, ControllerError>>;

/// The internal topic the leader creates once enough nodes are up
/// (`__consumer_offsets`, named by the wiring: the controller knows no groups).
#[derive(Debug, Clone)]
pub struct InternalTopic {
    pub name: String,
    pub partitions: i32,
    pub configs: std::collections::BTreeMap<String, String>,
    pub replication_factor: i16,
}

#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub me: NodeId,
    pub voters: Vec<NodeId>,
    /// This process's registration (its epoch is set when it commits).
    pub registration: NodeRegistration,
    pub duties: DutySettings,
    pub heartbeat_interval_ms: u64,
    pub proposal_timeout_ms: u64,
    pub internal_topic: Option<InternalTopic>,
}

/// What the driver sends after a step.
#[derive(Default)]
pub struct Outbox {
    pub messages: Vec<Message>,
    pub heartbeats: Vec<(NodeId, Heartbeat)>,
}

struct Pending {
    reply: Option<Reply>,
    deadline_ms: u64,
}

pub struct ControllerNode {
    raw: RawNode<DurableStorage>,
    settings: NodeSettings,
    state: Snapshot,
    applied: u64,
    pending: HashMap<u64, Pending>,
    next_seq: u64,
    leader: bool,
    sessions: Sessions,
    /// The leader's `ChangeController` proposal; the duties start once it
    /// is applied (the state is then the whole committed log).
    election: Option<u64>,
    leader_ready: bool,
    duty_in_flight: Option<u64>,
    registering: Option<u64>,
    heartbeat_sent_ms: u64,
    /// This node is stopping: its heartbeats ask the leader to fence it and
    /// move its leaderships (controlled shutdown).
    shutting_down: bool,
    published: watch::Sender<Arc<Snapshot>>,
}

fn logger() -> slog::Logger {
    slog::Logger::root(super::log::TracingDrain, slog::o!())
}

impl ControllerNode {
    pub fn new(
        storage: DurableStorage,
        settings: NodeSettings,
        published: watch::Sender<Arc<Snapshot>>,
    ) -> Result<ControllerNode, ControllerError> {
        let node = ControllerNode::open(storage, settings, published)?;
        node.publish();
        Ok(node)
    }

    /// This node's Raft state and metadata state rebuilt from what is
    /// durable, as at a restart of the process, after a panic in raft-rs or
    /// in the handling of what it made ready (a crafted message can trip
    /// raft-rs's own assertions; what is in memory may then be half
    /// changed, what is on disk is whole). Replies still pending are
    /// dropped (their proposers see the controller stopped and retry); the
    /// state published stays until the replay passes it.
    pub fn restarted(self) -> Result<ControllerNode, ControllerError> {
        let ControllerNode { raw, settings, published, shutting_down, .. } = self;
        let storage = raw.store().reopen()?;
        drop(raw);
        let mut node = ControllerNode::open(storage, settings, published)?;
        node.shutting_down = shutting_down;
        Ok(node)
    }

    fn open(
        storage: DurableStorage,
        settings: NodeSettings,
        published: watch::Sender<Arc<Snapshot>>,
    ) -> Result<ControllerNode, ControllerError> {
        let (image, applied) = storage.snapshot_data();
        let state = if applied == 0 { Snapshot::default() } else { metadata::decode_image(image)? };
        let config = raft::Config {
            id: raft_id(settings.me),
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            applied,
            max_size_per_msg: APPEND_BYTES_MAX,
            max_inflight_msgs: APPENDS_IN_FLIGHT_MAX,
            // A leader cut off from a majority steps down, and a node
            // rejoining does not disrupt a working leader.
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        config.validate()?;
        let raw = RawNode::new(&config, storage, &logger())?;
        Ok(ControllerNode {
            raw,
            settings,
            state,
            applied,
            pending: HashMap::new(),
            next_seq: 0,
            leader: false,
            sessions: Sessions::default(),
            election: None,
            leader_ready: false,
            duty_in_flight: None,
            registering: None,
            heartbeat_sent_ms: 0,
            shutting_down: false,
            published,
        })
    }

    #[cfg(test)]
    pub fn state(&self) -> &Snapshot {
        &self.state
    }

    #[cfg(test)]
    pub fn applied(&self) -> u64 {
        self.applied
    }

    #[cfg(test)]
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The quorum leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        node_of(self.raw.raft.leader_id)
    }

    /// Whether this process's registration is committed.
    pub fn registered(&self) -> bool {
        let me = &self.settings.registration;
        self.state.nodes.get(&me.id).is_some_and(|n| n.incarnation == me.incarnation)
    }

    /// A message from a peer; one not meant for this node, from a node that
    /// is not a voter, or carrying entries that do not follow one another
    /// is dropped (and raft-rs refuses local kinds). What raft-rs itself
    /// would panic on (a commit index past the log, a conflict with a
    /// committed entry) is left to the driver's catch and restart: raft-rs
    /// knows its own invariants better than a copy of its checks would.
    pub fn step(&mut self, message: Message) {
        let from_voter =
            node_of(message.from).is_some_and(|n| n != self.settings.me && self.settings.voters.contains(&n));
        if message.to != raft_id(self.settings.me) || !from_voter {
            tracing::debug!(from = message.from, to = message.to, "controller: dropping a stray message");
            return;
        }
        if message.term > self.raw.raft.term.saturating_add(TERM_AHEAD_MAX) {
            tracing::warn!(
                from = message.from,
                term = message.term,
                "controller: dropping a message of an absurd term"
            );
            return;
        }
        if let Some(why) = malformed(&message) {
            tracing::warn!(from = message.from, why, "controller: dropping a malformed message");
            return;
        }
        if let Err(e) = self.raw.step(message) {
            tracing::debug!(error = %e, "controller: message refused");
        }
    }

    pub fn report_unreachable(&mut self, node: NodeId) {
        self.raw.report_unreachable(raft_id(node));
    }

    /// A node's heartbeat, heard by the leader.
    pub fn heartbeat(&mut self, heartbeat: Heartbeat, now_ms: u64) {
        if self.leader {
            if heartbeat.want_shutdown && !self.sessions.wants_shutdown(heartbeat.node, heartbeat.epoch) {
                tracing::info!(node = %heartbeat.node, epoch = heartbeat.epoch, "controller: node asks for a controlled shutdown");
            }
            self.sessions.record(heartbeat, now_ms);
        }
    }

    /// This process is stopping: from the next tick on, its heartbeats
    /// (one every tick, so the leader hears it at once) ask to shut down.
    pub fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        self.heartbeat_sent_ms = 0;
    }

    /// Proposes `records` as one entry; `reply` is answered once it is
    /// applied here (or refused, or timed out). None if it could not even
    /// be proposed (no leader known).
    pub fn propose(&mut self, records: Vec<MetadataRecord>, reply: Option<Reply>, now_ms: u64) -> Option<u64> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let envelope = Envelope { proposer: self.settings.registration.incarnation, seq, records };
        let data = serde_json::to_vec(&envelope).expect("records encode");
        if self.raw.raft.leader_id == raft::INVALID_ID || self.raw.propose(Vec::new(), data).is_err() {
            if let Some(reply) = reply {
                let _ = reply.send(Err(ControllerError::NotController));
            }
            return None;
        }
        self.pending.insert(seq, Pending { reply, deadline_ms: now_ms + self.settings.proposal_timeout_ms });
        Some(seq)
    }

    /// One tick of the clock (every `TICK_MS`).
    pub fn tick(&mut self, now_ms: u64, out: &mut Outbox) {
        self.raw.tick();
        self.expire(now_ms);
        if !self.registered() && self.registering.is_none() {
            let registration = NodeRegistration { epoch: 0, fenced: true, ..self.settings.registration.clone() };
            self.registering = self.propose(vec![MetadataRecord::RegisterNode { registration }], None, now_ms);
        }
        let heartbeat_interval_ms = if self.shutting_down { TICK_MS } else { self.settings.heartbeat_interval_ms };
        if self.registered() && now_ms.saturating_sub(self.heartbeat_sent_ms) >= heartbeat_interval_ms {
            self.heartbeat_sent_ms = now_ms;
            let me = self.settings.me;
            let epoch = self.state.nodes[&me].epoch;
            let heartbeat = Heartbeat { node: me, epoch, applied: self.applied, want_shutdown: self.shutting_down };
            match self.leader() {
                Some(leader) if leader == me => self.heartbeat(heartbeat, now_ms),
                Some(leader) => out.heartbeats.push((leader, heartbeat)),
                None => {}
            }
        }
        if self.shutting_down && self.leader {
            self.hand_over_leadership();
        }
        if self.leader && self.leader_ready && self.duty_in_flight.is_none() {
            let mut records = duties::plan(&self.state, &self.sessions, now_ms, &self.settings.duties);
            if duties::rebalance_due(&self.sessions, now_ms, &self.settings.duties) {
                self.sessions.rebalanced_ms = now_ms;
            }
            records.extend(self.internal_topic_record(now_ms));
            if !records.is_empty() {
                tracing::info!(records = records.len(), "controller: proposing membership changes");
                self.duty_in_flight = self.propose(records, None, now_ms);
            }
        }
    }

    /// A leader shutting down hands the quorum over once its own fencing is
    /// committed (its partitions have moved by then), to the voter that
    /// holds the most of the log and was heard from lately, so the quorum
    /// does not go an election timeout without a controller after it stops
    /// (KRaft's controller resigns on shutdown too). raft-rs catches the
    /// transferee up first and aborts the transfer after an election
    /// timeout; it is asked again on a later tick while this node leads.
    fn hand_over_leadership(&mut self) {
        let me = self.settings.me;
        let fenced = self.state.nodes.get(&me).is_some_and(|n| n.fenced);
        if !fenced || self.raw.raft.lead_transferee.is_some() {
            return;
        }
        let me_raft = raft_id(me);
        let transferee = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(id, progress)| **id != me_raft && progress.recent_active)
            .max_by_key(|(id, progress)| (progress.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id);
        if let Some(transferee) = transferee {
            tracing::info!(to = ?node_of(transferee), "controller: shutting down, handing the quorum's leadership over");
            self.raw.transfer_leader(transferee);
        }
    }

    /// `__consumer_offsets` once enough nodes are unfenced: as many as its
    /// replication factor (capped at the voters), or any after a session
    /// timeout of leadership (a cluster started with nodes missing).
    fn internal_topic_record(&self, now_ms: u64) -> Option<MetadataRecord> {
        let topic = self.settings.internal_topic.as_ref()?;
        if self.state.topic(&topic.name).is_some() {
            return None;
        }
        let unfenced = self.state.unfenced_nodes().count();
        let wanted = (topic.replication_factor.max(1) as usize).min(self.settings.voters.len());
        let waited = now_ms.saturating_sub(self.sessions.leader_since_ms) > self.settings.duties.session_timeout_ms;
        if unfenced == 0 || (unfenced < wanted && !waited) {
            return None;
        }
        let factor = (topic.replication_factor.max(1) as usize).min(unfenced) as i16;
        let partitions = metadata::spread_replicas(&self.state, &topic.name, 0, topic.partitions, factor).ok()?;
        Some(MetadataRecord::CreateTopic {
            name: topic.name.clone(),
            id: Uuid::new_v4(),
            partitions,
            configs: topic.configs.clone(),
        })
    }

    fn expire(&mut self, now_ms: u64) {
        let expired: Vec<u64> =
            self.pending.iter().filter(|(_, p)| p.deadline_ms <= now_ms).map(|(seq, _)| *seq).collect();
        for seq in expired {
            if let Some(Pending { reply: Some(reply), .. }) = self.pending.remove(&seq) {
                let _ = reply.send(Err(ControllerError::Timeout(self.settings.proposal_timeout_ms)));
            }
            self.settled(seq);
        }
    }

    /// One of this node's own proposals is applied or given up.
    fn settled(&mut self, seq: u64) {
        if self.duty_in_flight == Some(seq) {
            self.duty_in_flight = None;
        }
        if self.registering == Some(seq) {
            self.registering = None;
        }
        if self.election == Some(seq) {
            self.election = None;
            self.leader_ready = self.leader && self.state.controller == Some(self.settings.me);
            if !self.leader_ready && self.leader {
                // Not committed in time: try again.
                self.elected(self.sessions.leader_since_ms);
            }
        }
    }

    fn elected(&mut self, now_ms: u64) {
        tracing::info!(node = %self.settings.me, term = self.raw.raft.term, "controller: elected leader of the quorum");
        self.sessions = Sessions::new(now_ms);
        self.leader_ready = false;
        let mut records = vec![MetadataRecord::ChangeController { leader: self.settings.me }];
        if self.state.cluster_id.is_none() {
            // Kafka's cluster ids are 16 random bytes in URL-safe base64; a
            // UUID's simple form serves as well.
            records.insert(0, MetadataRecord::SetClusterId { cluster_id: Uuid::new_v4().simple().to_string() });
        }
        self.election = self.propose(records, None, now_ms);
    }

    /// Persists, sends and applies whatever Raft has ready (raft-rs's Ready
    /// contract: entries and hard state are durable before the messages
    /// that depend on them leave).
    pub fn drive(&mut self, now_ms: u64, out: &mut Outbox) -> Result<(), ControllerError> {
        if self.raw.has_ready() {
            let mut ready = self.raw.ready();
            // A leader's messages may leave before its own entries are durable (Raft §10.2.1).
            out.messages.extend(ready.take_messages());
            if !ready.snapshot().is_empty() {
                let snapshot = ready.snapshot().clone();
                self.state = metadata::decode_image(&snapshot.data)?;
                self.applied = snapshot.get_metadata().index;
                self.raw.mut_store().apply_snapshot(snapshot)?;
                self.publish();
            }
            self.apply_entries(ready.take_committed_entries());
            self.raw.mut_store().append(ready.entries())?;
            if let Some(hard_state) = ready.hs() {
                self.raw.mut_store().set_hard_state(hard_state.clone())?;
            }
            out.messages.extend(ready.take_persisted_messages());
            let mut light = self.raw.advance(ready);
            if let Some(commit) = light.commit_index() {
                self.raw.mut_store().set_commit(commit)?;
            }
            out.messages.extend(light.take_messages());
            self.apply_entries(light.take_committed_entries());
            self.raw.advance_apply();
        }
        let leader = self.raw.raft.state == StateRole::Leader;
        if leader != self.leader {
            self.leader = leader;
            if leader {
                self.elected(now_ms);
            } else {
                tracing::info!(node = %self.settings.me, "controller: no longer the quorum leader");
                self.leader_ready = false;
            }
        }
        if self.raw.store().entries_held() > LOG_ENTRIES_MAX {
            let image = metadata::encode_image(&self.state);
            self.raw.mut_store().compact(self.applied, image)?;
            tracing::info!(applied = self.applied, "controller: log compacted into a snapshot");
        }
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let version = self.state.version;
        for entry in entries {
            self.apply_entry(&entry);
        }
        if self.state.version != version {
            self.publish();
        }
    }

    fn publish(&self) {
        self.published.send_replace(Arc::new(self.state.clone()));
    }

    fn apply_entry(&mut self, entry: &Entry) {
        debug_assert!(entry.index > self.applied || self.applied == 0, "entry {} applied twice", entry.index);
        self.applied = entry.index;
        if entry.data.is_empty() || entry.get_entry_type() != EntryType::EntryNormal {
            return;
        }
        let envelope: Envelope = match serde_json::from_slice(&entry.data) {
            Ok(envelope) => envelope,
            Err(e) => {
                // Written by a newer build, or corrupt: skipped alike on every node.
                tracing::error!(index = entry.index, error = %e, bytes = entry.compute_size(), "controller: unreadable entry skipped");
                return;
            }
        };
        let mut refused = None;
        for mut record in envelope.records {
            if let MetadataRecord::RegisterNode { registration } = &mut record {
                registration.epoch = entry.index as i64;
                registration.fenced = true;
            }
            match self.state.check(&record) {
                Ok(()) => self.state.apply(&record),
                Err(e) => {
                    tracing::debug!(index = entry.index, error = %e, "controller: record refused by the state");
                    refused.get_or_insert(e);
                }
            }
        }
        if envelope.proposer != self.settings.registration.incarnation {
            return;
        }
        if let Some(Pending { reply: Some(reply), .. }) = self.pending.remove(&envelope.seq) {
            let _ = reply.send(match refused {
                None => Ok(Arc::new(self.state.clone())),
                Some(e) => Err(ControllerError::Metadata(e)),
            });
        }
        self.settled(envelope.seq);
    }
}

#[cfg(test)]
mod tests;
