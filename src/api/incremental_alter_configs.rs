//! IncrementalAlterConfigs (KIP-339): sets, deletes, appends to or subtracts
//! from single topic configs, leaving the others as they are. Stored as a
//! delta (`UpdateConfigs`), so two clients changing different configs of one
//! topic at once do not undo each other.

use std::collections::BTreeMap;

use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{commit, current_overrides, distinct_keys, known_key, outcome, target_topic, Refusal, Seen};
use super::{ApiError, Context, Response, STEPS_PER_YIELD};
use crate::config::{TopicConfig, LIST_CONFIG_KEYS};
use crate::metadata::MetadataRecord;
use crate::runtime::YieldEvery;
use crate::shard::Shard;

// Kafka's AlterConfigOp types.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// The value a list config (cleanup.policy) gets from APPEND or SUBTRACT,
/// starting from its effective value.
fn list_value(current: &str, operation: i8, items: &str) -> String {
    let mut list: Vec<&str> = current.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    for item in items.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match operation {
            APPEND if !list.contains(&item) => list.push(item),
            SUBTRACT => list.retain(|have| *have != item),
            _ => {}
        }
    }
    list.join(",")
}

/// The change one config asks for: Some(value) to set, None to delete.
fn change(
    shard: &Shard,
    overrides: &BTreeMap<String, String>,
    config: &AlterableConfig,
) -> Result<Option<String>, Refusal> {
    let key = config.name.as_str();
    known_key(key)?;
    let value = config.value.as_deref();
    match (config.config_operation, value) {
        (DELETE, _) => Ok(None),
        (SET, Some(value)) => Ok(Some(value.to_string())),
        (APPEND | SUBTRACT, Some(items)) if LIST_CONFIG_KEYS.contains(&key) => {
            let effective = TopicConfig::resolve_new(overrides, &shard.config)
                .map_err(|e| Refusal::invalid_config(e.to_string()))?
                .value_of(key)
                .unwrap_or_default();
            Ok(Some(list_value(&effective, config.config_operation, items)))
        }
        (APPEND | SUBTRACT, Some(_)) => {
            Err(Refusal::invalid_config(format!("'{key}' is not a list: it cannot be appended to or subtracted from")))
        }
        (SET | APPEND | SUBTRACT, None) => Err(Refusal::invalid_config(format!("null value for topic config '{key}'"))),
        (other, _) => Err(Refusal::invalid_config(format!("unknown config operation {other} for '{key}'"))),
    }
}

async fn alter(
    shard: &Shard,
    resource: &AlterConfigsResource,
    seen: &mut Seen,
    validate_only: bool,
) -> Result<(), Refusal> {
    let topic = target_topic(resource.resource_type, &resource.resource_name, seen)?;
    distinct_keys(resource.configs.iter().map(|c| c.name.as_str()))?;
    let mut overrides = current_overrides(shard, topic)?;
    let (mut set, mut remove) = (BTreeMap::new(), Vec::new());
    for config in &resource.configs {
        match change(shard, &overrides, config)? {
            Some(value) => {
                set.insert(config.name.to_string(), value);
            }
            None => remove.push(config.name.to_string()),
        }
    }
    overrides.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
    for key in &remove {
        overrides.remove(key);
    }
    let record = MetadataRecord::UpdateConfigs { name: topic.to_string(), set, remove };
    commit(shard, &overrides, record, validate_only).await
}

pub async fn handle(ctx: &Context<'_>, request: IncrementalAlterConfigsRequest) -> Result<Response, ApiError> {
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
    ctx.respond(&IncrementalAlterConfigsResponse::default().with_responses(responses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_operations_keep_items_unique() {
        assert_eq!(list_value("delete", APPEND, "compact"), "delete,compact");
        assert_eq!(list_value("delete,compact", APPEND, "delete"), "delete,compact");
        assert_eq!(list_value("delete,compact", SUBTRACT, "delete"), "compact");
        assert_eq!(list_value("compact", SUBTRACT, "compact"), "");
    }
}
