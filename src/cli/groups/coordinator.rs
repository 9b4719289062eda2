//! Requests to a group's coordinator: finding it (again, when it moves),
//! DescribeGroups, OffsetFetch, OffsetCommit and DeleteGroups.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, OffsetCommitRequest,
    OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use corelog_client::requests::topic_name;
use corelog_client::{Broker, Cluster, Connection, KafkaError};

use super::Partition;

/// FindCoordinator key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// Error codes after which the coordinator is looked up again.
const COORDINATOR_ERRORS: [ResponseError; 3] =
    [ResponseError::CoordinatorLoadInProgress, ResponseError::CoordinatorNotAvailable, ResponseError::NotCoordinator];
/// How often a coordinator is looked up before giving up, and the pauses.
const COORDINATOR_ATTEMPTS: u32 = 8;
const RETRY_DELAY_MIN: Duration = Duration::from_millis(100);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(1);
/// A "simple" commit: not from a group member.
const GENERATION_NONE: i32 = -1;

fn is_coordinator_code(code: i16) -> bool {
    COORDINATOR_ERRORS.iter().any(|error| error.code() == code)
}

fn kafka_code(error: &anyhow::Error) -> Option<i16> {
    error.chain().find_map(|cause| cause.downcast_ref::<KafkaError>()).map(|e| e.code)
}

fn is_coordinator_error(error: &anyhow::Error) -> bool {
    kafka_code(error).is_some_and(is_coordinator_code)
}

pub(super) fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

/// The node id of `group`'s coordinator, which becomes reachable through
/// `cluster.node`.
fn find_coordinator(cluster: &mut Cluster, group: &str) -> anyhow::Result<Broker> {
    let connection = cluster.bootstrap();
    let version = connection.version(ApiKey::FindCoordinator)?;
    let mut request = FindCoordinatorRequest::default();
    request.key_type = KEY_TYPE_GROUP;
    // v4 batches keys; earlier versions take one key.
    if version >= 4 {
        request.coordinator_keys = vec![StrBytes::from_string(group.to_string())];
    } else {
        request.key = StrBytes::from_string(group.to_string());
    }
    let response = connection.send_at(&request, version).context("FindCoordinator")?;
    let coordinator = if version >= 4 {
        let found = response.coordinators.iter().find(|c| c.key.as_str() == group);
        let c = found.ok_or_else(|| anyhow!("FindCoordinator response has no answer for {group}"))?;
        KafkaError::check(c.error_code, c.error_message.as_ref())?;
        Broker { node_id: c.node_id.0, host: c.host.to_string(), port: c.port }
    } else {
        KafkaError::check(response.error_code, response.error_message.as_ref())?;
        Broker { node_id: response.node_id.0, host: response.host.to_string(), port: response.port }
    };
    cluster.add_broker(coordinator.clone());
    Ok(coordinator)
}

/// Runs `op` against `group`'s coordinator. When the coordinator is not
/// known yet, loading, or moved (COORDINATOR_NOT_AVAILABLE,
/// COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR), looks it up again after a
/// brief pause, a few times.
pub(super) fn on_coordinator<T>(
    cluster: &mut Cluster,
    group: &str,
    mut op: impl FnMut(&mut Cluster, &Broker) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut delay = RETRY_DELAY_MIN;
    let mut attempt = 1;
    loop {
        let result = find_coordinator(cluster, group).and_then(|coordinator| op(cluster, &coordinator));
        match result {
            Err(error) if attempt < COORDINATOR_ATTEMPTS && is_coordinator_error(&error) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(RETRY_DELAY_MAX);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// DescribeGroups for one group, on its coordinator.
pub(super) fn describe_group(connection: &mut Connection, group: &str) -> anyhow::Result<DescribedGroup> {
    let mut request = DescribeGroupsRequest::default();
    request.groups = vec![group_id(group)];
    let response = connection.send(request).context("DescribeGroups")?;
    let described = response.groups.into_iter().find(|g| g.group_id.0.as_str() == group);
    let described = described.ok_or_else(|| anyhow!("DescribeGroups response has no answer for {group}"))?;
    KafkaError::check(described.error_code, described.error_message.as_ref())?;
    Ok(described)
}

/// Committed offsets of every partition of `group`, by (topic, partition).
pub(super) fn fetch_committed(
    connection: &mut Connection,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let version = connection.version(ApiKey::OffsetFetch)?;
    let mut request = OffsetFetchRequest::default();
    // v8 batches groups; null topics (v2+) means every topic.
    if version >= 8 {
        let mut g = OffsetFetchRequestGroup::default();
        g.group_id = group_id(group);
        g.topics = None;
        request.groups = vec![g];
    } else {
        request.group_id = group_id(group);
        request.topics = None;
    }
    let response = connection.send_at(&request, version).context("OffsetFetch")?;
    let mut committed = BTreeMap::new();
    let mut note = |topic: &str, partition: i32, offset: i64, error_code: i16| match KafkaError::check(error_code, None)
    {
        Ok(()) if offset >= 0 => {
            committed.insert((topic.to_string(), partition), offset);
        }
        Ok(()) => {}
        Err(error) => eprintln!("Warning: committed offset of {topic} partition {partition}: {error}"),
    };
    if version >= 8 {
        let found = response.groups.iter().find(|g| g.group_id.0.as_str() == group);
        let g = found.ok_or_else(|| anyhow!("OffsetFetch response has no answer for {group}"))?;
        KafkaError::check(g.error_code, None)?;
        for topic in &g.topics {
            for p in &topic.partitions {
                note(topic.name.0.as_str(), p.partition_index, p.committed_offset, p.error_code);
            }
        }
    } else {
        KafkaError::check(response.error_code, None)?;
        for topic in &response.topics {
            for p in &topic.partitions {
                note(topic.name.0.as_str(), p.partition_index, p.committed_offset, p.error_code);
            }
        }
    }
    Ok(committed)
}

pub(super) fn commit_offsets(
    connection: &mut Connection,
    group: &str,
    offsets: &BTreeMap<Partition, i64>,
) -> anyhow::Result<()> {
    let version = connection.version(ApiKey::OffsetCommit)?;
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((topic, index), offset) in offsets {
        let mut partition = OffsetCommitRequestPartition::default();
        partition.partition_index = *index;
        partition.committed_offset = *offset;
        partition.committed_leader_epoch = -1;
        partition.committed_metadata = Some(StrBytes::from_static_str(""));
        by_topic.entry(topic).or_default().push(partition);
    }
    let mut request = OffsetCommitRequest::default();
    request.group_id = group_id(group);
    request.generation_id_or_member_epoch = GENERATION_NONE;
    request.member_id = StrBytes::from_static_str("");
    request.group_instance_id = None;
    request.retention_time_ms = -1;
    request.topics = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            let mut topic = OffsetCommitRequestTopic::default();
            topic.name = topic_name(name);
            topic.partitions = partitions;
            topic
        })
        .collect();
    let response = connection.send_at(&request, version).context("OffsetCommit")?;
    let mut failures = Vec::new();
    let mut coordinator_error = None;
    for topic in &response.topics {
        for p in &topic.partitions {
            if let Err(error) = KafkaError::check(p.error_code, None) {
                if is_coordinator_code(error.code) {
                    coordinator_error = Some(error.clone());
                }
                failures.push(format!("{} partition {}: {error}", topic.name.0, p.partition_index));
            }
        }
    }
    if let Some(error) = coordinator_error {
        return Err(anyhow::Error::new(error).context(failures.join("\n")));
    }
    match failures.len() {
        0 => Ok(()),
        _ => bail!("{}", failures.join("\n")),
    }
}

fn delete_group(cluster: &mut Cluster, group: &str) -> anyhow::Result<()> {
    on_coordinator(cluster, group, |cluster, coordinator| {
        let mut request = DeleteGroupsRequest::default();
        request.groups_names = vec![group_id(group)];
        let response = cluster.node(coordinator.node_id)?.send(request).context("DeleteGroups")?;
        let result = response.results.iter().find(|r| r.group_id.0.as_str() == group);
        let result = result.ok_or_else(|| anyhow!("DeleteGroups response has no answer for {group}"))?;
        Ok(KafkaError::check(result.error_code, None)?)
    })
}

pub(super) fn delete(cluster: &mut Cluster, groups: &[String]) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for group in groups {
        match delete_group(cluster, group) {
            Ok(()) => println!("Deleted group {group}."),
            Err(error) => failures.push(format!("{group}: {error:#}")),
        }
    }
    match failures.len() {
        0 => Ok(()),
        _ => bail!("{}", failures.join("\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_codes_are_found_through_context() {
        let error = anyhow::Error::new(KafkaError { code: ResponseError::NotCoordinator.code(), message: None })
            .context("DescribeGroups");
        assert!(is_coordinator_error(&error));
        let other = anyhow::Error::new(KafkaError { code: 68, message: None });
        assert!(!is_coordinator_error(&other));
        assert_eq!(other.to_string(), "NON_EMPTY_GROUP");
        assert!(!is_coordinator_error(&anyhow!("plain")));
    }
}
