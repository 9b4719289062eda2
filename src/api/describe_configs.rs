//! DescribeConfigs for topics (their overrides over the broker defaults) and
//! for brokers (the broker-wide settings, read-only). Each value says where it
//! comes from as Kafka's ConfigSource does, and with include_synonyms (v1+)
//! lists every level that has a value, the one in force first: the topic's
//! own, the broker's flag when it differs from Kafka's default, Kafka's
//! default. A flag set to Kafka's default cannot be told from no flag, so it
//! shows as the default.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response};
use crate::config::{broker_synonym, BrokerConfig, TopicConfig, TOPIC_CONFIG_KEYS};
use crate::shard::Shard;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
// Kafka's ConfigSource values.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// One level a config has a value at: (name there, value, source).
pub(super) type Level = (&'static str, String, i8);

/// The levels of a value, the one in force first: `own` (the topic's
/// override), then the broker's if it is not Kafka's default, then Kafka's.
fn levels(own: Option<Level>, name: &'static str, broker: String, kafka_default: String) -> Vec<Level> {
    let mut levels: Vec<Level> = own.into_iter().collect();
    if broker != kafka_default {
        levels.push((name, broker, SOURCE_STATIC_BROKER));
    }
    levels.push((name, kafka_default, SOURCE_DEFAULT));
    levels
}

/// The entry for `name`, in force at the first of `levels`.
fn entry(name: &str, levels: Vec<Level>, read_only: bool, synonyms: bool) -> DescribeConfigsResourceResult {
    let (_, value, source) = levels[0].clone();
    let synonyms = match synonyms {
        true => levels
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str(name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_source(source)
            })
            .collect(),
        false => Vec::new(),
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.into()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_config_source(source)
        .with_read_only(read_only)
        .with_synonyms(synonyms)
}

fn broker_entries(config: &BrokerConfig) -> Vec<(&'static str, String)> {
    let limit = |v: u64| if v == u64::MAX { i64::MAX.to_string() } else { v.to_string() };
    vec![
        ("node.id", config.node_id.to_string()),
        ("auto.create.topics.enable", config.auto_create_topics_enable.to_string()),
        ("num.partitions", config.num_partitions.to_string()),
        ("message.max.bytes", config.message_max_bytes.to_string()),
        ("socket.request.max.bytes", config.socket_request_max_bytes.to_string()),
        ("log.segment.bytes", config.log_segment_bytes.to_string()),
        ("log.retention.ms", config.log_retention_ms.to_string()),
        ("log.retention.bytes", config.log_retention_bytes.to_string()),
        ("log.retention.check.interval.ms", config.log_retention_check_interval_ms.to_string()),
        ("log.flush.interval.messages", limit(config.log_flush_interval_messages)),
        ("log.flush.interval.ms", limit(config.log_flush_interval_ms)),
        ("log.dirs", config.data_dir.display().to_string()),
    ]
}

fn broker_configs(config: &BrokerConfig, synonyms: bool) -> Vec<DescribeConfigsResourceResult> {
    let kafka_defaults = broker_entries(&BrokerConfig::default());
    broker_entries(config)
        .into_iter()
        .zip(kafka_defaults)
        .map(|((name, value), (_, kafka_default))| {
            entry(name, levels(None, name, value, kafka_default), true, synonyms)
        })
        .collect()
}

/// Every config of a topic with its levels, the one in force first: set on
/// the topic (`overrides`), the broker's flag where it differs from Kafka's
/// default, Kafka's default. DescribeConfigs and CreateTopics (KIP-525)
/// answer the same.
pub(super) fn topic_config_levels<'a>(
    config: &BrokerConfig,
    overrides: &'a BTreeMap<String, String>,
    effective: &'a TopicConfig,
) -> Result<impl Iterator<Item = (&'static str, Vec<Level>)> + 'a, ErrorCode> {
    let broker = TopicConfig::resolve(&BTreeMap::new(), config).map_err(|e| ErrorCode::from(&e))?;
    let kafka = TopicConfig::broker_defaults(&BrokerConfig::default());
    Ok(TOPIC_CONFIG_KEYS.iter().map(move |&key| {
        let value = |config: &TopicConfig| config.value_of(key).unwrap_or_default();
        let own = overrides.contains_key(key).then(|| (key, value(effective), SOURCE_TOPIC));
        let synonym = broker_synonym(key).unwrap_or(key);
        (key, levels(own, synonym, value(&broker), value(&kafka)))
    }))
}

fn topic_configs(shard: &Shard, name: &str, synonyms: bool) -> Result<Vec<DescribeConfigsResourceResult>, ErrorCode> {
    let snapshot = shard.snapshot();
    let topic = snapshot.topic(name).ok_or(ErrorCode::UnknownTopicOrPartition)?;
    let effective = TopicConfig::resolve(&topic.configs, &shard.config).map_err(|e| ErrorCode::from(&e))?;
    let levels = topic_config_levels(&shard.config, &topic.configs, &effective)?;
    Ok(levels.map(|(key, levels)| entry(key, levels, false, synonyms)).collect())
}

fn describe(shard: &Shard, resource: &DescribeConfigsResource, synonyms: bool) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let entries = match resource.resource_type {
        RESOURCE_TOPIC => topic_configs(shard, &resource.resource_name, synonyms),
        RESOURCE_BROKER if !names_this_broker(&resource.resource_name, shard.replica().broker_id()) => {
            let this = shard.replica().broker_id();
            let message = format!("unexpected broker id {}: this broker is {this}", resource.resource_name);
            return result.with_error_code(ErrorCode::InvalidRequest.code()).with_error_message(Some(message.into()));
        }
        RESOURCE_BROKER => Ok(broker_configs(&shard.config, synonyms)),
        other => {
            let name = resource_type_name(other);
            let message = format!("resource type {name} is not supported: corelog has topic and broker configs");
            return result.with_error_code(ErrorCode::InvalidRequest.code()).with_error_message(Some(message.into()));
        }
    };
    match entries {
        Ok(mut configs) => {
            if let Some(keys) = &resource.configuration_keys {
                configs.retain(|c| keys.contains(&c.name));
            }
            result.with_configs(configs)
        }
        Err(code) => result.with_error_code(code.code()),
    }
}

/// A broker resource names this broker by its id, or every broker's
/// defaults by "" (Kafka refuses any other id: each broker describes only
/// itself, so a request cannot buy a copy of the broker configs per name).
fn names_this_broker(resource_name: &str, broker_id: i32) -> bool {
    resource_name.is_empty() || resource_name.parse::<i32>().is_ok_and(|id| id == broker_id)
}

/// Kafka's ConfigResource.Type names, for refusals a user reads.
fn resource_type_name(resource_type: i8) -> String {
    let name = match resource_type {
        8 => "BROKER_LOGGER",
        16 => "CLIENT_METRICS",
        32 => "GROUP",
        _ => "UNKNOWN",
    };
    format!("{name} ({resource_type})")
}

/// Each distinct resource is described once: a topic named 10,000 times in
/// a request would otherwise buy 10,000 copies of its configs. (Kafka answers
/// every entry; clients key the results by resource, so none sends repeats.)
pub fn handle(ctx: &Context<'_>, request: DescribeConfigsRequest) -> Result<Response, ApiError> {
    let mut seen = HashSet::new();
    let distinct = request.resources.iter().filter(|r| seen.insert((r.resource_type, r.resource_name.as_str())));
    let results = distinct.map(|r| describe(ctx.shard, r, request.include_synonyms)).collect();
    ctx.respond(&DescribeConfigsResponse::default().with_results(results))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_describes_itself_or_the_defaults_only() {
        assert!(names_this_broker("", 1));
        assert!(names_this_broker("1", 1));
        assert!(!names_this_broker("0", 1));
        assert!(!names_this_broker("01x", 1));
        assert!(!names_this_broker("18446744073709551617", 1));
        assert!(names_this_broker("2003", 2003), "node 2's shard 3");
        assert!(!names_this_broker("3", 2003));
    }

    #[test]
    fn levels_list_the_value_in_force_first_and_the_broker_only_when_it_differs() {
        let own = Some(("retention.ms", "5".to_string(), SOURCE_TOPIC));
        assert_eq!(
            levels(own, "log.retention.ms", "9".into(), "7".into()),
            [
                ("retention.ms", "5".to_string(), SOURCE_TOPIC),
                ("log.retention.ms", "9".to_string(), SOURCE_STATIC_BROKER),
                ("log.retention.ms", "7".to_string(), SOURCE_DEFAULT),
            ]
        );
        assert_eq!(
            levels(None, "log.retention.ms", "7".into(), "7".into()),
            [("log.retention.ms", "7".to_string(), 5)]
        );
    }
}
