//! The shard's log cleaner task: every log.cleaner.backoff.ms it goes over
//! the compacted logs this shard owns (the offsets topic included) and
//! cleans those that are due, one at a time. It runs beside the request loop
//! on the same thread and yields after every batch (see `storage::cleaner`).

use std::rc::Rc;
use std::time::Duration;

use super::{LogEvery, Shard};
use crate::model::now_ms;
use crate::storage::{CleanSettings, Cleaner};

impl Shard {
    /// Runs until the shard stops; returns at once when log.cleaner.enable is false.
    pub async fn run_cleaner(self: Rc<Self>) {
        if !self.config.log_cleaner_enable {
            return;
        }
        let mut cleaner = Cleaner::new(self.config.log_cleaner_dedupe_buffer_size);
        let unreadable = LogEvery::default();
        let backoff = Duration::from_millis(self.config.log_cleaner_backoff_ms.max(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop.notified() => return,
            }
            if self.stopping.get() {
                return;
            }
            self.clean_compacted_logs(&mut cleaner, &unreadable).await;
        }
    }

    /// `unreadable` limits the lines about batches a round had to keep as
    /// they were: each round of a log meets them again.
    async fn clean_compacted_logs(&self, cleaner: &mut Cleaner, unreadable: &LogEvery) {
        cleaner.forget_dropped_logs();
        for replica in self.partitions.all() {
            let (topic, partition) = (replica.topic(), replica.partition());
            let settings = {
                let config = replica.config();
                if !config.is_compacted() || self.stopping.get() {
                    continue;
                }
                CleanSettings {
                    min_cleanable_dirty_ratio: config.min_cleanable_dirty_ratio,
                    min_compaction_lag_ms: config.min_compaction_lag_ms,
                    max_compaction_lag_ms: config.max_compaction_lag_ms,
                    delete_retention_ms: config.delete_retention_ms,
                }
            };
            match cleaner.clean(replica.log(), &settings, now_ms()).await {
                Ok(None) => {}
                Ok(Some(stats)) => {
                    tracing::info!(
                        shard = self.id,
                        topic,
                        partition,
                        dirty_ratio = stats.dirty_ratio,
                        checkpoint = stats.map_end,
                        segments_rewritten = stats.segments_rewritten,
                        segments_removed = stats.segments_removed,
                        records_removed = stats.records_removed,
                        bytes_before = stats.bytes_before,
                        bytes_after = stats.bytes_after,
                        batches_unreadable = stats.batches_unreadable,
                        "cleaned log"
                    );
                    if stats.batches_unreadable > 0 {
                        if let Some(held_back) = unreadable.admit(std::time::Instant::now()) {
                            tracing::warn!(
                                shard = self.id,
                                topic,
                                partition,
                                batches = stats.batches_unreadable,
                                first = stats.unreadable_reason.as_deref().unwrap_or_default(),
                                held_back,
                                "cleaner kept batches it cannot read as they are"
                            );
                        }
                    }
                }
                Err(e) => tracing::error!(shard = self.id, topic, partition, error = %e, "cleaning log failed"),
            }
        }
    }
}
