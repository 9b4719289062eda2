//! The control plane between shards: metadata changes go to shard 0, which
//! persists them (a single node's metadata log) or has the controller
//! quorum commit them (a cluster), and broadcasts the new snapshot to every
//! shard; a change is answered only once every shard has applied it. In a
//! cluster, shard 0 also follows the quorum: every state committed (by any
//! node) reaches every shard the same way. Never on the data path.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use super::groups::offsets_leadership_changes;
use super::Shard;
use crate::controller::{ControllerError, ControllerHandle};
use crate::metadata::{
    MetadataError, MetadataRecord, MetadataStore, ProducerIdBlock, Snapshot, PRODUCER_ID_BLOCK_SIZE,
};
use crate::partition::Replica;

/// Tries at a producer id block before giving up: each try loses only to
/// another node's allocation committed first.
const PRODUCER_ID_BLOCK_TRIES: usize = 8;

/// Where shard 0 takes metadata changes.
pub enum MetadataOwner {
    /// A single node: its own metadata log.
    Local(RefCell<MetadataStore>),
    /// A cluster: the controller quorum.
    Quorum(ControllerHandle),
}

/// Replicas whose producer tables are rebuilt at once.
const PRODUCER_REBUILD_CONCURRENCY: usize = 8;

pub enum Control {
    /// To shard 0: persist and apply one metadata change.
    Change { record: MetadataRecord, reply: oneshot::Sender<Result<(), ControlError>> },
    /// To shard 0: the next block of producer ids, durable before it is answered.
    AllocateProducerIds { reply: oneshot::Sender<Result<ProducerIdBlock, ControlError>> },
    /// To every shard: adopt this snapshot (open or remove logs).
    Apply { snapshot: Arc<Snapshot>, reply: oneshot::Sender<()> },
    /// To every shard: finish in-flight requests, close logs, stop.
    Shutdown { reply: oneshot::Sender<()> },
}

#[derive(Debug, Error)]
pub enum ControlError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error("the broker is shutting down")]
    ShuttingDown,
}

impl Shard {
    /// Runs a metadata change through shard 0 and returns once all shards
    /// have applied it.
    pub async fn change_metadata(&self, record: MetadataRecord) -> Result<(), ControlError> {
        let (reply, answer) = oneshot::channel();
        self.mailboxes[0].send(Control::Change { record, reply }).await.map_err(|_| ControlError::ShuttingDown)?;
        answer.await.map_err(|_| ControlError::ShuttingDown)?
    }

    /// Adopts the snapshot the broker starts with and opens the local logs.
    pub async fn start(&self, snapshot: Arc<Snapshot>, clean_shutdown: bool) {
        let reopened = self.partitions.sync(self.replica(), &snapshot, &self.config, clean_shutdown).await;
        self.restore_producers(reopened).await;
        *self.snapshot.borrow_mut() = snapshot;
    }

    /// Rebuilds the idempotent producer tables of replicas opened from
    /// disk (see `Replica::restore_producers`). Before any request is served:
    /// the listener starts after `start`.
    async fn restore_producers(&self, reopened: Vec<Rc<Replica>>) {
        let mut reopened = reopened.into_iter().peekable();
        while reopened.peek().is_some() {
            // A few logs at a time: their reads overlap, their buffers do not pile up.
            let reads: Vec<_> = reopened
                .by_ref()
                .take(PRODUCER_REBUILD_CONCURRENCY)
                .map(|replica| crate::runtime::spawn(async move { replica.restore_producers().await }))
                .collect();
            for read in reads {
                // A read that panicked was reported by the panic hook.
                let _ = read.await;
            }
        }
    }

    pub async fn run_control(self: Rc<Self>, mut mailbox: mpsc::Receiver<Control>) {
        while let Some(message) = mailbox.recv().await {
            match message {
                Control::Change { record, reply } => {
                    let _ = reply.send(self.persist_and_broadcast(record).await);
                }
                Control::AllocateProducerIds { reply } => {
                    let block = match self.allocate_producer_ids() {
                        Some(local) => local.map_err(ControlError::from),
                        None => self.allocate_producer_ids_from_quorum().await,
                    };
                    let _ = reply.send(block);
                }
                Control::Apply { snapshot, reply } => {
                    // A snapshot already applied locally (shard 0 applies its own first) is skipped.
                    if snapshot.version > self.snapshot.borrow().version {
                        self.adopt(snapshot).await;
                    }
                    let _ = reply.send(());
                }
                Control::Shutdown { reply } => {
                    self.shut_down().await;
                    let _ = reply.send(());
                    return;
                }
            }
        }
    }

    /// Opens and removes local logs to match `snapshot`, then drops the
    /// committed offsets of topics that are gone.
    async fn adopt(&self, snapshot: Arc<Snapshot>) {
        let gone: Vec<String> = {
            let old = self.snapshot.borrow();
            old.topics
                .values()
                .filter(|t| snapshot.topic(&t.name).is_none_or(|n| n.id != t.id))
                .map(|t| t.name.clone())
                .collect()
        };
        let here = self.replica();
        let (elected, resigned) = offsets_leadership_changes(&self.snapshot.borrow(), &snapshot, here);
        let reopened = self.partitions.sync(here, &snapshot, &self.config, true).await;
        self.restore_producers(reopened).await;
        *self.snapshot.borrow_mut() = snapshot;
        // With the snapshot, before any await: no request sees the new
        // leadership with the old groups (Kafka's onResignation / onElection).
        for &partition in &resigned {
            self.unload_groups_of(partition);
        }
        for &partition in &elected {
            self.groups.borrow_mut().begin_loading(partition);
        }
        for partition in elected {
            self.load_groups_of(partition).await;
        }
        for topic in gone {
            self.forget_topic_offsets(&topic).await;
        }
    }

    /// Shard 0 of a single node: its metadata log.
    pub(super) fn local_store(&self) -> Option<&RefCell<MetadataStore>> {
        match self.metadata.as_ref()? {
            MetadataOwner::Local(store) => Some(store),
            MetadataOwner::Quorum(_) => None,
        }
    }

    async fn persist_and_broadcast(&self, record: MetadataRecord) -> Result<(), ControlError> {
        let owner = self.metadata.as_ref().expect("metadata changes are sent to shard 0 only");
        // Every partition holds descriptors and a writer task: checked here,
        // where all changes are made one at a time, so no two creations can
        // pass it together.
        let (held, asked, max) =
            (self.snapshot().partitions_held(), record.added_partitions(), self.config.partitions_max());
        if asked > 0 && held + asked > max {
            return Err(MetadataError::TooManyPartitions { held, asked, max }.into());
        }
        let snapshot = match owner {
            MetadataOwner::Local(store) => Arc::new(store.borrow_mut().append(record)?.clone()),
            // Committed by the quorum and applied by this node's controller;
            // a copy for this core.
            MetadataOwner::Quorum(controller) => Arc::new(Snapshot::clone(&*controller.propose(vec![record]).await?)),
        };
        self.broadcast(snapshot).await;
        Ok(())
    }

    /// A producer id block from the controller quorum: the next free block
    /// as this node knows it, retried when another node's came first.
    async fn allocate_producer_ids_from_quorum(&self) -> Result<ProducerIdBlock, ControlError> {
        let Some(MetadataOwner::Quorum(controller)) = self.metadata.as_ref() else {
            unreachable!("a single node's shard 0 allocates from its store");
        };
        let mut next = controller.snapshots().borrow().producer_id_next;
        for _ in 0..PRODUCER_ID_BLOCK_TRIES {
            let record = MetadataRecord::AllocateProducerIds { node: self.node.id(), first: next };
            match controller.propose(vec![record]).await {
                Ok(_) => return Ok(ProducerIdBlock { first: next, end: next + PRODUCER_ID_BLOCK_SIZE }),
                Err(ControllerError::Metadata(MetadataError::StaleProducerIdBlock { next: current, .. })) => {
                    next = current;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(MetadataError::StaleProducerIdBlock { got: next, next }.into())
    }

    /// Shard 0 of a cluster: every state the quorum commits, whoever
    /// proposed it, goes to every shard (each skips one it already has).
    pub async fn follow_quorum(self: Rc<Self>) {
        let Some(MetadataOwner::Quorum(controller)) = self.metadata.as_ref() else { return };
        let mut committed = controller.snapshots();
        while committed.changed().await.is_ok() {
            let snapshot = committed.borrow_and_update().clone();
            for mailbox in &self.mailboxes {
                let (reply, applied) = oneshot::channel();
                let copy = Arc::new(Snapshot::clone(&snapshot));
                if mailbox.send(Control::Apply { snapshot: copy, reply }).await.is_ok() {
                    let _ = applied.await;
                }
            }
        }
    }

    /// Applies `snapshot` here, then on every other shard, waiting for each.
    async fn broadcast(&self, snapshot: Arc<Snapshot>) {
        // Apply locally first (the mailbox loop is busy running this very call).
        self.adopt(snapshot.clone()).await;
        for mailbox in &self.mailboxes[1..] {
            let (reply, applied) = oneshot::channel();
            // Each shard gets its own copy: every request clones the Arc, and a
            // reference count shared by all cores would bounce between them.
            let copy = Arc::new(Snapshot::clone(&snapshot));
            if mailbox.send(Control::Apply { snapshot: copy, reply }).await.is_ok() {
                let _ = applied.await;
            }
        }
    }

    async fn shut_down(&self) {
        self.stopping.set(true);
        self.stop.notify_waiters();
        // Requests already being served get their answers (bounded wait).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.stats.requests_in_flight.get() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        self.partitions.close_all().await;
        tracing::info!(
            shard = self.id,
            "shard stopped: fetch_bytes_spliced={} fetch_bytes_from_memory={}",
            self.stats.fetch_bytes_spliced.get(),
            self.stats.fetch_bytes_from_memory.get()
        );
        tracing::info!(shard = self.id, "produce request time: {}", self.stats.produce_time.borrow().summary());
    }
}
