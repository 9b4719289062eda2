//! The shard's retention task: every `log.retention.check.interval.ms` it
//! asks each local replica's log to drop the segments its topic's retention lets go
//! (Kafka's log retention thread, one per core instead of one per broker).
//! Deciding is in memory and quick; the files are unlinked by each log's
//! writer task through io_uring, and the task yields after every partition,
//! so the shard's request loop never waits on it.

use std::rc::Rc;
use std::time::Duration;

use super::Shard;
use crate::config::TopicConfig;
use crate::model::now_ms;
use crate::storage::RetentionPolicy;

/// What retention deletes for a topic: by time and size only when its
/// cleanup.policy includes `delete` (compacted topics keep their segments).
fn retention_policy(config: &TopicConfig) -> RetentionPolicy {
    if config.cleanup_policy.deletes() {
        RetentionPolicy { retention_ms: config.retention_ms, retention_bytes: config.retention_bytes }
    } else {
        RetentionPolicy::KEEP
    }
}

impl Shard {
    pub async fn run_retention(self: Rc<Self>) {
        let interval = Duration::from_millis(self.config.log_retention_check_interval_ms.max(1));
        while !self.stopping.get() {
            tokio::select! {
                _ = tokio::time::sleep(interval) => self.enforce_retention().await,
                _ = self.stop.notified() => return,
            }
        }
    }

    /// One pass over the replicas this shard hosts.
    async fn enforce_retention(&self) {
        for replica in self.partitions.all() {
            if self.stopping.get() {
                return;
            }
            let (topic, partition) = (replica.topic(), replica.partition());
            let policy = retention_policy(&replica.config());
            match replica.log().delete_old_segments(policy, now_ms()) {
                Ok(Some(deleted)) => tracing::info!(
                    topic,
                    partition,
                    segments = deleted.segments,
                    bytes = deleted.bytes,
                    log_start_offset = deleted.log_start_offset,
                    "retention deleted old segments"
                ),
                Ok(None) => {}
                Err(error) => {
                    if let Some(held_back) = self.stats.retention_errors.admit(std::time::Instant::now()) {
                        tracing::warn!(topic, partition, %error, similar_not_logged = held_back, "retention failed");
                    }
                }
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::BrokerConfig;

    fn topic(configs: &[(&str, &str)]) -> TopicConfig {
        let overrides = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        TopicConfig::resolve(&overrides, &BrokerConfig { log_retention_bytes: 500, ..BrokerConfig::default() }).unwrap()
    }

    #[test]
    fn only_delete_policies_expire_by_time_and_size() {
        let deleted = retention_policy(&topic(&[("retention.ms", "1000")]));
        assert_eq!(deleted, RetentionPolicy { retention_ms: 1000, retention_bytes: 500 });
        let both = retention_policy(&topic(&[("cleanup.policy", "compact,delete")]));
        assert_eq!(both.retention_ms, BrokerConfig::default().log_retention_ms);
        assert_eq!(retention_policy(&topic(&[("cleanup.policy", "compact")])), RetentionPolicy::KEEP);
    }
}
