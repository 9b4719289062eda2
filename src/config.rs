//! Broker configuration (Kafka's names, Kafka's defaults) and per-topic
//! configuration resolved against the broker's defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

use crate::cluster::{check_identity, IdentityError, NodeId};
use crate::model::compression::Codec;
use crate::model::recompress::target_codec;

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

    /// max.partitions, or a sixth of the open-file limit: each partition
    /// holds at least three descriptors (its active segment twice, its
    /// directory) and rolled segments two more.
    pub fn partitions_max(&self) -> usize {
        self.max_partitions.unwrap_or((self.open_files_max / 6).max(1) as usize)
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
}

/// One policy `cleanup.policy` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CleanupKind {
    /// Retention drops old segments by time and size.
    Delete,
    /// The cleaner keeps the last record of every key.
    Compact,
}

impl CleanupKind {
    fn parse(value: &str) -> Option<CleanupKind> {
        match value {
            "delete" => Some(CleanupKind::Delete),
            "compact" => Some(CleanupKind::Compact),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CleanupKind::Delete => "delete",
            CleanupKind::Compact => "compact",
        }
    }
}

/// `cleanup.policy`, parsed once: the policies in the order they were
/// listed (DescribeConfigs and IncrementalAlterConfigs' APPEND print them
/// back in that order, as Kafka's list configs do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupPolicy(Vec<CleanupKind>);

impl CleanupPolicy {
    /// Retention deletes old segments by time and size.
    pub fn deletes(&self) -> bool {
        self.0.contains(&CleanupKind::Delete)
    }

    /// Every record needs a key, and the cleaner compacts the log.
    pub fn compacts(&self) -> bool {
        self.0.contains(&CleanupKind::Compact)
    }
}

impl std::fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.iter().map(|kind| kind.name()).collect::<Vec<_>>().join(","))
    }
}

/// A topic's effective configuration: its overrides over the broker
/// defaults, parsed once into typed values (the replica holds it, so no
/// request parses a config string).
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub cleanup_policy: CleanupPolicy,
    /// `compression.type`: the codec every stored batch must use, or None
    /// for "producer" (batches are kept as they came).
    pub compression: Option<Codec>,
    pub max_message_bytes: u32,
    pub flush_messages: u64,
    pub flush_ms: u64,
    /// How long a compacted topic keeps a tombstone once a cleaning kept it.
    pub delete_retention_ms: i64,
    /// A compacted log is cleaned once dirty bytes / all bytes reach this.
    pub min_cleanable_dirty_ratio: f64,
    /// Records younger than this are not compacted yet.
    pub min_compaction_lag_ms: i64,
    /// A log whose oldest dirty record is older than this is cleaned
    /// whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// A produced batch stamped later than now + this is refused (INVALID_TIMESTAMP).
    pub message_timestamp_after_max_ms: i64,
    /// A produced batch stamped earlier than now - this is refused.
    pub message_timestamp_before_max_ms: i64,
}

/// Topic config names corelog knows, in the order `describe` lists them.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "flush.messages",
    "flush.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

/// The broker config a topic config falls back to (Kafka's
/// ServerTopicConfigSynonyms, in the unit corelog's flags take), which
/// DescribeConfigs names among its synonyms.
pub fn broker_synonym(topic_key: &str) -> Option<&'static str> {
    Some(match topic_key {
        "cleanup.policy" => "log.cleanup.policy",
        "compression.type" => "compression.type",
        "delete.retention.ms" => "log.cleaner.delete.retention.ms",
        "flush.messages" => "log.flush.interval.messages",
        "flush.ms" => "log.flush.interval.ms",
        "max.compaction.lag.ms" => "log.cleaner.max.compaction.lag.ms",
        "max.message.bytes" => "message.max.bytes",
        "message.timestamp.after.max.ms" => "log.message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms" => "log.message.timestamp.before.max.ms",
        "min.cleanable.dirty.ratio" => "log.cleaner.min.cleanable.ratio",
        "min.compaction.lag.ms" => "log.cleaner.min.compaction.lag.ms",
        "retention.bytes" => "log.retention.bytes",
        "retention.ms" => "log.retention.ms",
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        _ => return None,
    })
}

/// Topic configs whose value is a comma-separated list (IncrementalAlterConfigs
/// may APPEND to or SUBTRACT from them).
pub const LIST_CONFIG_KEYS: &[&str] = &["cleanup.policy"];

const COMPRESSION_TYPES: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::InvalidValue {
        key: key.into(),
        value: value.into(),
        why: "not a number in range",
    })
}

/// Kafka spells "no limit" as Long.MAX_VALUE; accept it and any larger figure.
fn parse_limit(key: &str, value: &str) -> Result<u64, ConfigError> {
    let v: i64 = parse_num(key, value)?;
    if v < 0 {
        return Err(ConfigError::InvalidValue { key: key.into(), value: value.into(), why: "must be >= 0" });
    }
    Ok(if v == i64::MAX { u64::MAX } else { v as u64 })
}

fn parse_non_negative(key: &str, value: &str) -> Result<i64, ConfigError> {
    let v: i64 = parse_num(key, value)?;
    if v < 0 {
        return Err(ConfigError::InvalidValue { key: key.into(), value: value.into(), why: "must be >= 0" });
    }
    Ok(v)
}

impl TopicConfig {
    pub fn broker_defaults(broker: &BrokerConfig) -> TopicConfig {
        TopicConfig {
            retention_ms: broker.log_retention_ms,
            retention_bytes: broker.log_retention_bytes,
            segment_bytes: broker.log_segment_bytes,
            segment_ms: broker.log_segment_ms,
            cleanup_policy: CleanupPolicy(vec![CleanupKind::Delete]),
            compression: None,
            max_message_bytes: broker.message_max_bytes,
            flush_messages: broker.log_flush_interval_messages,
            flush_ms: broker.log_flush_interval_ms,
            delete_retention_ms: broker.log_cleaner_delete_retention_ms,
            min_cleanable_dirty_ratio: broker.log_cleaner_min_cleanable_ratio,
            min_compaction_lag_ms: broker.log_cleaner_min_compaction_lag_ms,
            max_compaction_lag_ms: broker.log_cleaner_max_compaction_lag_ms,
            message_timestamp_after_max_ms: broker.log_message_timestamp_after_max_ms,
            message_timestamp_before_max_ms: broker.log_message_timestamp_before_max_ms,
        }
    }

    /// cleanup.policy names compact (alone or with delete).
    pub fn is_compacted(&self) -> bool {
        self.cleanup_policy.compacts()
    }

    /// What CreateTopics, AlterConfigs and IncrementalAlterConfigs accept:
    /// `resolve` and also the bounds of what this broker can afford (a
    /// persisted config is only held to the format's bounds, so topics made
    /// under older rules keep opening).
    pub fn resolve_new(
        overrides: &BTreeMap<String, String>,
        broker: &BrokerConfig,
    ) -> Result<TopicConfig, ConfigError> {
        let config = TopicConfig::resolve(overrides, broker)?;
        if config.segment_bytes < broker.log_segment_bytes_min {
            return Err(ConfigError::InvalidValue {
                key: "segment.bytes".into(),
                value: config.segment_bytes.to_string(),
                why: "below the broker's minimum segment size (1 MiB unless log.segment.bytes.min says otherwise)",
            });
        }
        Ok(config)
    }

    /// Applies `overrides` (Kafka topic config names) over the broker defaults.
    pub fn resolve(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> Result<TopicConfig, ConfigError> {
        let mut config = TopicConfig::broker_defaults(broker);
        for (key, value) in overrides {
            config.set(key, value)?;
        }
        Ok(config)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "retention.ms" => self.retention_ms = parse_num(key, value)?,
            "retention.bytes" => self.retention_bytes = parse_num(key, value)?,
            "segment.bytes" => {
                self.segment_bytes = parse_num(key, value)?;
                // Kafka's segment.bytes is an int; index positions are 32-bit.
                if !(SEGMENT_BYTES_FORMAT_MIN..=i32::MAX as u64).contains(&self.segment_bytes) {
                    let why = "must be between 14 and 2147483647";
                    return Err(ConfigError::InvalidValue { key: key.into(), value: value.into(), why });
                }
            }
            "segment.ms" => {
                self.segment_ms = parse_num(key, value)?;
                if self.segment_ms < 1 {
                    return Err(ConfigError::InvalidValue {
                        key: key.into(),
                        value: value.into(),
                        why: "must be >= 1",
                    });
                }
            }
            "cleanup.policy" => {
                let kinds: Option<Vec<CleanupKind>> = value.split(',').map(|p| CleanupKind::parse(p.trim())).collect();
                let Some(kinds) = kinds else {
                    return Err(ConfigError::InvalidValue {
                        key: key.into(),
                        value: value.into(),
                        why: "expected delete, compact or both",
                    });
                };
                self.cleanup_policy = CleanupPolicy(kinds);
            }
            "compression.type" => {
                if !COMPRESSION_TYPES.contains(&value) {
                    return Err(ConfigError::InvalidValue {
                        key: key.into(),
                        value: value.into(),
                        why: "unknown codec",
                    });
                }
                self.compression = target_codec(value);
            }
            "max.message.bytes" => self.max_message_bytes = parse_num(key, value)?,
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms = parse_non_negative(key, value)?,
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms = parse_non_negative(key, value)?,
            "flush.messages" => self.flush_messages = parse_limit(key, value)?.max(1),
            "flush.ms" => self.flush_ms = parse_limit(key, value)?,
            "delete.retention.ms" => self.delete_retention_ms = parse_non_negative(key, value)?,
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = parse_non_negative(key, value)?,
            "max.compaction.lag.ms" => {
                self.max_compaction_lag_ms = parse_num(key, value)?;
                if self.max_compaction_lag_ms < 1 {
                    let why = "must be >= 1";
                    return Err(ConfigError::InvalidValue { key: key.into(), value: value.into(), why });
                }
            }
            "min.cleanable.dirty.ratio" => {
                let ratio: f64 = parse_num(key, value)?;
                if !(0.0..=1.0).contains(&ratio) {
                    let why = "must be between 0 and 1";
                    return Err(ConfigError::InvalidValue { key: key.into(), value: value.into(), why });
                }
                self.min_cleanable_dirty_ratio = ratio;
            }
            _ => return Err(ConfigError::UnknownKey(key.into())),
        }
        Ok(())
    }

    /// The value of a config as Kafka prints it.
    pub fn value_of(&self, key: &str) -> Option<String> {
        let limit = |v: u64| if v == u64::MAX { i64::MAX.to_string() } else { v.to_string() };
        Some(match key {
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "cleanup.policy" => self.cleanup_policy.to_string(),
            "compression.type" => self.compression.map_or("producer", Codec::name).to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms.to_string(),
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms.to_string(),
            "flush.messages" => limit(self.flush_messages),
            "flush.ms" => limit(self.flush_ms),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn overrides_apply_over_broker_defaults() {
        let broker = BrokerConfig::default();
        let c = TopicConfig::resolve(&overrides(&[("segment.bytes", "1048576"), ("flush.messages", "1")]), &broker)
            .unwrap();
        assert_eq!(c.segment_bytes, 1 << 20);
        assert_eq!(c.flush_messages, 1);
        assert_eq!(c.retention_ms, RETENTION_MS_DEFAULT);
        assert_eq!(c.value_of("flush.ms").unwrap(), i64::MAX.to_string());
    }

    #[test]
    fn bad_values_and_keys_are_refused() {
        let broker = BrokerConfig::default();
        assert_eq!(
            TopicConfig::resolve(&overrides(&[("no.such", "1")]), &broker),
            Err(ConfigError::UnknownKey("no.such".into()))
        );
        assert!(TopicConfig::resolve(&overrides(&[("retention.ms", "soon")]), &broker).is_err());
        assert!(TopicConfig::resolve(&overrides(&[("compression.type", "brotli")]), &broker).is_err());
        assert!(TopicConfig::resolve(&overrides(&[("cleanup.policy", "compact,delete")]), &broker).is_ok());
        assert!(TopicConfig::resolve(&overrides(&[("min.cleanable.dirty.ratio", "1.5")]), &broker).is_err());
        assert!(TopicConfig::resolve(&overrides(&[("delete.retention.ms", "-1")]), &broker).is_err());
        assert!(TopicConfig::resolve(&overrides(&[("min.compaction.lag.ms", "x")]), &broker).is_err());
    }

    #[test]
    fn cleanup_policy_and_compression_are_parsed_once_and_printed_as_given() {
        let broker = BrokerConfig::default();
        let resolve = |pairs: &[(&str, &str)]| TopicConfig::resolve(&overrides(pairs), &broker).unwrap();
        let defaults = resolve(&[]);
        assert!(defaults.cleanup_policy.deletes() && !defaults.cleanup_policy.compacts());
        assert_eq!((defaults.compression, defaults.value_of("compression.type").unwrap()), (None, "producer".into()));
        let both = resolve(&[("cleanup.policy", "delete, compact"), ("compression.type", "uncompressed")]);
        assert!(both.cleanup_policy.deletes() && both.cleanup_policy.compacts());
        assert_eq!(both.value_of("cleanup.policy").unwrap(), "delete,compact", "listed order kept");
        assert_eq!(both.compression, Some(Codec::None));
        assert_eq!(both.value_of("compression.type").unwrap(), "uncompressed");
        let compact = resolve(&[("cleanup.policy", "compact"), ("compression.type", "zstd")]);
        assert!(!compact.cleanup_policy.deletes() && compact.is_compacted());
        assert_eq!(compact.compression, Some(Codec::Zstd));
    }

    #[test]
    fn compaction_configs_have_kafka_defaults() {
        let broker = BrokerConfig::default();
        let c = TopicConfig::resolve(&overrides(&[("cleanup.policy", "compact,delete")]), &broker).unwrap();
        assert!(c.is_compacted());
        assert!(!TopicConfig::broker_defaults(&broker).is_compacted());
        assert_eq!(c.value_of("delete.retention.ms").unwrap(), "86400000");
        assert_eq!(c.value_of("min.cleanable.dirty.ratio").unwrap(), "0.5");
        assert_eq!(c.value_of("min.compaction.lag.ms").unwrap(), "0");
        assert_eq!(c.value_of("max.compaction.lag.ms").unwrap(), i64::MAX.to_string());
        assert!(TopicConfig::resolve(&overrides(&[("max.compaction.lag.ms", "0")]), &broker).is_err());
        let c = TopicConfig::resolve(&overrides(&[("min.cleanable.dirty.ratio", "0.01")]), &broker).unwrap();
        assert_eq!(c.min_cleanable_dirty_ratio, 0.01);
    }

    #[test]
    fn new_topics_get_no_segments_below_the_broker_floor_but_old_ones_still_open() {
        let broker = BrokerConfig::default();
        let tiny = overrides(&[("segment.bytes", "14")]);
        assert!(matches!(TopicConfig::resolve_new(&tiny, &broker), Err(ConfigError::InvalidValue { .. })));
        assert_eq!(TopicConfig::resolve(&tiny, &broker).unwrap().segment_bytes, 14, "a persisted config still opens");
        let floor = overrides(&[("segment.bytes", "1048576")]);
        assert!(TopicConfig::resolve_new(&floor, &broker).is_ok());
        let lowered = BrokerConfig { log_segment_bytes_min: 1024, ..BrokerConfig::default() };
        assert!(TopicConfig::resolve_new(&overrides(&[("segment.bytes", "1024")]), &lowered).is_ok());
        assert!(TopicConfig::resolve_new(&overrides(&[("segment.bytes", "1023")]), &lowered).is_err());
        let small_default = BrokerConfig { log_segment_bytes: 4096, ..BrokerConfig::default() };
        assert!(small_default.validate().is_err(), "log.segment.bytes is held to the floor too");
    }

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
    fn every_listed_key_has_a_value() {
        let c = TopicConfig::broker_defaults(&BrokerConfig::default());
        for key in TOPIC_CONFIG_KEYS {
            assert!(c.value_of(key).is_some(), "{key}");
            assert!(broker_synonym(key).is_some(), "{key}");
        }
    }
}
