//! The producer ids a shard hands out to InitProducerId: a block at a time
//! from shard 0, which makes each block durable before handing it out
//! (`metadata::ProducerIdBlock`), so no id is ever handed out twice, by two
//! shards or across restarts. One request per block waits for it (a
//! control round trip and shard 0's fsyncs); requests arriving meanwhile
//! wait for the same block rather than ask for more.

use std::cell::Cell;

use tokio::sync::{oneshot, Notify};

use super::{Control, ControlError, LogEvery, Shard};
use crate::metadata::{MetadataError, ProducerIdBlock};

#[derive(Default)]
pub struct LocalProducerIds {
    /// What is left of the block being handed out.
    block: Cell<Option<ProducerIdBlock>>,
    /// A request for the next block is in flight.
    fetching: Cell<bool>,
    fetched: Notify,
    /// A failure repeats for every InitProducerId (the id space exhausted
    /// stays so): one line per interval.
    failures_logged: LogEvery,
}

impl LocalProducerIds {
    fn take(&self) -> Option<i64> {
        let (id, rest) = self.block.get()?.take_first();
        self.block.set(rest);
        Some(id)
    }
}

/// Marks a block request in flight; however it ends (answered, failed, or
/// its request dropped with its connection), the requests waiting for it
/// are woken to look again.
struct Fetching<'a>(&'a LocalProducerIds);

impl<'a> Fetching<'a> {
    fn start(ids: &'a LocalProducerIds) -> Self {
        ids.fetching.set(true);
        Fetching(ids)
    }
}

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        self.0.fetching.set(false);
        self.0.fetched.notify_waiters();
    }
}

impl Shard {
    /// A producer id no shard has handed out before, in this run or any other.
    pub async fn next_producer_id(&self) -> Result<i64, ControlError> {
        let ids = &self.producer_ids;
        loop {
            if let Some(id) = ids.take() {
                return Ok(id);
            }
            if ids.fetching.get() {
                ids.fetched.notified().await;
                continue;
            }
            let _fetching = Fetching::start(ids);
            let block = self.producer_id_block().await.inspect_err(|error| {
                if let Some(held_back) = ids.failures_logged.admit(std::time::Instant::now()) {
                    tracing::error!(shard = self.id, %error, held_back, "cannot allocate producer ids");
                }
            })?;
            tracing::debug!(shard = self.id, first = block.first, end = block.end, "producer id block");
            ids.block.set(Some(block));
        }
    }

    async fn producer_id_block(&self) -> Result<ProducerIdBlock, ControlError> {
        if let Some(block) = self.allocate_producer_ids() {
            return Ok(block?);
        }
        let (reply, answer) = oneshot::channel();
        let request = Control::AllocateProducerIds { reply };
        self.mailboxes[0].send(request).await.map_err(|_| ControlError::ShuttingDown)?;
        answer.await.map_err(|_| ControlError::ShuttingDown)?
    }

    /// Shard 0 of a single node only (None elsewhere): the next block from
    /// the metadata store. (A cluster's blocks come from the controller
    /// quorum, through shard 0's control loop.)
    pub(super) fn allocate_producer_ids(&self) -> Option<Result<ProducerIdBlock, MetadataError>> {
        Some(self.local_store()?.borrow_mut().allocate_producer_ids())
    }
}
