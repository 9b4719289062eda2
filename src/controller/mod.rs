//! The controller quorum (Kafka's KRaft in combined mode: every node is a
//! voter and a broker). The cluster's metadata is a Raft log replicated by
//! raft-rs over the voters of `controller.quorum.voters`; each node applies
//! the committed `MetadataRecord`s to its `Snapshot` and hands every new
//! snapshot to its shards, as the single node's metadata store does.
//!
//! One std thread per node drives the Raft state machine (`node`): it ticks
//! every 100 ms, persists entries and hard state (`storage`) before sending
//! what depends on them, and talks to the other voters over TCP
//! (`transport`). It is off the data path: shards reach it only for
//! metadata changes, through [`ControllerHandle`]. The leader also does
//! KRaft's membership duties (`duties`): registration, heartbeats, fencing,
//! partition leader elections from the ISR, preferred leader rebalance.

mod duties;
mod log;
mod node;
mod reassignment;
mod storage;
mod transport;

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{oneshot, watch};

use crate::cluster::{NodeId, NodeRegistration, Voter};
use crate::metadata::{MetadataError, MetadataRecord, Snapshot};

pub use duties::DutySettings;
pub use node::InternalTopic;

use duties::Heartbeat;
use node::{ControllerNode, NodeSettings, Outbox, Reply, TICK_MS};

/// Events the controller thread's queue holds before senders are refused.
const EVENTS_MAX: usize = 4_096;
/// How long a change waits to be committed before it is answered
/// REQUEST_TIMED_OUT (Kafka's request.timeout.ms default is 30 s; the
/// AdminClient retries sooner than that itself).
pub const PROPOSAL_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Error)]
pub enum ControllerError {
    #[error("controller storage: {context}: {source}")]
    Storage { context: String, source: std::io::Error },
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// No quorum leader is known: an election is going on, or there is no quorum.
    #[error("no controller quorum leader is known (an election is in progress or a quorum is missing)")]
    NotController,
    #[error("the change was not committed within {0} ms (is a quorum of controllers up?)")]
    Timeout(u64),
    #[error("the controller's queue is full")]
    Busy,
    #[error("the controller has stopped")]
    Stopped,
    #[error("controller listener on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}

/// What the controller thread is told.
pub enum Event {
    Raft(raft::prelude::Message),
    Heartbeat(Heartbeat),
    Propose {
        records: Vec<MetadataRecord>,
        reply: Reply,
    },
    Unreachable(NodeId),
    /// This process is stopping: ask the leader for a controlled shutdown.
    BeginShutdown,
    Stop,
}

/// How a controlled shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlledShutdown {
    /// The quorum fenced this node: it leads nothing and is in no ISR it
    /// could leave.
    Done,
    /// No other node is unfenced: nobody could take a partition over.
    Alone,
    /// The quorum did not answer within the bound (it has no majority).
    TimedOut,
}

/// How one node's controller starts.
pub struct ControllerConfig {
    /// `<data_dir>/controller`.
    pub dir: PathBuf,
    pub me: NodeId,
    pub voters: Vec<Voter>,
    /// This process's registration: a new incarnation, its addresses.
    pub registration: NodeRegistration,
    pub duties: DutySettings,
    pub heartbeat_interval_ms: u64,
    pub internal_topic: Option<InternalTopic>,
}

/// The shards' way to the controller: proposals, and every committed
/// snapshot. Cheap to clone; any thread may hold one.
#[derive(Clone)]
pub struct ControllerHandle {
    events: SyncSender<Event>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    me: NodeId,
    incarnation: uuid::Uuid,
}

impl ControllerHandle {
    /// Proposes `records` as one entry; answered with the state once it is
    /// committed and applied on this node.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<Arc<Snapshot>, ControllerError> {
        let (reply, answer) = oneshot::channel();
        match self.events.try_send(Event::Propose { records, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ControllerError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(ControllerError::Stopped),
        }
        answer.await.map_err(|_| ControllerError::Stopped)?
    }

    /// Every committed state, newest first.
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    /// Blocks until this process's registration is committed and unfenced
    /// (a node serves clients only then), logging while it waits.
    pub fn wait_until_serving(&self) -> Arc<Snapshot> {
        let started = Instant::now();
        let mut logged = Instant::now();
        loop {
            let snapshot = self.snapshots.borrow().clone();
            let mine = snapshot.nodes.get(&self.me).filter(|n| n.incarnation == self.incarnation);
            if mine.is_some_and(|n| !n.fenced) {
                return snapshot;
            }
            if logged.elapsed() >= Duration::from_secs(5) {
                logged = Instant::now();
                tracing::info!(
                    waited_s = started.elapsed().as_secs(),
                    registered = mine.is_some(),
                    "waiting for the controller quorum to register and unfence this node"
                );
            }
            std::thread::sleep(Duration::from_millis(TICK_MS));
        }
    }

    /// Controlled shutdown (KRaft's BrokerLifecycleManager: heartbeats with
    /// wantShutDown until the controller fences the node): asks the leader
    /// to fence this node and move every partition it leads to an in-sync
    /// replica, and blocks until the committed state shows it done, or for
    /// at most `bound_ms`. The node keeps serving meanwhile, so requests in
    /// flight to its leaders finish or are redirected.
    pub fn shut_down_controlled(&self, bound_ms: u64) -> ControlledShutdown {
        let others_unfenced = self.snapshots.borrow().unfenced_nodes().any(|n| n.id != self.me);
        if !others_unfenced {
            return ControlledShutdown::Alone;
        }
        if self.events.try_send(Event::BeginShutdown).is_err() {
            return ControlledShutdown::TimedOut;
        }
        let deadline = Instant::now() + Duration::from_millis(bound_ms);
        let mut fenced_at = None;
        loop {
            let (fenced, controls) = {
                let snapshot = self.snapshots.borrow();
                let mine = snapshot.nodes.get(&self.me).filter(|n| n.incarnation == self.incarnation);
                (mine.is_none_or(|n| n.fenced), snapshot.controller == Some(self.me))
            };
            let now = Instant::now();
            if fenced {
                // A quorum leader also hands its leadership over (node.rs):
                // waited for a little, as it is not needed for safety.
                let since = *fenced_at.get_or_insert(now);
                if !controls || now.duration_since(since) >= Duration::from_millis(LEADERSHIP_HANDOVER_MS_MAX) {
                    return ControlledShutdown::Done;
                }
            }
            if now >= deadline {
                return ControlledShutdown::TimedOut;
            }
            std::thread::sleep(Duration::from_millis(TICK_MS / 4));
        }
    }

    pub fn stop(&self) {
        let _ = self.events.try_send(Event::Stop);
    }
}

/// Opens the Raft storage, binds the controller listener and starts the
/// controller thread.
pub fn start(config: ControllerConfig) -> Result<(ControllerHandle, std::thread::JoinHandle<()>), ControllerError> {
    let raft_ids: Vec<u64> = config.voters.iter().map(|v| node::raft_id(v.id)).collect();
    let storage = storage::DurableStorage::open(&config.dir, &raft_ids)?;
    let me = config.voters.iter().find(|v| v.id == config.me).expect("the configuration checked this node is a voter");
    let (events, inbox) = mpsc::sync_channel(EVENTS_MAX);
    let transport = transport::Transport::start(me, &config.voters, events.clone())
        .map_err(|source| ControllerError::Listen { addr: me.addr(), source })?;
    let (published, snapshots) = watch::channel(Arc::new(Snapshot::default()));
    let incarnation = config.registration.incarnation;
    let settings = NodeSettings {
        me: config.me,
        voters: config.voters.iter().map(|v| v.id).collect(),
        registration: config.registration,
        duties: config.duties,
        heartbeat_interval_ms: config.heartbeat_interval_ms,
        proposal_timeout_ms: PROPOSAL_TIMEOUT_MS,
        internal_topic: config.internal_topic,
    };
    let node = ControllerNode::new(storage, settings, published)?;
    let thread = std::thread::Builder::new()
        .name("controller".into())
        .spawn(move || run(node, inbox, transport))
        .map_err(|source| ControllerError::Storage { context: "start the controller thread".into(), source })?;
    Ok((ControllerHandle { events, snapshots, me: config.me, incarnation }, thread))
}

/// How long a stopping quorum leader waits, once fenced, for a voter to
/// take its leadership over: two election timeouts (raft-rs gives up a
/// transfer after one, and it is asked again).
const LEADERSHIP_HANDOVER_MS_MAX: u64 = 2 * node::ELECTION_TICKS as u64 * TICK_MS;

/// Panics of the Raft state logged in full at most this often; the others
/// are counted (a peer that keeps sending what trips raft-rs must not flood
/// the log).
const RESTART_LOG_INTERVAL_MS: u64 = 10_000;

/// What one turn of the controller loop ends with.
enum Turn {
    Go,
    Stop,
}

fn run(mut node: ControllerNode, inbox: Receiver<Event>, transport: transport::Transport) {
    let clock = Instant::now();
    let now_ms = || clock.elapsed().as_millis() as u64;
    let mut next_tick_ms = TICK_MS;
    let mut out = Outbox::default();
    let mut restarts = Restarts::default();
    loop {
        let wait = next_tick_ms.saturating_sub(now_ms());
        let first = match inbox.recv_timeout(Duration::from_millis(wait)) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Everything queued is stepped before the next Ready: one fsync for all.
        let events: Vec<Event> = first.into_iter().chain(std::iter::from_fn(|| inbox.try_recv().ok())).collect();
        // A panic inside raft-rs (a peer's crafted message can trip its
        // assertions) must not take the node's metadata down with the thread.
        let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            turn(&mut node, events, &mut next_tick_ms, now_ms, &mut out)
        }));
        let failure = match turn {
            Ok(Ok(Turn::Go)) => None,
            Ok(Ok(Turn::Stop)) => return,
            Err(_) => Some("a panic".to_string()),
            Ok(Err(ControllerError::Storage { context, source })) => {
                // The Raft state can no longer be made durable: this node stops
                // taking part rather than vote or acknowledge what it may lose.
                tracing::error!(context, error = %source, "controller storage failed: this node leaves the quorum");
                return;
            }
            // Anything else a peer's message led to (a snapshot whose image
            // does not decode): the state is rebuilt from disk as after a panic.
            Ok(Err(e)) => Some(e.to_string()),
        };
        if let Some(why) = failure {
            out.messages.clear();
            out.heartbeats.clear();
            restarts.log(&why, now_ms());
            node = match node.restarted() {
                Ok(node) => node,
                Err(e) => {
                    tracing::error!(error = %e, "controller: cannot reopen the Raft state: this node leaves the quorum");
                    return;
                }
            };
            continue;
        }
        for message in out.messages.drain(..) {
            if let Some(to) = node::node_of(message.to) {
                transport.send(to, transport::raft_frame(&message));
            }
        }
        for (to, heartbeat) in out.heartbeats.drain(..) {
            transport.send(to, transport::heartbeat_frame(&heartbeat));
        }
    }
}

/// One turn: the events, the tick if it is due, and whatever Raft has ready.
fn turn(
    node: &mut ControllerNode,
    events: Vec<Event>,
    next_tick_ms: &mut u64,
    now_ms: impl Fn() -> u64,
    out: &mut Outbox,
) -> Result<Turn, ControllerError> {
    for event in events {
        match event {
            Event::Raft(message) => node.step(message),
            Event::Heartbeat(heartbeat) => node.heartbeat(heartbeat, now_ms()),
            Event::Propose { records, reply } => {
                node.propose(records, Some(reply), now_ms());
            }
            Event::Unreachable(peer) => node.report_unreachable(peer),
            Event::BeginShutdown => node.begin_shutdown(),
            Event::Stop => {
                tracing::info!("controller stopped");
                return Ok(Turn::Stop);
            }
        }
    }
    let now = now_ms();
    if now >= *next_tick_ms {
        node.tick(now, out);
        // After a stall (a slow fsync), the ticks missed are not replayed in a burst.
        *next_tick_ms = (*next_tick_ms + TICK_MS).max(now + 1);
    }
    node.drive(now, out)?;
    Ok(Turn::Go)
}

/// Restarts of the Raft state, and when one was last logged.
#[derive(Default)]
struct Restarts {
    logged_ms: Option<u64>,
    unlogged: u64,
}

impl Restarts {
    fn log(&mut self, why: &str, now_ms: u64) {
        if self.logged_ms.is_some_and(|at| now_ms.saturating_sub(at) < RESTART_LOG_INTERVAL_MS) {
            self.unlogged += 1;
            return;
        }
        tracing::error!(
            why,
            restarts_not_logged = self.unlogged,
            "controller: the Raft state failed on a peer's message; rebuilt from durable storage"
        );
        self.logged_ms = Some(now_ms);
        self.unlogged = 0;
    }
}

#[cfg(test)]
mod tests;
