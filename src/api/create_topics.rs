//! CreateTopics, and the auto-creation that Metadata and Produce trigger.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::topic_config_levels;
use super::{ApiError, Context, ErrorCode, Response};
use crate::cluster::PartitionAssignment;
use crate::config::TopicConfig;
use crate::config::PARTITIONS_PER_TOPIC_MAX;
use crate::metadata::{self, MetadataError, MetadataRecord};
use crate::shard::{ControlError, Shard};

/// Replicas of partitions `first..first + count` of `name`: a single node
/// places one on one of its shards; a cluster spreads `replication_factor`
/// of them over its unfenced nodes, one per node.
pub(super) fn place_partitions(
    shard: &Shard,
    name: &str,
    first: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<PartitionAssignment>, MetadataError> {
    let snapshot = shard.snapshot();
    if snapshot.nodes.is_empty() {
        if replication_factor != 1 {
            return Err(MetadataError::ReplicationFactor { asked: replication_factor, available: 1 });
        }
        return Ok((first..first + count).map(|p| shard.node.place(name, p)).collect());
    }
    metadata::spread_replicas(&snapshot, name, first, count, replication_factor)
}

/// A fresh id for a new topic, as one metadata record.
fn create_record(
    name: &str,
    partitions: Vec<PartitionAssignment>,
    configs: BTreeMap<String, String>,
) -> MetadataRecord {
    MetadataRecord::CreateTopic { name: name.into(), id: uuid::Uuid::new_v4(), partitions, configs }
}

/// Creates `name` with the broker's default partition count and
/// replication factor, as Kafka does for `auto.create.topics.enable`.
/// Losing a race with another creator is fine.
pub async fn auto_create(shard: &Shard, name: &str) -> Result<(), ControlError> {
    metadata::validate_topic_name(name)?;
    let partitions = place_partitions(shard, name, 0, shard.config.num_partitions, default_replication_factor(shard))?;
    let record = create_record(name, partitions, BTreeMap::new());
    match shard.change_metadata(record).await {
        Err(ControlError::Metadata(metadata::MetadataError::TopicExists(_))) | Ok(()) => {
            tracing::info!(topic = name, "topic auto-created");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

struct Refusal(ErrorCode, String);

/// default.replication.factor in a cluster; a single node holds one replica.
fn default_replication_factor(shard: &Shard) -> i16 {
    match shard.snapshot().nodes.is_empty() {
        true => 1,
        false => shard.config.default_replication_factor,
    }
}

/// A topic that may be created: its replicas, the configs it sets, and all
/// its configs in effect.
struct Checked {
    partitions: Vec<PartitionAssignment>,
    replication_factor: i16,
    configs: BTreeMap<String, String>,
    effective: TopicConfig,
}

fn refusal(e: MetadataError) -> Refusal {
    Refusal((&e).into(), e.to_string())
}

/// The partitions of `topic`: its explicit replica assignment (kafka-topics
/// --replica-assignment, in a cluster; Kafka asks the counts to be -1 then)
/// or as many as it asks (the broker's default for -1) placed by the broker.
fn partitions(shard: &Shard, topic: &CreatableTopic) -> Result<Vec<PartitionAssignment>, Refusal> {
    let name = topic.name.as_str();
    if topic.assignments.is_empty() {
        let count = match topic.num_partitions {
            -1 => shard.config.num_partitions,
            n if (1..=PARTITIONS_PER_TOPIC_MAX).contains(&n) => n,
            n => {
                let why = format!("partition count must be between 1 and {}, got {n}", PARTITIONS_PER_TOPIC_MAX);
                return Err(Refusal(ErrorCode::InvalidPartitions, why));
            }
        };
        let factor = match topic.replication_factor {
            -1 => default_replication_factor(shard),
            n => n,
        };
        return place_partitions(shard, name, 0, count, factor).map_err(refusal);
    }
    let invalid = |why: &str| Err(Refusal(ErrorCode::InvalidReplicaAssignment, why.to_string()));
    if shard.snapshot().nodes.is_empty() {
        return invalid(
            "manual replica assignment is not supported on a single node: placement on shards is automatic",
        );
    }
    if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return invalid("with a replica assignment, both numPartitions and replicationFactor must be -1");
    }
    if topic.assignments.len() > PARTITIONS_PER_TOPIC_MAX as usize {
        return Err(Refusal(ErrorCode::InvalidPartitions, format!("at most {PARTITIONS_PER_TOPIC_MAX} partitions")));
    }
    let mut by_partition: Vec<_> = topic.assignments.iter().collect();
    by_partition.sort_by_key(|a| a.partition_index);
    if by_partition.iter().enumerate().any(|(i, a)| a.partition_index != i as i32) {
        return invalid("the assignment must name partitions 0, 1, 2, ... each once");
    }
    let brokers: Vec<Vec<i32>> = by_partition.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect();
    let assignments = metadata::assign_replicas(&shard.snapshot(), 0, &brokers).map_err(refusal)?;
    match assignments.iter().enumerate().find_map(|(p, a)| a.invalid().map(|why| (p, why))) {
        Some((p, why)) => Err(Refusal(ErrorCode::InvalidReplicaAssignment, format!("partition {p}: {why}"))),
        None => Ok(assignments),
    }
}

fn check(shard: &Shard, topic: &CreatableTopic) -> Result<Checked, Refusal> {
    metadata::validate_topic_name(&topic.name).map_err(refusal)?;
    let partitions = partitions(shard, topic)?;
    let replication_factor = partitions.first().map_or(0, |p| p.replicas.len() as i16);
    let configs: BTreeMap<String, String> =
        topic.configs.iter().filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string()))).collect();
    let effective =
        TopicConfig::resolve_new(&configs, &shard.config).map_err(|e| Refusal((&e).into(), e.to_string()))?;
    Ok(Checked { partitions, replication_factor, configs, effective })
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
        let (asked, max) = (checked.partitions.len(), shard.config.partitions_max());
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
            let record = create_record(name, checked.partitions.clone(), checked.configs.clone());
            shard.change_metadata(record).await.map(|_| checked).map_err(|e| Refusal((&e).into(), e.to_string()))
        }
    };
    match outcome {
        Ok(checked) => {
            let id = shard.snapshot().topic(name).map(|t| t.id).unwrap_or_default();
            let partitions = checked.partitions.len() as i32;
            tracing::info!(
                topic = name,
                partitions,
                replication_factor = checked.replication_factor,
                validate_only,
                "topic created"
            );
            result
                .with_topic_id(id)
                .with_num_partitions(partitions)
                .with_replication_factor(checked.replication_factor)
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
