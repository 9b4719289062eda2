//! The ISR task (Kafka's `maybeShrinkIsr` on its isr-expiration schedule,
//! and `maybeExpandIsr` on follower fetches): every half
//! `replica.lag.time.max.ms`, and whenever a follower fetch finds a
//! follower caught up, each partition this shard leads whose ISR should
//! change proposes the change to the metadata as a `ChangePartition`
//! (partition epoch + 1, same leader and leader epoch). A proposal made on a
//! stale partition epoch is refused and dropped: the snapshot that made it
//! stale is the truth, and the next pass proposes again from it.

use std::rc::Rc;
use std::time::Duration;

use crate::metadata::MetadataRecord;
use crate::model::now_ms;
use crate::shard::Shard;

/// The shortest pause between two passes, whatever wakes the task: a
/// follower that keeps qualifying wakes it on each of its fetches.
const ISR_PASS_INTERVAL_MIN: Duration = Duration::from_millis(50);

impl Shard {
    /// Runs until shutdown.
    pub async fn run_isr_changes(self: Rc<Self>) {
        let lag_ms = self.config.replica_lag_time_max_ms;
        let tick = Duration::from_millis((lag_ms / 2).max(1)).max(ISR_PASS_INTERVAL_MIN);
        while !self.stopping.get() {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = self.partitions.isr_changes_wanted() => {}
                _ = self.stop.notified() => return,
            }
            self.propose_isr_changes(lag_ms).await;
            tokio::time::sleep(ISR_PASS_INTERVAL_MIN).await;
        }
    }

    /// One pass over the partitions this shard leads.
    async fn propose_isr_changes(&self, lag_ms: u64) {
        let snapshot = self.snapshot();
        for replica in self.partitions.all() {
            let Some(assignment) = replica.proposed_isr(now_ms(), lag_ms, &snapshot.nodes) else { continue };
            let (topic, partition) = (replica.topic().to_string(), replica.partition());
            let isr: Vec<i32> = assignment.isr.iter().map(|r| r.broker_id()).collect();
            let record = MetadataRecord::ChangePartition { name: topic.clone(), partition, assignment };
            match self.change_metadata(record).await {
                Ok(()) => tracing::info!(topic, partition, ?isr, "ISR changed"),
                Err(error) => {
                    tracing::info!(topic, partition, ?isr, %error, "ISR change refused; the next snapshot decides")
                }
            }
        }
    }
}
