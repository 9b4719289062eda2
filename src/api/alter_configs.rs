//! AlterConfigs (the legacy API): replaces a topic's whole set of overrides,
//! so every config not named goes back to the broker default. Also home of
//! what IncrementalAlterConfigs shares with it: checking a resource, the new
//! overrides and the metadata change that makes them take effect on every
//! shard at run time.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response};
use crate::config::{TopicConfig, TOPIC_CONFIG_KEYS};
use crate::metadata::MetadataRecord;
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

/// The topic a change is for, after the checks every config API shares.
pub(super) fn target_topic<'a>(
    resource_type: i8,
    name: &'a str,
    seen: &mut Vec<(i8, String)>,
) -> Result<&'a str, Refusal> {
    if seen.iter().any(|(t, n)| *t == resource_type && n == name) {
        return Err(Refusal(ErrorCode::InvalidRequest, format!("resource {name} appears twice in the request")));
    }
    seen.push((resource_type, name.to_string()));
    match resource_type {
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
    let mut seen: Vec<&str> = Vec::new();
    for key in keys {
        if seen.contains(&key) {
            return Err(Refusal(ErrorCode::InvalidRequest, format!("config '{key}' appears twice")));
        }
        seen.push(key);
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

/// (error code, message) for a response.
pub(super) fn outcome(result: Result<(), Refusal>, resource: &str) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (ErrorCode::None.code(), None),
        Err(Refusal(code, why)) => {
            tracing::warn!(resource, code = code.code(), "config change refused: {why}");
            (code.code(), Some(StrBytes::from_string(why)))
        }
    }
}

async fn alter(
    shard: &Shard,
    resource: &kafka_protocol::messages::alter_configs_request::AlterConfigsResource,
    seen: &mut Vec<(i8, String)>,
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
    let mut seen = Vec::new();
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let result = alter(ctx.shard, resource, &mut seen, request.validate_only).await;
        let (error_code, error_message) = outcome(result, &resource.resource_name);
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
