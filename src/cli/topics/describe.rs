//! `corelog topics describe`: each topic's partitions, leaders, offsets and
//! configs, printed as kafka-topics.sh does.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::metadata_response::{MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::protocol::StrBytes;

use corelog_client::requests::{list_offsets_request, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use corelog_client::{Cluster, KafkaError};

use super::{is_internal, RESOURCE_TYPE_TOPIC};
use crate::cli::REQUEST_TIMEOUT_MS;

/// DescribeConfigs config source of a value nobody set.
const CONFIG_SOURCE_DEFAULT: i8 = 5;

/// Log start and end offset of one partition, or why they are unknown.
type Offsets = Result<(i64, i64), String>;

pub(super) fn describe(cluster: &mut Cluster, names: &[String], include_internal: bool) -> anyhow::Result<()> {
    let report = describe_report(cluster, names, include_internal)?;
    for line in &report.lines {
        println!("{line}");
    }
    match report.failures.len() {
        0 => Ok(()),
        _ => bail!("{}", report.failures.join("\n")),
    }
}

/// What `describe` prints, and the topics it could not describe.
pub(super) struct DescribeReport {
    pub(super) lines: Vec<String>,
    pub(super) failures: Vec<String>,
}

pub(super) fn describe_report(
    cluster: &mut Cluster,
    names: &[String],
    include_internal: bool,
) -> anyhow::Result<DescribeReport> {
    let requested = (!names.is_empty()).then_some(names);
    let metadata = cluster.metadata(requested)?;
    let mut failures = Vec::new();
    let mut topics = Vec::new();
    for topic in metadata.topics {
        match KafkaError::check(topic.error_code, None) {
            Err(error) => failures.push(format!("{}: {error}", topic_string(&topic))),
            Ok(()) if requested.is_some() || include_internal || !is_internal(&topic) => topics.push(topic),
            Ok(()) => {}
        }
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let offsets = fetch_offsets(cluster, &topics);
    // Configs are extra detail: a broker without DescribeConfigs still gets
    // its partitions described.
    let configs = fetch_configs(cluster, &topics).unwrap_or_else(|error| {
        eprintln!("Warning: {error:#}");
        HashMap::new()
    });
    let lines = topics.iter().flat_map(|t| topic_lines(t, &offsets, configs.get(&topic_string(t)))).collect();
    Ok(DescribeReport { lines, failures })
}

pub(super) fn topic_string(topic: &MetadataResponseTopic) -> String {
    topic.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default()
}

/// Configs per topic name; a topic whose DescribeConfigs failed maps to the error.
type TopicConfigs = HashMap<String, Result<Vec<DescribeConfigsResourceResult>, KafkaError>>;

fn fetch_configs(cluster: &mut Cluster, topics: &[MetadataResponseTopic]) -> anyhow::Result<TopicConfigs> {
    if topics.is_empty() {
        return Ok(HashMap::new());
    }
    let mut request = DescribeConfigsRequest::default();
    request.resources = topics.iter().map(|t| config_resource(&topic_string(t))).collect();
    let response = cluster.bootstrap().send(request).context("DescribeConfigs")?;
    let mut configs = HashMap::new();
    for result in response.results {
        let outcome = KafkaError::check(result.error_code, result.error_message.as_ref());
        let mut entries = result.configs;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        configs.insert(result.resource_name.to_string(), outcome.map(|()| entries));
    }
    Ok(configs)
}

fn config_resource(name: &str) -> DescribeConfigsResource {
    let mut resource = DescribeConfigsResource::default();
    resource.resource_type = RESOURCE_TYPE_TOPIC;
    resource.resource_name = StrBytes::from_string(name.to_string());
    // Null asks for every config of the resource.
    resource.configuration_keys = None;
    resource
}

/// Log start and end offsets of every partition, asked of each partition's
/// leader, one request pair per leader.
fn fetch_offsets(cluster: &mut Cluster, topics: &[MetadataResponseTopic]) -> HashMap<(String, i32), Offsets> {
    let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    let mut offsets = HashMap::new();
    for topic in topics {
        for partition in &topic.partitions {
            let key = (topic_string(topic), partition.partition_index);
            match partition.leader_id.0 {
                leader if leader >= 0 => by_leader.entry(leader).or_default().push(key),
                _ => {
                    offsets.insert(key, Err("no leader".to_string()));
                }
            }
        }
    }
    for (leader, partitions) in by_leader {
        offsets.extend(leader_offsets(cluster, leader, &partitions));
    }
    offsets
}

fn leader_offsets(cluster: &mut Cluster, leader: i32, partitions: &[(String, i32)]) -> HashMap<(String, i32), Offsets> {
    let both = list_offsets(cluster, leader, partitions, EARLIEST_TIMESTAMP).and_then(|start| {
        let end = list_offsets(cluster, leader, partitions, LATEST_TIMESTAMP)?;
        Ok((start, end))
    });
    let (start, end) = match both {
        Ok(both) => both,
        Err(error) => {
            let reason = format!("ListOffsets to broker {leader}: {error:#}");
            eprintln!("Warning: {reason}");
            return partitions.iter().map(|p| (p.clone(), Err(reason.clone()))).collect();
        }
    };
    let offset = |answers: &HashMap<(String, i32), PartitionOffset>, p: &(String, i32)| {
        let answer = answers.get(p).cloned();
        answer.unwrap_or_else(|| Err("not in the ListOffsets response".to_string()))
    };
    let mut offsets = HashMap::new();
    for p in partitions {
        let pair = offset(&start, p).and_then(|s| Ok((s, offset(&end, p)?)));
        if let Err(reason) = &pair {
            eprintln!("Warning: {} partition {}: {reason}", p.0, p.1);
        }
        offsets.insert(p.clone(), pair);
    }
    offsets
}

/// One offset of one partition, or the error the leader answered with.
type PartitionOffset = Result<i64, String>;

/// One ListOffsets request to `leader` for `partitions` at `timestamp`.
fn list_offsets(
    cluster: &mut Cluster,
    leader: i32,
    partitions: &[(String, i32)],
    timestamp: i64,
) -> anyhow::Result<HashMap<(String, i32), PartitionOffset>> {
    let request = list_offsets_request(partitions, timestamp, REQUEST_TIMEOUT_MS);
    let response = cluster.node(leader)?.send(request)?;
    let mut offsets = HashMap::new();
    for topic in response.topics {
        for p in topic.partitions {
            let offset = KafkaError::check(p.error_code, None).map(|()| p.offset).map_err(|e| e.to_string());
            offsets.insert((topic.name.0.to_string(), p.partition_index), offset);
        }
    }
    Ok(offsets)
}

fn topic_lines(
    topic: &MetadataResponseTopic,
    offsets: &HashMap<(String, i32), Offsets>,
    configs: Option<&Result<Vec<DescribeConfigsResourceResult>, KafkaError>>,
) -> Vec<String> {
    let name = topic_string(topic);
    let mut partitions: Vec<&MetadataResponsePartition> = topic.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    let replication = partitions.first().map_or(0, |p| p.replica_nodes.len());
    let overrides = match configs {
        Some(Ok(entries)) => config_overrides(entries),
        Some(Err(error)) => format!("<{error}>"),
        None => String::new(),
    };
    let mut lines = vec![format!(
        "Topic: {name}  TopicId: {}  PartitionCount: {}  ReplicationFactor: {replication}  Configs: {overrides}",
        topic.topic_id,
        partitions.len(),
    )];
    for partition in partitions {
        let key = (name.clone(), partition.partition_index);
        lines.push(partition_line(partition, offsets.get(&key)));
    }
    if let Some(Ok(entries)) = configs {
        lines.extend(entries.iter().map(|e| format!("  Config: {}", config_line(e))));
    }
    lines
}

/// The header's `Configs:` value: like kafka-topics.sh, only values that did
/// not come from the built-in defaults.
fn config_overrides(entries: &[DescribeConfigsResourceResult]) -> String {
    entries
        .iter()
        .filter(|e| e.config_source != CONFIG_SOURCE_DEFAULT)
        .map(|e| format!("{}={}", e.name, config_value(e)))
        .collect::<Vec<_>>()
        .join(",")
}

fn config_value(entry: &DescribeConfigsResourceResult) -> String {
    match (&entry.value, entry.is_sensitive) {
        (_, true) => "<sensitive>".to_string(),
        (Some(value), false) => value.to_string(),
        (None, false) => "null".to_string(),
    }
}

fn config_line(entry: &DescribeConfigsResourceResult) -> String {
    let source = config_source_name(entry.config_source);
    format!("{}={} ({source})", entry.name, config_value(entry))
}

/// Names for DescribeConfigs' config_source values.
fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "topic",
        2 => "dynamic-broker",
        3 => "dynamic-default-broker",
        4 => "static-broker",
        5 => "default",
        6 => "dynamic-broker-logger",
        _ => "unknown",
    }
}

fn partition_line(partition: &MetadataResponsePartition, offsets: Option<&Offsets>) -> String {
    let ids = |nodes: &[kafka_protocol::messages::BrokerId]| {
        let ids: Vec<String> = nodes.iter().map(|n| n.0.to_string()).collect();
        ids.join(",")
    };
    let leader = match partition.leader_id.0 {
        id if id >= 0 => id.to_string(),
        _ => "none".to_string(),
    };
    let (start, end) = match offsets {
        Some(Ok((start, end))) => (start.to_string(), end.to_string()),
        _ => ("?".to_string(), "?".to_string()),
    };
    format!(
        "  Partition: {}  Leader: {leader}  Replicas: {}  Isr: {}  LogStartOffset: {start}  LogEndOffset: {end}",
        partition.partition_index,
        ids(&partition.replica_nodes),
        ids(&partition.isr_nodes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_line_shows_leader_replicas_and_offsets() {
        let mut partition = MetadataResponsePartition::default();
        partition.partition_index = 2;
        partition.leader_id = 1.into();
        partition.replica_nodes = vec![1.into()];
        partition.isr_nodes = vec![1.into()];
        assert_eq!(
            partition_line(&partition, Some(&Ok((0, 42)))),
            "  Partition: 2  Leader: 1  Replicas: 1  Isr: 1  LogStartOffset: 0  LogEndOffset: 42"
        );
        partition.leader_id = (-1).into();
        assert!(partition_line(&partition, None).contains("Leader: none"));
    }

    #[test]
    fn header_shows_only_non_default_configs() {
        let entry = |name: &str, value: &str, source: i8| {
            let mut e = DescribeConfigsResourceResult::default();
            e.name = StrBytes::from_string(name.into());
            e.value = Some(StrBytes::from_string(value.into()));
            e.config_source = source;
            e
        };
        let entries = [entry("retention.ms", "1000", 1), entry("segment.bytes", "1", 5)];
        assert_eq!(config_overrides(&entries), "retention.ms=1000");
        assert_eq!(config_line(&entries[1]), "segment.bytes=1 (default)");
    }
}
