//! `corelog groups reset-offsets`: plan new committed offsets, and commit
//! them with --execute, for a group without members.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;

use corelog_client::requests::{EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use corelog_client::Cluster;

use super::coordinator::{commit_offsets, describe_group, on_coordinator};
use super::offsets::{list_offsets, partition_leaders};
use super::{Partition, ResetTarget, TopicSpec};
use crate::cli::table::table;

/// Group states in which offsets may be reset (no members).
const INACTIVE_STATES: [&str; 2] = ["Empty", "Dead"];

/// The partitions `specs` name, checked against the topics' metadata, with
/// their leaders.
fn resolve_partitions(cluster: &mut Cluster, specs: &[TopicSpec]) -> anyhow::Result<BTreeMap<Partition, i32>> {
    let topics: Vec<String> = specs.iter().map(|s| s.topic.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let leaders = partition_leaders(cluster, &topics)?;
    let mut resolved = BTreeMap::new();
    for spec in specs {
        let topic = match leaders.get(&spec.topic) {
            Some(Ok(topic)) => topic,
            Some(Err(error)) => bail!("{}: {error}", spec.topic),
            None => bail!("{}: UNKNOWN_TOPIC_OR_PARTITION", spec.topic),
        };
        if topic.is_empty() {
            bail!("{}: UNKNOWN_TOPIC_OR_PARTITION: the topic has no partitions", spec.topic);
        }
        let indexes: Vec<i32> = match &spec.partitions {
            None => topic.keys().copied().collect(),
            Some(wanted) => wanted.clone(),
        };
        for index in indexes {
            let Some(leader) = topic.get(&index) else {
                bail!(
                    "{} partition {index}: UNKNOWN_TOPIC_OR_PARTITION (the topic has {} partitions)",
                    spec.topic,
                    topic.len()
                );
            };
            resolved.insert((spec.topic.clone(), index), *leader);
        }
    }
    Ok(resolved)
}

/// The new offset of each partition.
fn plan_offsets(
    cluster: &mut Cluster,
    partitions: &BTreeMap<Partition, i32>,
    target: ResetTarget,
) -> anyhow::Result<BTreeMap<Partition, i64>> {
    let mut asked = |timestamp| -> anyhow::Result<BTreeMap<Partition, i64>> {
        let mut offsets = BTreeMap::new();
        for (p, offset) in list_offsets(cluster, partitions, timestamp) {
            let offset = offset.map_err(|why| anyhow!("{} partition {}: {why}", p.0, p.1))?;
            offsets.insert(p, offset);
        }
        Ok(offsets)
    };
    match target {
        ResetTarget::Earliest => asked(EARLIEST_TIMESTAMP),
        ResetTarget::Latest => asked(LATEST_TIMESTAMP),
        ResetTarget::Offset(offset) => {
            let start = asked(EARLIEST_TIMESTAMP)?;
            let end = asked(LATEST_TIMESTAMP)?;
            Ok(start
                .into_iter()
                .map(|(p, start)| {
                    let end = end.get(&p).copied().unwrap_or(i64::MAX);
                    let clamped = clamp_offset(offset, start, end);
                    if clamped != offset {
                        eprintln!(
                            "Warning: {} partition {}: offset {offset} is outside {start}..={end}; using {clamped}",
                            p.0, p.1
                        );
                    }
                    (p, clamped)
                })
                .collect())
        }
        ResetTarget::Datetime(ms) => {
            let at = asked(ms)?;
            let end = asked(LATEST_TIMESTAMP)?;
            Ok(at
                .into_iter()
                .map(|(p, offset)| {
                    // No record at or after the time: the log end.
                    let offset = if offset < 0 { end.get(&p).copied().unwrap_or(offset) } else { offset };
                    (p, offset)
                })
                .collect())
        }
    }
}

/// `--to-offset`, kept within the log, as Kafka does.
pub fn clamp_offset(offset: i64, start: i64, end: i64) -> i64 {
    offset.max(start).min(end.max(start))
}

/// Refuses to touch a group that has members.
fn check_inactive(described: &DescribedGroup, group: &str) -> anyhow::Result<()> {
    let state = described.group_state.to_string();
    if INACTIVE_STATES.contains(&state.as_str()) {
        return Ok(());
    }
    bail!("group {group} has active members; stop them first (state: {state})")
}

pub(super) fn reset_offsets(
    cluster: &mut Cluster,
    group: &str,
    specs: &[TopicSpec],
    target: ResetTarget,
    execute: bool,
) -> anyhow::Result<()> {
    let partitions = resolve_partitions(cluster, specs)?;
    let plan = on_coordinator(cluster, group, |cluster, coordinator| {
        check_inactive(&describe_group(cluster.node(coordinator.node_id)?, group)?, group)?;
        let plan = plan_offsets(cluster, &partitions, target)?;
        if execute {
            commit_offsets(cluster.node(coordinator.node_id)?, group, &plan)?;
        }
        Ok(plan)
    })?;
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|((topic, index), offset)| vec![topic.clone(), index.to_string(), offset.to_string()])
        .collect();
    for line in table(&["TOPIC", "PARTITION", "NEW-OFFSET"], &rows) {
        println!("{line}");
    }
    if !execute {
        eprintln!("Dry run: nothing was committed. Add --execute to commit these offsets for group {group}.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_offset_is_kept_within_the_log() {
        assert_eq!(clamp_offset(5, 0, 10), 5);
        assert_eq!(clamp_offset(50, 0, 10), 10);
        assert_eq!(clamp_offset(2, 4, 10), 4);
        assert_eq!(clamp_offset(3, 4, 4), 4);
    }
}
