//! The shard's retention task: every `log.retention.check.interval.ms` it
//! asks each local log to drop the segments its topic's retention lets go
//! (Kafka's log retention thread, one per core instead of one per broker).
//! Deciding is in memory and quick; the files are unlinked by each log's
//! writer task through io_uring, and the task yields after every partition,
//! so the shard's request loop never waits on it.

use std::rc::Rc;
use std::time::Duration;

use super::Shard;
use crate::config::{BrokerConfig, TopicConfig};
use crate::metadata::TopicMeta;
use crate::model::now_ms;
use crate::storage::RetentionPolicy;

/// What retention deletes for a topic: by time and size only when its
/// cleanup.policy includes `delete` (compacted topics keep their segments).
pub fn retention_policy(topic: &TopicMeta, broker: &BrokerConfig) -> RetentionPolicy {
    let config = TopicConfig::resolve(&topic.configs, broker).unwrap_or_else(|_| TopicConfig::broker_defaults(broker));
    if config.cleanup_policy.split(',').any(|p| p.trim() == "delete") {
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

    /// One pass over the partitions this shard owns.
    async fn enforce_retention(&self) {
        let snapshot = self.snapshot();
        for topic in snapshot.topics.values() {
            let policy = retention_policy(topic, &self.config);
            for partition in 0..topic.partition_count() {
                let here = topic.partition(partition).is_some_and(|a| a.has_replica(self.replica()));
                if !here || self.stopping.get() {
                    continue;
                }
                let Some(log) = self.partitions.get(&topic.name, partition) else { continue };
                match log.delete_old_segments(policy, now_ms()) {
                    Ok(Some(deleted)) => tracing::info!(
                        topic = %topic.name,
                        partition,
                        segments = deleted.segments,
                        bytes = deleted.bytes,
                        log_start_offset = deleted.log_start_offset,
                        "retention deleted old segments"
                    ),
                    Ok(None) => {}
                    Err(error) => {
                        if let Some(held_back) = self.stats.retention_errors.admit(std::time::Instant::now()) {
                            tracing::warn!(topic = %topic.name, partition, %error, similar_not_logged = held_back, "retention failed");
                        }
                    }
                }
                tokio::task::yield_now().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn topic(configs: &[(&str, &str)]) -> TopicMeta {
        TopicMeta {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            partitions: Vec::new(),
            configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn only_delete_policies_expire_by_time_and_size() {
        let broker = BrokerConfig { log_retention_bytes: 500, ..BrokerConfig::default() };
        let deleted = retention_policy(&topic(&[("retention.ms", "1000")]), &broker);
        assert_eq!(deleted, RetentionPolicy { retention_ms: 1000, retention_bytes: 500 });
        let both = retention_policy(&topic(&[("cleanup.policy", "compact,delete")]), &broker);
        assert_eq!(both.retention_ms, broker.log_retention_ms);
        assert_eq!(retention_policy(&topic(&[("cleanup.policy", "compact")]), &broker), RetentionPolicy::KEEP);
    }
}
