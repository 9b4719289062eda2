//! Partition leaders and offsets (Metadata, ListOffsets), asked of each
//! partition's leader.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;
use corelog_client::requests::{list_offsets_request, LATEST_TIMESTAMP};
use corelog_client::{Cluster, KafkaError};

use super::Partition;
use crate::cli::REQUEST_TIMEOUT_MS;

/// Partition -> leader of each topic, or why the topic has none.
type TopicLeaders = BTreeMap<String, Result<BTreeMap<i32, i32>, KafkaError>>;

/// Leaders of the partitions of `topics`, by topic: partition -> leader id
/// (-1 without leader). A topic the broker does not know maps to its error.
pub(super) fn partition_leaders(cluster: &mut Cluster, topics: &[String]) -> anyhow::Result<TopicLeaders> {
    let mut leaders = BTreeMap::new();
    if topics.is_empty() {
        return Ok(leaders);
    }
    let metadata = cluster.metadata(Some(topics))?;
    for topic in metadata.topics {
        let name = topic.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        let partitions = KafkaError::check(topic.error_code, None)
            .map(|()| topic.partitions.iter().map(|p| (p.partition_index, p.leader_id.0)).collect());
        leaders.insert(name, partitions);
    }
    Ok(leaders)
}

/// ListOffsets at `timestamp` for `partitions`, one request per leader.
/// Offsets are -1 where the broker found none (a timestamp past the end).
pub(super) fn list_offsets(
    cluster: &mut Cluster,
    partitions: &BTreeMap<Partition, i32>,
    timestamp: i64,
) -> BTreeMap<Partition, Result<i64, String>> {
    let mut by_leader: BTreeMap<i32, Vec<&Partition>> = BTreeMap::new();
    let mut offsets = BTreeMap::new();
    for (partition, leader) in partitions {
        match *leader {
            leader if leader >= 0 => by_leader.entry(leader).or_default().push(partition),
            _ => {
                offsets.insert(partition.clone(), Err("no leader".to_string()));
            }
        }
    }
    for (leader, wanted) in by_leader {
        let request = list_offsets_request(wanted.iter().copied(), timestamp, REQUEST_TIMEOUT_MS);
        let answer = cluster.node(leader).and_then(|c| c.send(request)).context("ListOffsets");
        match answer {
            Err(error) => {
                for p in wanted {
                    offsets.insert(p.clone(), Err(format!("broker {leader}: {error:#}")));
                }
            }
            Ok(response) => {
                let mut got: HashMap<Partition, Result<i64, String>> = HashMap::new();
                for topic in response.topics {
                    for p in topic.partitions {
                        let offset =
                            KafkaError::check(p.error_code, None).map(|()| p.offset).map_err(|e| e.to_string());
                        got.insert((topic.name.0.to_string(), p.partition_index), offset);
                    }
                }
                for p in wanted {
                    let offset = got.remove(p).unwrap_or_else(|| Err("not in the ListOffsets response".to_string()));
                    offsets.insert(p.clone(), offset);
                }
            }
        }
    }
    offsets
}

/// Log end offsets of `partitions`; `None` where unknown (with a warning).
pub(super) fn log_end_offsets(
    cluster: &mut Cluster,
    partitions: &BTreeSet<Partition>,
) -> BTreeMap<Partition, Option<i64>> {
    let topics: Vec<String> = partitions.iter().map(|(t, _)| t.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let leaders = match partition_leaders(cluster, &topics) {
        Ok(leaders) => leaders,
        Err(error) => {
            eprintln!("Warning: Metadata: {error:#}");
            return partitions.iter().map(|p| (p.clone(), None)).collect();
        }
    };
    let mut wanted = BTreeMap::new();
    for p in partitions {
        let leader = match leaders.get(&p.0) {
            Some(Ok(topic)) => topic.get(&p.1).copied(),
            Some(Err(error)) => {
                eprintln!("Warning: {}: {error}", p.0);
                continue;
            }
            None => None,
        };
        wanted.insert(p.clone(), leader.unwrap_or(-1));
    }
    let offsets = list_offsets(cluster, &wanted, LATEST_TIMESTAMP);
    partitions
        .iter()
        .map(|p| {
            let end = match offsets.get(p) {
                Some(Ok(offset)) => Some(*offset),
                Some(Err(reason)) => {
                    eprintln!("Warning: log end offset of {} partition {}: {reason}", p.0, p.1);
                    None
                }
                None => None,
            };
            (p.clone(), end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn requests_encode_at_every_supported_version() {
        use kafka_protocol::protocol::Encodable;
        let plan: BTreeMap<Partition, i32> = [(("t".to_string(), 0), 1), (("t".to_string(), 1), 2)].into();
        let wanted: Vec<&Partition> = plan.keys().collect();
        let request = list_offsets_request(wanted.iter().copied(), 1234, REQUEST_TIMEOUT_MS);
        assert_eq!(request.topics.len(), 1);
        for version in 1..=10 {
            request.encode(&mut BytesMut::new(), version).unwrap();
        }
    }
}
