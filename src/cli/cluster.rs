//! `corelog cluster describe`: the nodes of a cluster with their brokers,
//! the controller, and the partitions that are under-replicated (fewer
//! in-sync replicas than replicas) or offline (no leader). Built on the
//! Metadata API alone, so it works against any Kafka cluster too (a Kafka
//! broker is then a node with one broker).

use std::collections::BTreeMap;

use kafka_protocol::messages::MetadataResponse;

use super::ConnectArgs;

/// Kafka broker ids of one corelog node: node id × 1000 + shard.
const BROKERS_PER_NODE: i32 = 1000;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClusterCommand {
    /// Nodes and their brokers, the controller, under-replicated and offline partitions
    Describe {
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

pub fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Describe { connect } => {
            let metadata = connect.cluster()?.metadata(None)?;
            for line in report(&metadata) {
                println!("{line}");
            }
            Ok(())
        }
    }
}

fn report(metadata: &MetadataResponse) -> Vec<String> {
    let mut lines = Vec::new();
    let cluster_id = metadata.cluster_id.as_ref().map_or("(none)".to_string(), |c| c.to_string());
    lines.push(format!("Cluster id: {cluster_id}"));
    let controller = metadata.controller_id.0;
    lines.push(match controller {
        -1 => "Controller: none (no quorum leader)".to_string(),
        id => format!("Controller: node {} (broker {id})", id / BROKERS_PER_NODE),
    });
    let mut nodes: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for b in &metadata.brokers {
        nodes
            .entry(b.node_id.0 / BROKERS_PER_NODE)
            .or_default()
            .push(format!("{} at {}:{}", b.node_id.0, b.host, b.port));
    }
    lines.push(format!("Nodes: {}", nodes.len()));
    for (node, brokers) in &nodes {
        lines.push(format!("  node {node}: brokers {}", brokers.join(", ")));
    }
    let mut under = Vec::new();
    let mut offline = Vec::new();
    let mut topics: Vec<_> = metadata.topics.iter().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    for topic in topics {
        let name = topic.name.as_ref().map_or(String::new(), |n| n.0.to_string());
        for p in &topic.partitions {
            let ids = |list: &[kafka_protocol::messages::BrokerId]| {
                list.iter().map(|b| b.0.to_string()).collect::<Vec<_>>().join(",")
            };
            let line = format!(
                "  {name} partition {}: leader {} replicas [{}] isr [{}]",
                p.partition_index,
                p.leader_id.0,
                ids(&p.replica_nodes),
                ids(&p.isr_nodes)
            );
            if p.leader_id.0 < 0 {
                offline.push(line);
            } else if p.isr_nodes.len() < p.replica_nodes.len() {
                under.push(line);
            }
        }
    }
    lines.push(format!("Under-replicated partitions: {}", under.len()));
    lines.extend(under);
    lines.push(format!("Offline partitions: {}", offline.len()));
    lines.extend(offline);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn a_report_names_nodes_controller_and_unhealthy_partitions() {
        let broker = |id: i32, host: &'static str| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_static_str(host))
                .with_port(9092 + id % 1000)
        };
        let partition = |index, leader, replicas: &[i32], isr: &[i32]| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(leader))
                .with_replica_nodes(replicas.iter().map(|b| BrokerId(*b)).collect())
                .with_isr_nodes(isr.iter().map(|b| BrokerId(*b)).collect())
        };
        let topic = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
            .with_partitions(vec![
                partition(0, 1000, &[1000, 2001, 3000], &[1000, 2001, 3000]),
                partition(1, 2001, &[2001, 3000, 1000], &[2001, 1000]),
                partition(2, -1, &[3000, 1000], &[3000]),
            ]);
        let metadata = MetadataResponse::default()
            .with_cluster_id(Some(StrBytes::from_static_str("abc")))
            .with_controller_id(BrokerId(2000))
            .with_brokers(vec![broker(1000, "h1"), broker(1001, "h1"), broker(2000, "h2"), broker(2001, "h2")])
            .with_topics(vec![topic]);
        let lines = report(&metadata);
        assert_eq!(lines[0], "Cluster id: abc");
        assert_eq!(lines[1], "Controller: node 2 (broker 2000)");
        assert_eq!(lines[2], "Nodes: 2");
        assert_eq!(lines[3], "  node 1: brokers 1000 at h1:9092, 1001 at h1:9093");
        assert_eq!(lines[5], "Under-replicated partitions: 1");
        assert_eq!(lines[6], "  t partition 1: leader 2001 replicas [2001,3000,1000] isr [2001,1000]");
        assert_eq!(lines[7], "Offline partitions: 1");
        assert!(lines[8].starts_with("  t partition 2: leader -1"));
    }
}
