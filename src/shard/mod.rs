//! A shard: one core's share of the broker. It hosts its partitions'
//! replicas, its connections and its copy of the metadata snapshot, and runs
//! their background tasks (retention, cleaner, producer expiry, group
//! timers). Shards talk to each other only through bounded
//! control mailboxes, and only for metadata changes and shutdown.

mod cleaner;
mod control;
mod groups;
mod partitions;
mod producer_expiry;
mod producer_ids;
mod replication;
mod retention;
pub mod strays;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

use crate::cluster::{LocalNode, ReplicaPlacement, ShardId};
use crate::config::BrokerConfig;
use crate::metadata::Snapshot;
use crate::model::compression::Decompressor;

pub use control::{Control, ControlError, MetadataOwner};
pub use groups::OffsetRecord;
pub use partitions::Partitions;
pub use producer_ids::LocalProducerIds;

/// Control messages a shard's mailbox holds before senders wait.
pub const MAILBOX_CAPACITY: usize = 1024;

/// Counters a shard keeps for itself (no atomics: only its thread touches them).
#[derive(Default)]
pub struct ShardStats {
    /// Record bytes sent to consumers by splice, never entering user space.
    pub fetch_bytes_spliced: Cell<u64>,
    /// Record bytes sent from the shard's memory (O_DIRECT logs: the hot tail
    /// or a direct read), copied only by the kernel into the socket.
    pub fetch_bytes_from_memory: Cell<u64>,
    pub requests_in_flight: Cell<usize>,
    /// Produce requests, from the whole frame read to the answer written:
    /// the broker's share of a producer's ack latency (Kafka's
    /// RequestMetrics TotalTimeMs), logged at shutdown.
    pub produce_time: RefCell<LatencyHistogram>,
    /// Fetches that failed on storage (not an offset out of range): logged
    /// at most once per interval, since a consumer retries them at once.
    pub fetch_storage_errors: LogEvery,
    /// Refused connections and rejected frames: a hostile client repeats them.
    pub refused_connections: LogEvery,
    pub rejected_frames: LogEvery,
    /// Retention passes that failed on a partition (every check interval
    /// would log the same error again).
    pub retention_errors: LogEvery,
    /// Requests refused for asking more than the broker's bounds allow (a
    /// group id too long to store, a config change to an internal topic…):
    /// logged at most once per interval, since a hostile client repeats them.
    pub refused_requests: LogEvery,
    /// Fetches that answered partitions without records because the shard's
    /// unsent fetch answers already held `fetch_memory_bytes`.
    pub fetch_memory_exhausted: LogEvery,
}

/// Lets one log line through per interval and counts the ones held back.
#[derive(Default)]
pub struct LogEvery {
    last: Cell<Option<std::time::Instant>>,
    held_back: Cell<u64>,
}

impl LogEvery {
    const INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

    /// Some(lines held back since the last one) if this one is to be logged.
    pub fn admit(&self, now: std::time::Instant) -> Option<u64> {
        if self.last.get().is_some_and(|last| now.duration_since(last) < Self::INTERVAL) {
            self.held_back.set(self.held_back.get() + 1);
            return None;
        }
        self.last.set(Some(now));
        Some(self.held_back.replace(0))
    }
}

/// Microseconds, 1 µs to 1 minute, 2 significant digits (a few KiB).
pub struct LatencyHistogram(hdrhistogram::Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram(hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid bounds"))
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, elapsed: std::time::Duration) {
        self.0.saturating_record((elapsed.as_micros() as u64).max(1));
    }

    /// "n=.. p50=..us p99=..us p99.9=..us max=..us", for the shutdown line.
    pub fn summary(&self) -> String {
        let h = &self.0;
        format!(
            "n={} p50={}us p99={}us p99.9={}us max={}us",
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        )
    }
}

/// What every shard is started with.
pub struct Boot {
    pub config: Arc<BrokerConfig>,
    /// This node: its id, and the broker id and port of each shard.
    pub node: LocalNode,
    pub snapshot: Arc<Snapshot>,
    /// The previous run ended with a clean shutdown (less to check on recovery).
    pub clean_shutdown: bool,
    pub mailboxes: Vec<mpsc::Sender<Control>>,
}

pub struct Shard {
    pub id: u16,
    /// The node this shard is part of (a copy per shard: nothing shared).
    pub node: LocalNode,
    pub config: Arc<BrokerConfig>,
    pub mailboxes: Vec<mpsc::Sender<Control>>,
    snapshot: RefCell<Arc<Snapshot>>,
    pub partitions: Partitions,
    /// The rest of the block of producer ids this shard hands out.
    pub producer_ids: LocalProducerIds,
    /// The consumer groups whose offsets partition this shard owns.
    pub groups: RefCell<crate::group::Coordinator>,
    pub stats: ShardStats,
    /// Decompresses produced batches to validate their records, and batches
    /// ListOffsets looks into: one bounded buffer reused by the whole shard.
    pub decompressor: RefCell<Decompressor>,
    /// Shard 0 only: the metadata log it owns, or the controller quorum's handle.
    metadata: Option<MetadataOwner>,
    /// Connections served now, in all and per client address.
    pub connections: Rc<crate::net::limits::ConnectionLimits>,
    /// Set when shutdown starts; listeners stop accepting.
    pub stopping: Cell<bool>,
    pub stop: Notify,
}

fn group_config(config: &BrokerConfig) -> crate::group::GroupConfig {
    crate::group::GroupConfig {
        group_initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
        group_min_session_timeout_ms: config.group_min_session_timeout_ms,
        group_max_session_timeout_ms: config.group_max_session_timeout_ms,
        group_size_max: config.group_max_size,
        ..Default::default()
    }
}

impl Shard {
    pub fn new(id: usize, boot: &Boot, metadata: Option<MetadataOwner>) -> Shard {
        debug_assert_eq!(metadata.is_some(), id == 0, "shard 0 and only shard 0 owns the metadata log");
        Shard {
            id: id as u16,
            node: boot.node.clone(),
            config: boot.config.clone(),
            mailboxes: boot.mailboxes.clone(),
            snapshot: RefCell::new(Arc::new(Snapshot::default())),
            partitions: Partitions::new(&boot.config),
            producer_ids: LocalProducerIds::default(),
            groups: RefCell::new(crate::group::Coordinator::new(group_config(&boot.config))),
            stats: ShardStats::default(),
            decompressor: RefCell::new(Decompressor::new()),
            metadata,
            connections: crate::net::limits::ConnectionLimits::new(
                boot.config.max_connections,
                boot.config.max_connections_per_ip,
                boot.config.open_files_max,
            ),
            stopping: Cell::new(false),
            stop: Notify::new(),
        }
    }

    /// The current metadata. Cheap: an Arc clone of an immutable snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Where this shard is in the cluster: (this node, this shard), one Kafka broker.
    pub fn replica(&self) -> ReplicaPlacement {
        self.node.replica(ShardId(self.id))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::LogEvery;

    #[test]
    fn log_every_lets_one_line_through_per_interval_and_counts_the_rest() {
        let limit = LogEvery::default();
        let t0 = Instant::now();
        assert_eq!(limit.admit(t0), Some(0));
        assert_eq!(limit.admit(t0 + Duration::from_secs(1)), None);
        assert_eq!(limit.admit(t0 + Duration::from_secs(9)), None);
        assert_eq!(limit.admit(t0 + Duration::from_secs(10)), Some(2), "two held back since the last line");
        assert_eq!(limit.admit(t0 + Duration::from_secs(11)), None);
    }
}
