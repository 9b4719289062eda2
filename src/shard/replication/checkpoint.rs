//! The shard's high watermark checkpoint task (Kafka's
//! `checkpointHighWatermarks` on the replica manager's schedule): every
//! replica.high.watermark.checkpoint.interval.ms the high watermarks of the
//! shard's replicas are written to its checkpoint (shard/partitions.rs,
//! partition/hw_checkpoint.rs); clean shutdown writes them once more.

use std::rc::Rc;
use std::time::Duration;

use crate::shard::Shard;

impl Shard {
    /// Runs until shutdown.
    pub async fn run_high_watermark_checkpoints(self: Rc<Self>) {
        let interval = Duration::from_millis(self.config.replica_high_watermark_checkpoint_interval_ms);
        while !self.stopping.get() {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.stop.notified() => return,
            }
            self.partitions.checkpoint_high_watermarks();
        }
    }
}
