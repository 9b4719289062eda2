//! DescribeConfigs for topics (their overrides over the broker defaults) and
//! for brokers (the broker-wide settings, read-only).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response};
use crate::config::{BrokerConfig, TopicConfig, TOPIC_CONFIG_KEYS};
use crate::shard::Shard;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
// Kafka's ConfigSource values.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

fn entry(name: &str, value: String, source: i8, read_only: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.into()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_config_source(source)
        .with_read_only(read_only)
}

fn broker_entries(config: &BrokerConfig) -> Vec<(&'static str, String)> {
    let limit = |v: u64| if v == u64::MAX { i64::MAX.to_string() } else { v.to_string() };
    vec![
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

/// Every config of a topic with its value and Kafka's source: set on the
/// topic (`overrides`) or the broker's default. CreateTopics answers the same.
pub(super) fn topic_config_values<'a>(
    overrides: &'a BTreeMap<String, String>,
    effective: &'a TopicConfig,
) -> impl Iterator<Item = (&'static str, String, i8)> + 'a {
    TOPIC_CONFIG_KEYS.iter().map(|key| {
        let source = if overrides.contains_key(*key) { SOURCE_TOPIC } else { SOURCE_DEFAULT };
        (*key, effective.value_of(key).unwrap_or_default(), source)
    })
}

fn topic_entries(shard: &Shard, name: &str) -> Result<Vec<DescribeConfigsResourceResult>, ErrorCode> {
    let snapshot = shard.snapshot();
    let topic = snapshot.topic(name).ok_or(ErrorCode::UnknownTopicOrPartition)?;
    let effective = TopicConfig::resolve(&topic.configs, &shard.config).map_err(|e| ErrorCode::from(&e))?;
    let values = topic_config_values(&topic.configs, &effective);
    Ok(values.map(|(key, value, source)| entry(key, value, source, false)).collect())
}

fn describe(shard: &Shard, resource: &DescribeConfigsResource) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let entries = match resource.resource_type {
        RESOURCE_TOPIC => topic_entries(shard, &resource.resource_name),
        RESOURCE_BROKER => Ok(broker_entries(&shard.config)
            .into_iter()
            .map(|(k, v)| entry(k, v, SOURCE_STATIC_BROKER, true))
            .collect()),
        _ => Err(ErrorCode::InvalidRequest),
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

/// Each distinct resource is described once: a topic named 10,000 times in
/// a request would otherwise buy 10,000 copies of its configs. (Kafka answers
/// every entry; clients key the results by resource, so none sends repeats.)
pub fn handle(ctx: &Context<'_>, request: DescribeConfigsRequest) -> Result<Response, ApiError> {
    let mut seen = HashSet::new();
    let distinct = request.resources.iter().filter(|r| seen.insert((r.resource_type, r.resource_name.as_str())));
    let results = distinct.map(|r| describe(ctx.shard, r)).collect();
    ctx.respond(&DescribeConfigsResponse::default().with_results(results))
}
