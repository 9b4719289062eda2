//! CreateTopics, and the auto-creation that Metadata and Produce trigger.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::topic_config_levels;
use super::{ApiError, Context, ErrorCode, Response};
use crate::config::TopicConfig;
use crate::config::PARTITIONS_PER_TOPIC_MAX;
use crate::metadata::{self, MetadataRecord};
use crate::shard::{ControlError, Shard};

/// Placement and a fresh id for a new topic, as one metadata record.
fn create_record(shard: &Shard, name: &str, partitions: i32, configs: BTreeMap<String, String>) -> MetadataRecord {
    let shards = (0..partitions).map(|p| metadata::place(name, p, shard.count)).collect();
    MetadataRecord::CreateTopic { name: name.into(), id: uuid::Uuid::new_v4(), shards, configs }
}

/// Creates `name` with the broker's default partition count, as Kafka does for
/// `auto.create.topics.enable`. Losing a race with another creator is fine.
pub async fn auto_create(shard: &Shard, name: &str) -> Result<(), ControlError> {
    metadata::validate_topic_name(name)?;
    let record = create_record(shard, name, shard.config.num_partitions, BTreeMap::new());
    match shard.change_metadata(record).await {
        Err(ControlError::Metadata(metadata::MetadataError::TopicExists(_))) | Ok(()) => {
            tracing::info!(topic = name, "topic auto-created");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

struct Refusal(ErrorCode, String);

/// A topic that may be created: its partition count, the configs it sets,
/// and all its configs in effect.
struct Checked {
    partitions: i32,
    configs: BTreeMap<String, String>,
    effective: TopicConfig,
}

fn check(shard: &Shard, topic: &CreatableTopic) -> Result<Checked, Refusal> {
    let partitions = match topic.num_partitions {
        -1 => shard.config.num_partitions,
        n if (1..=PARTITIONS_PER_TOPIC_MAX).contains(&n) => n,
        n => {
            let why = format!("partition count must be between 1 and {}, got {n}", PARTITIONS_PER_TOPIC_MAX);
            return Err(Refusal(ErrorCode::InvalidPartitions, why));
        }
    };
    if !matches!(topic.replication_factor, -1 | 1) {
        let why = format!(
            "replication factor {} is larger than the number of brokers that can hold a replica (1: corelog is a single node)",
            topic.replication_factor
        );
        return Err(Refusal(ErrorCode::InvalidReplicationFactor, why));
    }
    if !topic.assignments.is_empty() {
        let why = "manual replica assignment is not supported: placement on shards is automatic".to_string();
        return Err(Refusal(ErrorCode::InvalidReplicaAssignment, why));
    }
    let configs: BTreeMap<String, String> =
        topic.configs.iter().filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string()))).collect();
    let effective =
        TopicConfig::resolve_new(&configs, &shard.config).map_err(|e| Refusal((&e).into(), e.to_string()))?;
    metadata::validate_topic_name(&topic.name).map_err(|e| Refusal((&e).into(), e.to_string()))?;
    Ok(Checked { partitions, configs, effective })
}

/// The configs a created topic answers with from v5 on (KIP-525), as
/// DescribeConfigs lists them; older versions do not encode the field.
fn config_entries(shard: &Shard, checked: &Checked) -> Vec<CreatableTopicConfigs> {
    let Ok(levels) = topic_config_levels(&shard.config, &checked.configs, &checked.effective) else {
        return Vec::new();
    };
    levels
        .map(|(key, levels)| {
            let (_, value, source) = levels.into_iter().next().expect("a config has at least Kafka's default");
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(key))
                .with_value(Some(StrBytes::from_string(value)))
                .with_config_source(source)
        })
        .collect()
}

async fn create_one(shard: &Shard, topic: &CreatableTopic, validate_only: bool) -> CreatableTopicResult {
    let name = topic.name.as_str();
    let result = CreatableTopicResult::default().with_name(topic.name.clone());
    let outcome = match check(shard, topic) {
        Err(refusal) => Err(refusal),
        Ok(_) if shard.snapshot().topic(name).is_some() => {
            Err(Refusal(ErrorCode::TopicAlreadyExists, format!("Topic '{name}' already exists.")))
        }
        Ok(checked) if validate_only => Ok(checked),
        Ok(checked) => {
            let record = create_record(shard, name, checked.partitions, checked.configs.clone());
            shard.change_metadata(record).await.map(|_| checked).map_err(|e| Refusal((&e).into(), e.to_string()))
        }
    };
    match outcome {
        Ok(checked) => {
            let id = shard.snapshot().topic(name).map(|t| t.id).unwrap_or_default();
            let partitions = checked.partitions;
            tracing::info!(topic = name, partitions, validate_only, "topic created");
            result
                .with_topic_id(id)
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(Some(config_entries(shard, &checked)))
        }
        Err(Refusal(code, message)) => {
            tracing::info!(topic = name, ?code, "create topic refused: {message}");
            result.with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)))
        }
    }
}

pub async fn handle(ctx: &Context<'_>, request: CreateTopicsRequest) -> Result<Response, ApiError> {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        topics.push(create_one(ctx.shard, topic, request.validate_only).await);
    }
    ctx.respond(&CreateTopicsResponse::default().with_topics(topics))
}
