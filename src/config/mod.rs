//! Broker configuration (Kafka's names, Kafka's defaults); per-topic
//! configuration resolved against the broker's defaults is in `topic`.

mod topic;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

use crate::cluster::{check_identity, parse_voters, IdentityError, NodeId, Voter, VotersError};

/// Kafka's `message.max.bytes` default: 1 MiB plus record batch overhead.
pub const MESSAGE_MAX_BYTES_DEFAULT: u32 = 1_048_588;
/// Kafka's `socket.request.max.bytes` default: 100 MiB.
pub const SOCKET_REQUEST_MAX_BYTES_DEFAULT: u32 = 104_857_600;
/// Kafka's `fetch.max.bytes` default: 55 MiB.
pub const FETCH_MAX_BYTES_DEFAULT: u32 = 57_671_680;
/// Kafka's `fetch.max.bytes` minimum.
const FETCH_MAX_BYTES_MIN: u32 = 1024;
/// A Fetch answer's size is an i32: its records (fetch.max.bytes) and the
/// header of every partition a request of socket.request.max.bytes can name
/// must fit in it together.
const FETCH_MAX_BYTES_MAX: u32 = 1 << 30;
/// Per shard: what unsent fetch answers may hold, four answers of
/// fetch.max.bytes and some. A client that does not read its socket keeps
/// its answer's memory as long as its connection lasts.
pub const FETCH_MEMORY_BYTES_DEFAULT: usize = 256 << 20;
const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;
const SEGMENT_MS_DEFAULT: i64 = 7 * 24 * 3600 * 1000;
const RETENTION_MS_DEFAULT: i64 = 7 * 24 * 3600 * 1000;
/// Most partitions one topic may have. Kafka sets no limit, but each
/// partition holds open files and a writer task on its shard: a request for
/// two billion would wedge the shards opening them.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
/// The smallest segment.bytes the log format allows (Kafka 3's floor): what
/// persisted configs are held to, so a topic created before the floor below
/// was raised still opens.
const SEGMENT_BYTES_FORMAT_MIN: u64 = 14;
/// The smallest segment.bytes a new or altered topic may ask for (Kafka 4's
/// floor, KIP-1030). Every segment holds two descriptors (page cache and
/// O_DIRECT) and every roll costs an fsync: a client setting 14 bytes made
/// every produce roll and ran the broker out of descriptors. Tests lower it
/// with `log_segment_bytes_min`, as Kafka's tests use internal.segment.bytes.
pub const SEGMENT_BYTES_MIN_DEFAULT: u64 = 1 << 20;
/// Kafka 4's `log.message.timestamp.after.max.ms` (KIP-1030): 1 hour. A
/// batch stamped far in the future would keep its segment from time
/// retention until that time comes.
const TIMESTAMP_AFTER_MAX_MS_DEFAULT: i64 = 3_600_000;
/// Kafka's `connections.max.idle.ms`: 10 minutes.
const CONNECTIONS_MAX_IDLE_MS_DEFAULT: u64 = 600_000;
/// Kafka's `producer.id.expiration.ms` default: one day.
pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: i64 = 24 * 3600 * 1000;
/// Kafka's `broker.session.timeout.ms`: a node whose heartbeats stop this
/// long is fenced and its partitions get new leaders.
const BROKER_SESSION_TIMEOUT_MS_DEFAULT: u64 = 9_000;
/// Kafka's `broker.heartbeat.interval.ms`.
const BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 2_000;
/// Kafka's `replica.lag.time.max.ms`: a follower that has not caught up
/// with the leader's log end for this long leaves the ISR.
const REPLICA_LAG_TIME_MAX_MS_DEFAULT: u64 = 30_000;
/// Kafka's `replica.fetch.max.bytes`: a follower fetch's bytes per partition.
const REPLICA_FETCH_MAX_BYTES_DEFAULT: u32 = 1 << 20;
/// Kafka's `replica.fetch.response.max.bytes`: a follower fetch's bytes in all.
const REPLICA_FETCH_RESPONSE_MAX_BYTES_DEFAULT: u32 = 10 << 20;
/// Kafka's `replica.fetch.wait.max.ms`: how long the leader holds a follower
/// fetch that has nothing new.
const REPLICA_FETCH_WAIT_MAX_MS_DEFAULT: u32 = 500;
/// Kafka's `replica.fetch.min.bytes`.
const REPLICA_FETCH_MIN_BYTES_DEFAULT: u32 = 1;
/// Kafka's `replica.fetch.backoff.ms`: a follower's pause after a failed fetch.
const REPLICA_FETCH_BACKOFF_MS_DEFAULT: u64 = 1_000;
/// Kafka's `replica.high.watermark.checkpoint.interval.ms`.
const REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// Kafka's `leader.imbalance.check.interval.seconds`: how often the
/// controller moves leadership back to preferred replicas.
const LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_DEFAULT: u64 = 300;
/// Kafka's `leader.imbalance.per.broker.percentage`: a node's share of the
/// partitions preferring it but led elsewhere that triggers the move.
const LEADER_IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT: u32 = 10;
/// Kafka's `offsets.topic.replication.factor` (capped at the live nodes).
const OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT: i16 = 3;
/// Kafka's `log.cleaner.delete.retention.ms` (delete.retention.ms): 1 day.
const DELETE_RETENTION_MS_DEFAULT: i64 = 24 * 3600 * 1000;
/// Per shard, unlike Kafka's 128 MiB shared by its cleaner threads: every
/// shard cleans its own partitions with its own key map (see
/// `storage::cleaner::OffsetMap` for the bytes one key costs).
const CLEANER_DEDUPE_BUFFER_BYTES_DEFAULT: u64 = 16 << 20;

/// Everything the broker is started with. Field names are Kafka's broker
/// config names with `_` for `.`; the TOML file uses the same names.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// node.id: this node of the cluster (0 for a single node). Its shards
    /// are Kafka brokers node.id × 1000 + shard (see `cluster`).
    pub node_id: NodeId,
    /// controller.quorum.voters: `id@host:port,...`, every node of the
    /// cluster (each is a voter of the Raft quorum that keeps the metadata,
    /// and a broker). Empty: a single node, as before clusters existed.
    pub controller_quorum_voters: String,
    /// broker.session.timeout.ms: a node silent this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// broker.heartbeat.interval.ms: how often a node tells the controller it lives.
    pub broker_heartbeat_interval_ms: u64,
    /// replica.lag.time.max.ms: a follower behind the leader's log end this
    /// long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// replica.fetch.max.bytes: most record bytes a follower fetch asks per
    /// partition (the leader still sends one whole batch if larger).
    pub replica_fetch_max_bytes: u32,
    /// replica.fetch.response.max.bytes: most record bytes a follower fetch asks in all.
    pub replica_fetch_response_max_bytes: u32,
    /// replica.fetch.wait.max.ms: the follower fetch's max wait (below
    /// replica.lag.time.max.ms, or followers would drop out of the ISR idle).
    pub replica_fetch_wait_max_ms: u32,
    /// replica.fetch.min.bytes: the follower fetch's min bytes.
    pub replica_fetch_min_bytes: u32,
    /// replica.fetch.backoff.ms: a follower's pause after a failed fetch.
    pub replica_fetch_backoff_ms: u64,
    /// replica.high.watermark.checkpoint.interval.ms: how often each data
    /// directory's replication-offset-checkpoint is written.
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    /// default.replication.factor: replicas of auto-created topics and of
    /// CreateTopics asking for -1.
    pub default_replication_factor: i16,
    /// min.insync.replicas: the topic default; acks=all is refused below it.
    pub min_insync_replicas: i32,
    /// offsets.topic.replication.factor: replicas of `__consumer_offsets`,
    /// capped at the nodes registered when it is created.
    pub offsets_topic_replication_factor: i16,
    /// unclean.leader.election.enable: elect a replica out of the ISR when
    /// no in-sync one is left (losing what only the ISR had). Off, as Kafka.
    pub unclean_leader_election_enable: bool,
    /// auto.leader.rebalance.enable: move leadership back to each
    /// partition's preferred replica once it is in sync again.
    pub auto_leader_rebalance_enable: bool,
    /// leader.imbalance.check.interval.seconds.
    pub leader_imbalance_check_interval_seconds: u64,
    /// leader.imbalance.per.broker.percentage.
    pub leader_imbalance_per_broker_percentage: u32,
    pub data_dir: PathBuf,
    pub host: String,
    pub port: u16,
    /// Host put in Metadata; defaults to `host` (or 127.0.0.1 when `host` is a wildcard).
    pub advertised_host: Option<String>,
    /// Number of shards (one pinned thread per core); defaults to the usable cores.
    pub shards: Option<usize>,
    pub num_partitions: i32,
    pub auto_create_topics_enable: bool,
    pub message_max_bytes: u32,
    pub socket_request_max_bytes: u32,
    pub log_segment_bytes: u64,
    /// The smallest segment.bytes CreateTopics and AlterConfigs accept
    /// (corelog's own; Kafka 4 fixes it at 1 MiB).
    pub log_segment_bytes_min: u64,
    pub log_segment_ms: i64,
    pub log_index_interval_bytes: u32,
    pub log_flush_interval_messages: u64,
    pub log_flush_interval_ms: u64,
    /// Write active segments with O_DIRECT where the file system allows it
    /// (not a Kafka setting: corelog's own, for measuring both ways).
    pub log_direct_io: bool,
    /// Per shard: bytes of recent writes kept in memory for fetches at the
    /// tail when writing with O_DIRECT (corelog's own).
    pub log_hot_tail_bytes: usize,
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    /// How often each shard looks for segments that retention deletes.
    pub log_retention_check_interval_ms: u64,
    /// max.connections: connections each shard (a broker to clients) serves
    /// before it refuses new ones. Whatever it says, a connection is refused
    /// once descriptors run short (net::limits).
    pub max_connections: usize,
    /// max.connections.per.ip: per shard, like max.connections.
    pub max_connections_per_ip: usize,
    /// Partitions of all topics the broker may hold (corelog's own, after
    /// KIP-578's max.broker.partitions); None: see `partitions_max`.
    pub max_partitions: Option<usize>,
    /// The open-file limit in force, read at start-up (not a setting).
    #[serde(skip)]
    pub open_files_max: u64,
    /// connections.max.idle.ms: a connection that sends no request for this
    /// long, with nothing left to answer, is closed.
    pub connections_max_idle_ms: u64,
    /// fetch.max.bytes: most record bytes one Fetch answer carries, whatever
    /// the request asks, and most memory it may hold until sent (past its
    /// first batch).
    pub fetch_max_bytes: u32,
    /// Per shard: memory all unsent fetch answers may hold (O_DIRECT read
    /// windows, hot-tail buffers); past it, partitions are answered without
    /// records until clients read (corelog's own).
    pub fetch_memory_bytes: usize,
    pub group_initial_rebalance_delay_ms: i32,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// Members (and pending MEMBER_ID_REQUIRED joins) one group may hold.
    pub group_max_size: usize,
    /// An idempotent producer silent this long is forgotten by its partitions.
    pub producer_id_expiration_ms: i64,
    /// How long an empty group's committed offsets are kept.
    pub offsets_retention_minutes: i64,
    /// Compacted topics are cleaned by a background task on each shard.
    pub log_cleaner_enable: bool,
    /// Pause between cleaner passes over a shard's compacted logs.
    pub log_cleaner_backoff_ms: u64,
    /// Memory bound of one shard's key -> latest offset map, in bytes.
    pub log_cleaner_dedupe_buffer_size: u64,
    /// Default delete.retention.ms: how long tombstones stay after cleaning.
    pub log_cleaner_delete_retention_ms: i64,
    /// Default min.cleanable.dirty.ratio.
    pub log_cleaner_min_cleanable_ratio: f64,
    /// Default min.compaction.lag.ms.
    pub log_cleaner_min_compaction_lag_ms: i64,
    /// Default max.compaction.lag.ms.
    pub log_cleaner_max_compaction_lag_ms: i64,
    /// Default message.timestamp.after.max.ms: how far in the future a
    /// batch's timestamps may be (Kafka 4: 1 hour).
    pub log_message_timestamp_after_max_ms: i64,
    /// Default message.timestamp.before.max.ms: how far in the past.
    pub log_message_timestamp_before_max_ms: i64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            node_id: NodeId(0),
            controller_quorum_voters: String::new(),
            broker_session_timeout_ms: BROKER_SESSION_TIMEOUT_MS_DEFAULT,
            broker_heartbeat_interval_ms: BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT,
            replica_lag_time_max_ms: REPLICA_LAG_TIME_MAX_MS_DEFAULT,
            replica_fetch_max_bytes: REPLICA_FETCH_MAX_BYTES_DEFAULT,
            replica_fetch_response_max_bytes: REPLICA_FETCH_RESPONSE_MAX_BYTES_DEFAULT,
            replica_fetch_wait_max_ms: REPLICA_FETCH_WAIT_MAX_MS_DEFAULT,
            replica_fetch_min_bytes: REPLICA_FETCH_MIN_BYTES_DEFAULT,
            replica_fetch_backoff_ms: REPLICA_FETCH_BACKOFF_MS_DEFAULT,
            replica_high_watermark_checkpoint_interval_ms: REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS_DEFAULT,
            default_replication_factor: 1,
            min_insync_replicas: 1,
            offsets_topic_replication_factor: OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT,
            unclean_leader_election_enable: false,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_DEFAULT,
            leader_imbalance_per_broker_percentage: LEADER_IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT,
            data_dir: PathBuf::from("data"),
            host: "127.0.0.1".into(),
            port: 9092,
            advertised_host: None,
            shards: None,
            num_partitions: 1,
            auto_create_topics_enable: true,
            message_max_bytes: MESSAGE_MAX_BYTES_DEFAULT,
            socket_request_max_bytes: SOCKET_REQUEST_MAX_BYTES_DEFAULT,
            log_segment_bytes: SEGMENT_BYTES_DEFAULT,
            log_segment_bytes_min: SEGMENT_BYTES_MIN_DEFAULT,
            log_segment_ms: SEGMENT_MS_DEFAULT,
            log_index_interval_bytes: 4096,
            log_flush_interval_messages: u64::MAX,
            log_flush_interval_ms: u64::MAX,
            log_direct_io: true,
            log_hot_tail_bytes: 32 << 20,
            log_retention_ms: RETENTION_MS_DEFAULT,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            max_connections: i32::MAX as usize,
            open_files_max: 1024,
            max_partitions: None,
            max_connections_per_ip: i32::MAX as usize,
            connections_max_idle_ms: CONNECTIONS_MAX_IDLE_MS_DEFAULT,
            fetch_max_bytes: FETCH_MAX_BYTES_DEFAULT,
            fetch_memory_bytes: FETCH_MEMORY_BYTES_DEFAULT,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: crate::group::GROUP_SIZE_MAX_DEFAULT,
            producer_id_expiration_ms: PRODUCER_ID_EXPIRATION_MS_DEFAULT,
            offsets_retention_minutes: 7 * 24 * 60,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_dedupe_buffer_size: CLEANER_DEDUPE_BUFFER_BYTES_DEFAULT,
            log_cleaner_delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            log_cleaner_min_cleanable_ratio: 0.5,
            log_cleaner_min_compaction_lag_ms: 0,
            log_cleaner_max_compaction_lag_ms: i64::MAX,
            log_message_timestamp_after_max_ms: TIMESTAMP_AFTER_MAX_MS_DEFAULT,
            log_message_timestamp_before_max_ms: i64::MAX,
        }
    }
}

impl BrokerConfig {
    /// Checks the broker-wide defaults with the same rules as topic configs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let defaults = TopicConfig::broker_defaults(self);
        let overrides: BTreeMap<String, String> = [
            "segment.bytes",
            "segment.ms",
            "delete.retention.ms",
            "min.cleanable.dirty.ratio",
            "min.compaction.lag.ms",
            "max.compaction.lag.ms",
        ]
        .iter()
        .map(|k| (k.to_string(), defaults.value_of(k).unwrap()))
        .collect();
        TopicConfig::resolve_new(&overrides, self)?;
        // --shards 0 runs one shard; the count the cores give is checked
        // when it is known (server).
        check_identity(self.node_id, self.shards.unwrap_or(1).max(1))?;
        self.voters()?;
        if self.log_segment_bytes_min < SEGMENT_BYTES_FORMAT_MIN {
            return Err(ConfigError::InvalidValue {
                key: "log.segment.bytes.min".into(),
                value: self.log_segment_bytes_min.to_string(),
                why: "must be at least 14",
            });
        }
        let connections_ok =
            self.max_connections > 0 && self.max_connections_per_ip > 0 && self.connections_max_idle_ms > 0;
        if !connections_ok {
            return Err(ConfigError::InvalidValue {
                key: "max.connections".into(),
                value: format!(
                    "{}/{}/{}",
                    self.max_connections, self.max_connections_per_ip, self.connections_max_idle_ms
                ),
                why: "max.connections, max.connections.per.ip and connections.max.idle.ms must be positive",
            });
        }
        if !(FETCH_MAX_BYTES_MIN..=FETCH_MAX_BYTES_MAX).contains(&self.fetch_max_bytes) {
            let why = "fetch.max.bytes must be at least 1 KiB and at most 1 GiB";
            return Err(ConfigError::InvalidValue {
                key: "fetch.max.bytes".into(),
                value: self.fetch_max_bytes.to_string(),
                why,
            });
        }
        if self.fetch_memory_bytes < self.fetch_max_bytes as usize {
            let why = "must be at least fetch.max.bytes, or a full fetch answer could never be read";
            let value = self.fetch_memory_bytes.to_string();
            return Err(ConfigError::InvalidValue { key: "fetch_memory_bytes".into(), value, why });
        }
        self.validate_replica_fetch()?;
        let partitions_ok = (1..=PARTITIONS_PER_TOPIC_MAX).contains(&self.num_partitions);
        if !partitions_ok || self.log_index_interval_bytes == 0 {
            let why = "num.partitions and log.index.interval.bytes must be positive";
            return Err(ConfigError::InvalidValue {
                key: "num.partitions".into(),
                value: self.num_partitions.to_string(),
                why,
            });
        }
        let at_least_one = [
            ("group.max.size", self.group_max_size as i64),
            ("producer.id.expiration.ms", self.producer_id_expiration_ms),
        ];
        if let Some((key, value)) = at_least_one.into_iter().find(|(_, value)| *value < 1) {
            return Err(ConfigError::InvalidValue {
                key: key.into(),
                value: value.to_string(),
                why: "must be at least 1",
            });
        }
        Ok(())
    }

    /// The follower fetch's bounds: answers must fit an i32 frame as
    /// consumers' do, and a fetch must come back before its follower counts
    /// as lagging (Kafka refuses replica.fetch.wait.max.ms ≥ replica.lag.time.max.ms).
    fn validate_replica_fetch(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: String, why| Err(ConfigError::InvalidValue { key: key.into(), value, why });
        for (key, bytes) in [
            ("replica.fetch.max.bytes", self.replica_fetch_max_bytes),
            ("replica.fetch.response.max.bytes", self.replica_fetch_response_max_bytes),
        ] {
            if bytes > FETCH_MAX_BYTES_MAX {
                return invalid(key, bytes.to_string(), "must be at most 1 GiB");
            }
        }
        if u64::from(self.replica_fetch_wait_max_ms) >= self.replica_lag_time_max_ms {
            let why = "replica.fetch.wait.max.ms must be less than replica.lag.time.max.ms";
            return invalid("replica.fetch.wait.max.ms", self.replica_fetch_wait_max_ms.to_string(), why);
        }
        let positive = [
            ("replica.fetch.backoff.ms", self.replica_fetch_backoff_ms),
            ("replica.high.watermark.checkpoint.interval.ms", self.replica_high_watermark_checkpoint_interval_ms),
        ];
        if let Some((key, value)) = positive.into_iter().find(|(_, value)| *value == 0) {
            return invalid(key, value.to_string(), "must be positive");
        }
        Ok(())
    }

    /// max.partitions, or a sixth of the open-file limit: each partition
    /// holds at least three descriptors (its active segment twice, its
    /// directory) and rolled segments two more.
    pub fn partitions_max(&self) -> usize {
        self.max_partitions.unwrap_or((self.open_files_max / 6).max(1) as usize)
    }

    /// The controller quorum's voters (none: a single node). Each node of a
    /// cluster must be one of them.
    pub fn voters(&self) -> Result<Vec<Voter>, ConfigError> {
        let voters = parse_voters(&self.controller_quorum_voters)?;
        if !voters.is_empty() && !voters.iter().any(|v| v.id == self.node_id) {
            return Err(VotersError::NotAVoter(self.node_id).into());
        }
        Ok(voters)
    }

    pub fn advertised_host(&self) -> String {
        match &self.advertised_host {
            Some(h) => h.clone(),
            None if self.host == "0.0.0.0" || self.host == "::" => "127.0.0.1".into(),
            None => self.host.clone(),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown topic config '{0}'")]
    UnknownKey(String),
    #[error("invalid value '{value}' for topic config '{key}': {why}")]
    InvalidValue { key: String, value: String, why: &'static str },
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Voters(#[from] VotersError),
}

pub use topic::{broker_synonym, CleanupPolicy, TopicConfig, LIST_CONFIG_KEYS, TOPIC_CONFIG_KEYS};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_bounds_are_checked_at_start_up() {
        assert!(BrokerConfig::default().validate().is_ok());
        let config = |fetch_max_bytes, fetch_memory_bytes| BrokerConfig {
            fetch_max_bytes,
            fetch_memory_bytes,
            ..BrokerConfig::default()
        };
        assert!(config(1 << 20, 1 << 20).validate().is_ok());
        assert!(config(1023, 1 << 20).validate().is_err(), "Kafka's minimum");
        assert!(config(2 << 30, 4 << 30).validate().is_err(), "an answer's size must fit an i32");
        assert!(config(8 << 20, 4 << 20).validate().is_err(), "one whole answer must fit the shard's memory");
    }

    #[test]
    fn replica_fetch_settings_are_kafkas_and_checked() {
        let defaults = BrokerConfig::default();
        let kafka = (
            defaults.replica_fetch_max_bytes,
            defaults.replica_fetch_response_max_bytes,
            defaults.replica_fetch_wait_max_ms,
            defaults.replica_fetch_min_bytes,
            defaults.replica_fetch_backoff_ms,
            defaults.replica_high_watermark_checkpoint_interval_ms,
        );
        assert_eq!(kafka, (1_048_576, 10_485_760, 500, 1, 1_000, 5_000));
        let slow = BrokerConfig { replica_fetch_wait_max_ms: 30_000, ..BrokerConfig::default() };
        assert!(slow.validate().is_err(), "a follower would leave the ISR while its fetch waits");
        let huge = BrokerConfig { replica_fetch_response_max_bytes: 2 << 30, ..BrokerConfig::default() };
        assert!(huge.validate().is_err());
        let parsed: BrokerConfig =
            toml::from_str("replica_fetch_max_bytes = 4096\nreplica_fetch_backoff_ms = 50").unwrap();
        assert_eq!((parsed.replica_fetch_max_bytes, parsed.replica_fetch_backoff_ms), (4096, 50));
    }

    #[test]
    fn a_node_of_a_cluster_is_one_of_its_voters() {
        let config = |node, voters: &str| BrokerConfig {
            node_id: NodeId(node),
            controller_quorum_voters: voters.into(),
            ..BrokerConfig::default()
        };
        assert_eq!(config(0, "").voters(), Ok(vec![]), "no voters: a single node");
        let three = "1@127.0.0.1:9093,2@127.0.0.2:9093,3@127.0.0.3:9093";
        assert_eq!(config(2, three).voters().unwrap().len(), 3);
        assert_eq!(config(4, three).validate(), Err(ConfigError::Voters(VotersError::NotAVoter(NodeId(4)))));
        assert!(config(1, "1@127.0.0.1").validate().is_err());
    }
}
