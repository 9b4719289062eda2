//! AlterConfigs (the legacy API): replaces a topic's whole set of overrides,
//! so every config not named goes back to the broker default. Also home of
//! what IncrementalAlterConfigs shares with it: checking a resource, the new
//! overrides and the metadata change that makes them take effect on every
//! shard at run time.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response, STEPS_PER_YIELD};
use crate::config::{TopicConfig, TOPIC_CONFIG_KEYS};
use crate::metadata::{self, MetadataRecord};
use crate::runtime::YieldEvery;
use crate::shard::Shard;

// Kafka's ConfigResource types.
pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;
pub(super) const RESOURCE_BROKER_LOGGER: i8 = 8;

/// Why a resource's change is refused: its error code and message.
pub(super) struct Refusal(pub ErrorCode, pub String);

impl Refusal {
    pub(super) fn invalid_config(why: String) -> Refusal {
        Refusal(ErrorCode::InvalidConfig, why)
    }
}

/// The resources a request has named so far: a second change to one is
/// refused, as Kafka's ConfigAdminManager refuses duplicates.
pub(super) type Seen = HashSet<(i8, String)>;

/// The topic a change is for, after the checks every config API shares.
pub(super) fn target_topic<'a>(resource_type: i8, name: &'a str, seen: &mut Seen) -> Result<&'a str, Refusal> {
    if !seen.insert((resource_type, name.to_string())) {
        return Err(Refusal(ErrorCode::InvalidRequest, format!("resource {name} appears twice in the request")));
    }
    match resource_type {
        // Kafka 4 itself lets an admin reconfigure __consumer_offsets, and
        // `cleanup.policy=delete` with `retention.ms=0` then deletes every
        // committed offset. corelog refuses it as a broker-side policy would
        // (alter.config.policy.class.name): POLICY_VIOLATION.
        RESOURCE_TOPIC if metadata::is_internal(name) => Err(Refusal(
            ErrorCode::PolicyViolation,
            format!("topic {name} is internal: its configs are the broker's, not to be altered"),
        )),
        RESOURCE_TOPIC => Ok(name),
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => Err(Refusal(
            ErrorCode::InvalidRequest,
            "dynamic broker configs are not supported: set them with flags at start-up".into(),
        )),
        other => Err(Refusal(ErrorCode::InvalidRequest, format!("unsupported resource type {other}"))),
    }
}

/// Refuses a config name corelog does not know, as Kafka refuses unknown topic configs.
pub(super) fn known_key(key: &str) -> Result<(), Refusal> {
    match TOPIC_CONFIG_KEYS.contains(&key) {
        true => Ok(()),
        false => Err(Refusal::invalid_config(format!("unknown topic config '{key}'"))),
    }
}

/// Refuses a request that names one config twice.
pub(super) fn distinct_keys<'a>(keys: impl Iterator<Item = &'a str>) -> Result<(), Refusal> {
    let mut seen = HashSet::new();
    for key in keys {
        if !seen.insert(key) {
            return Err(Refusal(ErrorCode::InvalidRequest, format!("config '{key}' appears twice")));
        }
    }
    Ok(())
}

/// The topic's current overrides, or UNKNOWN_TOPIC_OR_PARTITION.
pub(super) fn current_overrides(shard: &Shard, topic: &str) -> Result<BTreeMap<String, String>, Refusal> {
    match shard.snapshot().topic(topic) {
        Some(meta) => Ok(meta.configs.clone()),
        None => Err(Refusal(ErrorCode::UnknownTopicOrPartition, format!("topic '{topic}' does not exist"))),
    }
}

/// Checks that `overrides` resolve to a valid topic config, then (unless
/// `validate_only`) persists `record` through shard 0; returns once every
/// shard runs with it.
pub(super) async fn commit(
    shard: &Shard,
    overrides: &BTreeMap<String, String>,
    record: MetadataRecord,
    validate_only: bool,
) -> Result<(), Refusal> {
    TopicConfig::resolve_new(overrides, &shard.config).map_err(|e| Refusal((&e).into(), e.to_string()))?;
    if validate_only {
        return Ok(());
    }
    tracing::info!(?record, "topic configs changed");
    shard.change_metadata(record).await.map_err(|e| Refusal((&e).into(), e.to_string()))
}

/// (error code, message) for a response. Refusals are logged at most once
/// per interval: a request may hold thousands of them.
pub(super) fn outcome(shard: &Shard, result: Result<(), Refusal>, resource: &str) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (ErrorCode::None.code(), None),
        Err(Refusal(code, why)) => {
            if let Some(held_back) = shard.stats.refused_requests.admit(Instant::now()) {
                tracing::warn!(
                    resource,
                    code = code.code(),
                    similar_not_logged = held_back,
                    "config change refused: {why}"
                );
            }
            (code.code(), Some(StrBytes::from_string(why)))
        }
    }
}

async fn alter(
    shard: &Shard,
    resource: &kafka_protocol::messages::alter_configs_request::AlterConfigsResource,
    seen: &mut Seen,
    validate_only: bool,
) -> Result<(), Refusal> {
    let topic = target_topic(resource.resource_type, &resource.resource_name, seen)?;
    distinct_keys(resource.configs.iter().map(|c| c.name.as_str()))?;
    current_overrides(shard, topic)?;
    let mut overrides = BTreeMap::new();
    for config in &resource.configs {
        known_key(&config.name)?;
        let Some(value) = &config.value else {
            return Err(Refusal::invalid_config(format!("null value for topic config '{}'", config.name)));
        };
        overrides.insert(config.name.to_string(), value.to_string());
    }
    let record = MetadataRecord::AlterConfigs { name: topic.to_string(), configs: overrides.clone() };
    commit(shard, &overrides, record, validate_only).await
}

pub async fn handle(ctx: &Context<'_>, request: AlterConfigsRequest) -> Result<Response, ApiError> {
    let mut seen = Seen::new();
    let mut pace = YieldEvery::new(STEPS_PER_YIELD);
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let result = alter(ctx.shard, resource, &mut seen, request.validate_only).await;
        pace.step().await;
        let (error_code, error_message) = outcome(ctx.shard, result, &resource.resource_name);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(error_code)
                .with_error_message(error_message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone()),
        );
    }
    ctx.respond(&AlterConfigsResponse::default().with_responses(responses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_topics_and_repeated_resources_are_refused() {
        let mut seen = Seen::new();
        assert_eq!(target_topic(RESOURCE_TOPIC, "clicks", &mut seen).ok(), Some("clicks"));
        let again = target_topic(RESOURCE_TOPIC, "clicks", &mut seen).err().map(|r| r.0);
        assert_eq!(again, Some(ErrorCode::InvalidRequest));
        let internal = target_topic(RESOURCE_TOPIC, "__consumer_offsets", &mut seen).err().map(|r| r.0);
        assert_eq!(internal, Some(ErrorCode::PolicyViolation));
        assert_eq!(
            target_topic(RESOURCE_TOPIC, "__mine", &mut seen).ok(),
            Some("__mine"),
            "only Kafka's internal topics"
        );
        let many: Vec<String> = (0..100_000).map(|i| format!("k{i}")).collect();
        assert!(distinct_keys(many.iter().map(String::as_str)).is_ok());
        assert_eq!(distinct_keys(["a", "b", "a"].into_iter()).err().map(|r| r.0), Some(ErrorCode::InvalidRequest));
    }
}
