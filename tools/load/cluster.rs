//! The cluster as the load run sees it: brokers, the topic (created if
//! missing) and each partition's leader, and offsets from ListOffsets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use corelog_client::{error_name, Connection};

use crate::versions::{self, Versions};

/// ListOffsets timestamps with a special meaning.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

#[derive(Debug, Clone)]
pub struct Topology {
    pub versions: Versions,
    /// node id → "host:port"
    pub brokers: BTreeMap<i32, String>,
    /// partition index → leader node id
    pub leaders: Vec<i32>,
}

impl Topology {
    pub fn leader_addr(&self, partition: i32) -> &str {
        &self.brokers[&self.leaders[partition as usize]]
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn metadata(client: &mut Connection, versions: &Versions, topic: &str) -> Result<MetadataResponse> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name(topic)))]))
        .with_allow_auto_topic_creation(false);
    Ok(client.send_at(&request, versions.metadata)?)
}

/// node id -> "host:port" of every broker a Metadata answer names.
fn brokers_of(response: &MetadataResponse) -> BTreeMap<i32, String> {
    response.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port))).collect()
}

/// Each partition's leader id in a Metadata answer (-1: none named, or an
/// error for that partition, such as LEADER_NOT_AVAILABLE during an election).
fn leaders_of(partitions: &[kafka_protocol::messages::metadata_response::MetadataResponsePartition]) -> Vec<i32> {
    let mut leaders = vec![-1; partitions.len()];
    for p in partitions {
        if let Some(slot) = leaders.get_mut(p.partition_index as usize) {
            *slot = if p.error_code == 0 { p.leader_id.0 } else { -1 };
        }
    }
    leaders
}

/// Connects to the first of a comma-separated list of brokers that answers.
pub fn connect_any(servers: &str, client_id: &str) -> Result<Connection> {
    let mut last = None;
    for addr in servers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match versions::connect(addr, client_id) {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e.context(format!("connecting to {addr}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no broker address in {servers:?}")))
}

/// The topic's brokers and leaders now, asked of `client` (leader changes:
/// `route::Router`).
pub fn refresh(client: &mut Connection, versions: &Versions, topic: &str) -> Result<Topology> {
    let response = metadata(client, versions, topic)?;
    let t = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .ok_or_else(|| anyhow!("Metadata for {topic} did not mention the topic"))?;
    if t.error_code != 0 {
        bail!("Metadata for {topic}: {}", error_name(t.error_code));
    }
    Ok(Topology { versions: *versions, brokers: brokers_of(&response), leaders: leaders_of(&t.partitions) })
}

/// How the topic is created when it is missing.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication_factor: i16,
    /// (name, value) topic configs, e.g. min.insync.replicas.
    pub configs: Vec<(String, String)>,
}

/// Connects to one of the bootstrap servers (comma-separated), creates the
/// topic if it is missing and waits until every partition has a leader.
pub fn discover(bootstrap: &str, client_id: &str, topic: &str, new: &NewTopic) -> Result<Topology> {
    let partitions = new.partitions;
    let mut client = connect_any(bootstrap, client_id)?;
    let versions = versions::versions(&client)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut created = false;
    loop {
        let response = metadata(&mut client, &versions, topic)?;
        let brokers = brokers_of(&response);
        let t = response
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
            .ok_or_else(|| anyhow!("Metadata for {topic} did not mention the topic"))?;
        match t.error_code {
            0 if !t.partitions.is_empty() => {
                let leaders = leaders_of(&t.partitions);
                if leaders.iter().all(|l| brokers.contains_key(l)) {
                    if !created && leaders.len() as i32 != partitions {
                        eprintln!(
                            "corelog-load: topic {topic} exists with {} partitions (asked for {partitions}): using {}",
                            leaders.len(),
                            leaders.len()
                        );
                    }
                    let topology = Topology { versions, brokers, leaders };
                    if created {
                        wait_served(&topology, client_id, topic, deadline)?;
                    }
                    return Ok(topology);
                }
            }
            3 if !created => {
                if versions.create_topics < 0 {
                    bail!("topic {topic} does not exist and the broker does not serve CreateTopics");
                }
                let controller = response.controller_id.0;
                let addr = brokers.get(&controller).cloned().unwrap_or_else(|| client.addr().to_string());
                create_topic(&addr, client_id, &versions, topic, new)?;
                eprintln!("corelog-load: created topic {topic} with {partitions} partitions");
                created = true;
            }
            0 | 3 | 5 => {}
            code => bail!("Metadata for {topic}: {}", error_name(code)),
        }
        if Instant::now() > deadline {
            bail!("topic {topic} has no leader for every partition after 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create_topic(addr: &str, client_id: &str, versions: &Versions, topic: &str, new: &NewTopic) -> Result<()> {
    let mut client = versions::connect(addr, client_id)?;
    let configs = new
        .configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(new.partitions)
            .with_replication_factor(new.replication_factor)
            .with_configs(configs)])
        .with_timeout_ms(30_000);
    let response: CreateTopicsResponse = client.send_at(&request, versions.create_topics)?;
    for t in &response.topics {
        // TOPIC_ALREADY_EXISTS: another run (or client) won the race; fine.
        if t.error_code != 0 && t.error_code != 36 {
            let message = t.error_message.as_ref().map(|m| m.as_str().to_string()).unwrap_or_default();
            bail!("CreateTopics {topic}: {} {message}", error_name(t.error_code));
        }
    }
    Ok(())
}

/// Kafka names a new partition's leader in Metadata before that leader
/// serves it: its metadata cache takes the change before its replica manager
/// does, and produce in between gets NOT_LEADER_OR_FOLLOWER. Every client
/// retries that; this tool counts it as an error, so after creating a topic
/// it waits until every leader answers ListOffsets for its partitions.
fn wait_served(topology: &Topology, client_id: &str, topic: &str, deadline: Instant) -> Result<()> {
    loop {
        let answers = offsets_at(topology, client_id, topic, LATEST)?;
        let Some((p, code)) = answers.iter().enumerate().find_map(|(p, (code, _))| (*code != 0).then_some((p, *code)))
        else {
            return Ok(());
        };
        if !LEADER_PENDING.contains(&code) {
            bail!("ListOffsets {topic}/{p}: {}", error_name(code));
        }
        if Instant::now() > deadline {
            bail!("{topic}/{p} is not served by its leader after 30 s: {}", error_name(code));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Error codes of a partition whose leader has not taken it up yet:
/// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER.
const LEADER_PENDING: [i16; 3] = [3, 5, 6];

/// The offset of each partition at `timestamp` (EARLIEST or LATEST), asking each leader.
pub fn list_offsets(topology: &Topology, client_id: &str, topic: &str, timestamp: i64) -> Result<Vec<i64>> {
    let answers = offsets_at(topology, client_id, topic, timestamp)?;
    if let Some((p, (code, _))) = answers.iter().enumerate().find(|(_, (code, _))| *code != 0) {
        bail!("ListOffsets {topic}/{p}: {}", error_name(*code));
    }
    if let Some(p) = answers.iter().position(|(_, o)| *o < 0) {
        bail!("ListOffsets gave no offset for {topic}/{p}");
    }
    Ok(answers.into_iter().map(|(_, o)| o).collect())
}

/// Each partition's (error code, offset at `timestamp`), asking each leader;
/// a partition its leader did not mention has offset -1.
fn offsets_at(topology: &Topology, client_id: &str, topic: &str, timestamp: i64) -> Result<Vec<(i16, i64)>> {
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (p, leader) in topology.leaders.iter().enumerate() {
        by_leader.entry(*leader).or_default().push(p as i32);
    }
    let mut answers = vec![(0i16, -1i64); topology.leaders.len()];
    for (leader, partitions) in by_leader {
        let mut client = versions::connect(&topology.brokers[&leader], client_id)?;
        let request =
            ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| ListOffsetsPartition::default().with_partition_index(*p).with_timestamp(timestamp))
                        .collect(),
                )]);
        let response: ListOffsetsResponse = client.send_at(&request, topology.versions.list_offsets)?;
        for t in &response.topics {
            for p in &t.partitions {
                if let Some(slot) = answers.get_mut(p.partition_index as usize) {
                    *slot = (p.error_code, p.offset);
                }
            }
        }
    }
    Ok(answers)
}
