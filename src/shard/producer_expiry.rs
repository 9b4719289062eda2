//! The shard's producer expiry task: Kafka's producer id expiration, over
//! the producer tables of every replica the shard hosts.

use std::rc::Rc;
use std::time::Duration;

use super::Shard;
use crate::partition::PRODUCER_EXPIRY_CHECK_INTERVAL;

impl Shard {
    /// Expires idle idempotent producers until the shard stops.
    pub async fn run_producer_expiry(self: Rc<Self>) {
        let expiration_ms = self.config.producer_id_expiration_ms;
        let interval = PRODUCER_EXPIRY_CHECK_INTERVAL.min(Duration::from_millis(expiration_ms.max(1) as u64));
        let producers = &self.partitions.producers;
        while !self.stopping.get() {
            tokio::time::sleep(interval).await;
            let expired = producers.expire(crate::model::now_ms(), expiration_ms);
            if expired > 0 {
                tracing::info!(
                    shard = self.id,
                    expired,
                    remembered = producers.remembered(),
                    "idle idempotent producers forgotten"
                );
            }
        }
    }
}
