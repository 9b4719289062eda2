//! CreateTopics, and the auto-creation that Metadata and Produce trigger.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

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
    let partitions = (0..partitions).map(|p| shard.node.place(name, p)).collect();
    MetadataRecord::CreateTopic { name: name.into(), id: uuid::Uuid::new_v4(), partitions, configs }
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

/// What a request may still create: the partitions it has validated so far
/// count against `max.partitions` as if they had been created, so a
/// validate-only request (which creates nothing but answers each topic's
/// configs) is bounded as a real one is.
struct Budget {
    validated_partitions: usize,
}

impl Budget {
    /// `checked`, if its partitions fit beside those held and those this
    /// request validated before it; else the refusal its creation would get.
    fn validate(&mut self, shard: &Shard, checked: Checked) -> Result<Checked, Refusal> {
        let held = shard.snapshot().partitions_held() + self.validated_partitions;
        let (asked, max) = (checked.partitions as usize, shard.config.partitions_max());
        if held + asked > max {
            let error = metadata::MetadataError::TooManyPartitions { held, asked, max };
            return Err(Refusal((&error).into(), error.to_string()));
        }
        self.validated_partitions += asked;
        Ok(checked)
    }
}

async fn create_one(
    shard: &Shard,
    topic: &CreatableTopic,
    validate_only: bool,
    budget: &mut Budget,
) -> CreatableTopicResult {
    let name = topic.name.as_str();
    let result = CreatableTopicResult::default().with_name(topic.name.clone());
    let outcome = match check(shard, topic) {
        Err(refusal) => Err(refusal),
        Ok(_) if shard.snapshot().topic(name).is_some() => {
            Err(Refusal(ErrorCode::TopicAlreadyExists, format!("Topic '{name}' already exists.")))
        }
        Ok(checked) if validate_only => budget.validate(shard, checked),
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
        Err(Refusal(code, message)) => refused(shard, result, name, code, message),
    }
}

/// A refused topic: the error in the answer, a log line per interval (a
/// request may name a hundred thousand topics).
fn refused(
    shard: &Shard,
    result: CreatableTopicResult,
    name: &str,
    code: ErrorCode,
    message: String,
) -> CreatableTopicResult {
    if let Some(held_back) = shard.stats.refused_requests.admit(Instant::now()) {
        tracing::info!(topic = name, ?code, similar_not_logged = held_back, "create topic refused: {message}");
    }
    result.with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)))
}

/// Every entry of a topic named more than once is refused, as Kafka refuses
/// them, before any is created.
pub async fn handle(ctx: &Context<'_>, request: CreateTopicsRequest) -> Result<Response, ApiError> {
    let mut seen = HashSet::new();
    let duplicates: HashSet<&str> =
        request.topics.iter().map(|t| t.name.as_str()).filter(|name| !seen.insert(*name)).collect();
    let mut budget = Budget { validated_partitions: 0 };
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.as_str();
        topics.push(match duplicates.contains(name) {
            true => {
                let result = CreatableTopicResult::default().with_name(topic.name.clone());
                let why = format!("topic '{name}' is named more than once in the request");
                refused(ctx.shard, result, name, ErrorCode::InvalidRequest, why)
            }
            false => create_one(ctx.shard, topic, request.validate_only, &mut budget).await,
        });
    }
    ctx.respond(&CreateTopicsResponse::default().with_topics(topics))
}
