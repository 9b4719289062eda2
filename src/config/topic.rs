//! A topic's configuration: its overrides (Kafka's topic config names) over
//! the broker's defaults, parsed once into typed values.

use std::collections::BTreeMap;

use super::*;
use crate::model::compression::Codec;
use crate::model::recompress::target_codec;

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
    /// acks=all is refused (NOT_ENOUGH_REPLICAS) while fewer replicas than
    /// this are in sync.
    pub min_insync_replicas: i32,
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
    "min.insync.replicas",
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
        "min.insync.replicas" => "min.insync.replicas",
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
            min_insync_replicas: broker.min_insync_replicas,
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
            "min.insync.replicas" => {
                self.min_insync_replicas = parse_num(key, value)?;
                if self.min_insync_replicas < 1 {
                    let why = "must be >= 1";
                    return Err(ConfigError::InvalidValue { key: key.into(), value: value.into(), why });
                }
            }
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
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
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
    fn every_listed_key_has_a_value() {
        let c = TopicConfig::broker_defaults(&BrokerConfig::default());
        for key in TOPIC_CONFIG_KEYS {
            assert!(c.value_of(key).is_some(), "{key}");
            assert!(broker_synonym(key).is_some(), "{key}");
        }
    }
}
