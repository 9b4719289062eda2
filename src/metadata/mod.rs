//! Cluster metadata: topics, their ids, their partitions' replica
//! assignments (`cluster::PartitionAssignment`) and config overrides. Shard 0
//! owns the [`MetadataStore`]; every shard holds an immutable [`Snapshot`]
//! that shard 0 broadcasts after each change.

mod image;
mod meta_properties;
mod migrate;
mod placement;
mod producer_ids;
mod reassignment;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::cluster::{BrokerAddress, NodeId, NodeRegistration, PartitionAssignment, ReplicaPlacement, ShardId};

pub use image::{decode_image, encode_image};
pub use meta_properties::claim as claim_data_dir;
pub use placement::{assign_replicas, spread_replicas};
pub use producer_ids::{ProducerIdBlock, PRODUCER_ID_BLOCK_SIZE};
pub use reassignment::reassign;
pub use store::MetadataStore;

/// Longest topic name Kafka accepts.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

#[derive(Debug, Error)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("invalid topic name '{name}': {why}")]
    InvalidTopicName { name: String, why: &'static str },
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    #[error("topic '{name}' partition {partition}: {why}")]
    InvalidAssignment { name: String, partition: usize, why: &'static str },
    /// The broker would hold more partitions than `max.partitions`.
    #[error("the broker holds {held} partitions and may hold at most {max} (max.partitions); {asked} more refused")]
    TooManyPartitions { held: usize, asked: usize, max: usize },
    #[error("metadata log {context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("metadata log line {line} is corrupt: {why}")]
    Corrupt { line: usize, why: String },
    #[error("{file} is corrupt: {why}")]
    CorruptFile { file: &'static str, why: String },
    #[error("the data directory belongs to node.id {stored}, not {configured}: start with --node-id {stored}, or give node {configured} a data directory of its own")]
    NodeMismatch { stored: NodeId, configured: NodeId },
    /// Every producer id (up to i64::MAX) has been handed out; ids never wrap.
    #[error("every producer id has been handed out")]
    ProducerIdsExhausted,
    #[error("node {0} is not registered")]
    UnknownNode(NodeId),
    /// A change made on a registration the node has since replaced (it restarted).
    #[error("node {node}: broker epoch {got} is stale, the registration is at {current}")]
    StaleNodeEpoch { node: NodeId, got: i64, current: i64 },
    /// A partition change made on an older state of the partition (KRaft's
    /// INVALID_UPDATE_VERSION): the leader must learn the new state first.
    #[error("topic '{name}' partition {partition}: change made on partition epoch {got}, it is at {current}")]
    StalePartitionEpoch { name: String, partition: i32, got: i32, current: i32 },
    /// The cluster id is fixed once, at the quorum's first start.
    #[error("the cluster id is already {0}")]
    ClusterIdSet(String),
    /// A producer id block allocated on an older state (another node took it).
    #[error("producer id block at {got} is stale, the next block starts at {next}")]
    StaleProducerIdBlock { got: i64, next: i64 },
    /// More replicas asked for than there are unfenced nodes to hold them.
    #[error("replication factor {asked} is larger than the {available} unfenced nodes that can hold a replica")]
    ReplicationFactor { asked: i16, available: usize },
    /// A replica assignment naming a broker no registered node has.
    #[error("partition {partition}: broker {broker} is not a shard of a registered node")]
    UnknownBroker { partition: i32, broker: i32 },
    /// A reassignment target that cannot be (KIP-455's INVALID_REPLICA_ASSIGNMENT).
    #[error("topic '{name}' partition {partition}: invalid reassignment: {why}")]
    InvalidReassignment { name: String, partition: i32, why: String },
    /// A reassignment changing the replica count when the request forbids it.
    #[error("topic '{name}' partition {partition}: the replication factor would change from {from} to {to}, which the request does not allow")]
    ReplicationFactorChange { name: String, partition: i32, from: usize, to: usize },
    /// A cancel of a reassignment that is not under way.
    #[error("topic '{name}' partition {partition}: no reassignment is in progress")]
    NoReassignmentInProgress { name: String, partition: i32 },
    #[error("controller snapshot image is corrupt: {0}")]
    CorruptImage(String),
}

impl MetadataRecord {
    /// Partitions this change adds to the broker.
    pub fn added_partitions(&self) -> usize {
        match self {
            MetadataRecord::CreateTopic { partitions, .. } | MetadataRecord::CreatePartitions { partitions, .. } => {
                partitions.len()
            }
            _ => 0,
        }
    }
}

impl Snapshot {
    /// Partitions of every topic, internal ones included.
    pub fn partitions_held(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }
}

/// One change to the cluster's metadata, as stored in the metadata log.
/// `AlterConfigs` replaces a topic's overrides (the AlterConfigs API);
/// `UpdateConfigs` sets some and removes others (IncrementalAlterConfigs), a
/// delta so that concurrent changes to one topic do not undo each other.
/// `partitions` assigns each new partition, in partition order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: Vec<PartitionAssignment>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        partitions: Vec<PartitionAssignment>,
    },
    AlterConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    UpdateConfigs {
        name: String,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    /// A node (re)starts: its addresses and a new broker epoch; it is fenced
    /// until it has caught up (KRaft's RegisterBrokerRecord).
    RegisterNode {
        registration: NodeRegistration,
    },
    /// A node's session expired (or it shut down): it leads nothing and is
    /// not in sync anywhere (the same batch of records moves its partitions).
    FenceNode {
        node: NodeId,
        epoch: i64,
    },
    /// A registered node caught up and heartbeats: it may lead again.
    UnfenceNode {
        node: NodeId,
        epoch: i64,
    },
    /// One partition's new replicas, ISR, leader and epochs (KRaft's
    /// PartitionChangeRecord, as the whole new state): its `partition_epoch`
    /// must be the current one plus one, so a change made on an older state
    /// is refused rather than undoing a newer one.
    ChangePartition {
        name: String,
        partition: i32,
        assignment: PartitionAssignment,
    },
    /// The quorum's first controller names the cluster (Kafka's cluster.id,
    /// fixed for the cluster's life).
    SetClusterId {
        cluster_id: String,
    },
    /// A node became the controller quorum's leader (KRaft's LeaderChangeMessage):
    /// Metadata names it as the controller.
    ChangeController {
        leader: NodeId,
    },
    /// Producer ids `first..first + PRODUCER_ID_BLOCK_SIZE` go to `node`
    /// (KRaft's ProducerIdsRecord): `first` must be the next free id, so two
    /// nodes never get one block.
    AllocateProducerIds {
        node: NodeId,
        first: i64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    /// Each partition's replicas and leader, indexed by partition.
    pub partitions: Vec<PartitionAssignment>,
    pub configs: BTreeMap<String, String>,
}

impl TopicMeta {
    pub fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }

    /// Partition `partition`'s assignment; None if the topic has no such partition.
    pub fn partition(&self, partition: i32) -> Option<&PartitionAssignment> {
        usize::try_from(partition).ok().and_then(|p| self.partitions.get(p))
    }

    pub fn is_internal(&self) -> bool {
        is_internal(&self.name)
    }
}

/// An immutable view of all topics, shared read-only by the shards.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    pub ids: HashMap<Uuid, String>,
    /// Registered nodes (empty on a single node, which knows only itself).
    pub nodes: BTreeMap<NodeId, NodeRegistration>,
    /// Bumped by every applied record, so a shard can tell newer from older.
    pub version: u64,
    /// Cluster mode: the cluster's id, fixed at the quorum's first start.
    pub cluster_id: Option<String>,
    /// Cluster mode: the node whose controller leads the quorum.
    pub controller: Option<NodeId>,
    /// Cluster mode: the first producer id of the next block to allocate.
    pub producer_id_next: i64,
}

impl Snapshot {
    /// Nodes that may hold and lead replicas: registered and not fenced.
    pub fn unfenced_nodes(&self) -> impl Iterator<Item = &NodeRegistration> {
        self.nodes.values().filter(|n| !n.fenced)
    }

    /// The Kafka brokers of the registered, unfenced nodes: one per shard,
    /// at the host and ports each node registered.
    pub fn brokers(&self) -> impl Iterator<Item = BrokerAddress<'_>> {
        self.unfenced_nodes().flat_map(|n| (0..n.shards).map(move |s| node_broker(n, ShardId(s))))
    }

    /// Where clients reach broker `broker_id`, if it is a shard of a registered node.
    pub fn broker_address(&self, broker_id: i32) -> Option<BrokerAddress<'_>> {
        let at = ReplicaPlacement::from_broker_id(broker_id)?;
        let node = self.nodes.get(&at.node)?;
        node.replica(at.shard).map(|_| node_broker(node, at.shard))
    }

    /// Whether the node `node` is registered and unfenced.
    pub fn is_unfenced(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|n| !n.fenced)
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicMeta>> {
        self.ids.get(id).and_then(|n| self.topics.get(n))
    }

    /// Checks a record against the current state without applying it.
    pub fn check(&self, record: &MetadataRecord) -> Result<(), MetadataError> {
        match record {
            MetadataRecord::CreateTopic { name, partitions, .. } => {
                validate_topic_name(name)?;
                if self.topics.contains_key(name) {
                    return Err(MetadataError::TopicExists(name.clone()));
                }
                check_assignments(name, 0, partitions)?;
            }
            MetadataRecord::CreatePartitions { name, partitions } => {
                let topic = self.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
                check_assignments(name, topic.partitions.len(), partitions)?;
            }
            MetadataRecord::DeleteTopic { name }
            | MetadataRecord::AlterConfigs { name, .. }
            | MetadataRecord::UpdateConfigs { name, .. } => {
                if !self.topics.contains_key(name) {
                    return Err(MetadataError::UnknownTopic(name.clone()));
                }
            }
            MetadataRecord::RegisterNode { registration } => {
                if let Some(current) = self.nodes.get(&registration.id).filter(|c| c.epoch >= registration.epoch) {
                    let (node, got, current) = (registration.id, registration.epoch, current.epoch);
                    return Err(MetadataError::StaleNodeEpoch { node, got, current });
                }
            }
            MetadataRecord::FenceNode { node, epoch } | MetadataRecord::UnfenceNode { node, epoch } => {
                let current = self.nodes.get(node).ok_or(MetadataError::UnknownNode(*node))?;
                if current.epoch != *epoch {
                    return Err(MetadataError::StaleNodeEpoch { node: *node, got: *epoch, current: current.epoch });
                }
            }
            MetadataRecord::SetClusterId { .. } => {
                if let Some(id) = &self.cluster_id {
                    return Err(MetadataError::ClusterIdSet(id.clone()));
                }
            }
            MetadataRecord::ChangeController { .. } => {}
            MetadataRecord::AllocateProducerIds { first, .. } => {
                if *first != self.producer_id_next {
                    return Err(MetadataError::StaleProducerIdBlock { got: *first, next: self.producer_id_next });
                }
                if first.checked_add(PRODUCER_ID_BLOCK_SIZE).is_none() {
                    return Err(MetadataError::ProducerIdsExhausted);
                }
            }
            MetadataRecord::ChangePartition { name, partition, assignment } => {
                let topic = self.topics.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
                let current = topic.partition(*partition).ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
                if assignment.partition_epoch != current.partition_epoch + 1 {
                    return Err(MetadataError::StalePartitionEpoch {
                        name: name.clone(),
                        partition: *partition,
                        got: assignment.partition_epoch - 1,
                        current: current.partition_epoch,
                    });
                }
                let epoch_step = assignment.leader_epoch - current.leader_epoch;
                let invalid =
                    |why| MetadataError::InvalidAssignment { name: name.clone(), partition: *partition as usize, why };
                if !(0..=1).contains(&epoch_step) || (assignment.leader != current.leader && epoch_step != 1) {
                    return Err(invalid("a change of leader moves the leader epoch up by one, and only then"));
                }
                if let Some(why) = assignment.invalid() {
                    return Err(invalid(why));
                }
                // KRaft's INELIGIBLE_REPLICA: a replica on a fenced node (dead,
                // or shutting down) does not join an ISR; one already in it may stay.
                let fenced = |r: &ReplicaPlacement| self.nodes.get(&r.node).is_some_and(|n| n.fenced);
                if assignment.isr.iter().any(|r| !current.isr.contains(r) && fenced(r)) {
                    return Err(invalid("a replica on a fenced node cannot join the ISR"));
                }
            }
        }
        Ok(())
    }

    /// Applies a record that `check` accepted.
    pub fn apply(&mut self, record: &MetadataRecord) {
        self.version += 1;
        match record {
            MetadataRecord::CreateTopic { name, id, partitions, configs } => {
                self.ids.insert(*id, name.clone());
                let partitions = partitions.iter().cloned().map(PartitionAssignment::normalized).collect();
                let meta = TopicMeta { name: name.clone(), id: *id, partitions, configs: configs.clone() };
                self.topics.insert(name.clone(), Arc::new(meta));
            }
            MetadataRecord::DeleteTopic { name } => {
                if let Some(t) = self.topics.remove(name) {
                    self.ids.remove(&t.id);
                }
            }
            MetadataRecord::CreatePartitions { name, partitions } => self
                .update(name, |t| t.partitions.extend(partitions.iter().cloned().map(PartitionAssignment::normalized))),
            MetadataRecord::AlterConfigs { name, configs } => self.update(name, |t| t.configs = configs.clone()),
            MetadataRecord::UpdateConfigs { name, set, remove } => self.update(name, |t| {
                t.configs.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                t.configs.retain(|k, _| !remove.contains(k));
            }),
            MetadataRecord::RegisterNode { registration } => {
                self.nodes.insert(registration.id, registration.clone());
            }
            MetadataRecord::FenceNode { node, .. } => self.set_fenced(*node, true),
            MetadataRecord::UnfenceNode { node, .. } => self.set_fenced(*node, false),
            MetadataRecord::ChangePartition { name, partition, assignment } => self.update(name, |t| {
                if let Some(slot) = t.partitions.get_mut(*partition as usize) {
                    *slot = assignment.clone();
                }
            }),
            MetadataRecord::SetClusterId { cluster_id } => self.cluster_id = Some(cluster_id.clone()),
            MetadataRecord::ChangeController { leader } => self.controller = Some(*leader),
            MetadataRecord::AllocateProducerIds { first, .. } => self.producer_id_next = first + PRODUCER_ID_BLOCK_SIZE,
        }
    }

    fn set_fenced(&mut self, node: NodeId, fenced: bool) {
        if let Some(registration) = self.nodes.get_mut(&node) {
            registration.fenced = fenced;
        }
    }

    fn update(&mut self, name: &str, change: impl FnOnce(&mut TopicMeta)) {
        if let Some(t) = self.topics.get_mut(name) {
            change(Arc::make_mut(t));
        }
    }
}

fn node_broker(node: &NodeRegistration, shard: ShardId) -> BrokerAddress<'_> {
    let broker_id = ReplicaPlacement::new(node.id, shard).broker_id();
    BrokerAddress { broker_id, host: &node.host, port: node.port_of(shard) }
}

/// Every assignment of partitions `first..` of `name` leads from one of its replicas.
fn check_assignments(name: &str, first: usize, partitions: &[PartitionAssignment]) -> Result<(), MetadataError> {
    let invalid = |a: &PartitionAssignment| a.clone().normalized().invalid();
    match partitions.iter().enumerate().find_map(|(p, a)| invalid(a).map(|why| (first + p, why))) {
        Some((partition, why)) => Err(MetadataError::InvalidAssignment { name: name.into(), partition, why }),
        None => Ok(()),
    }
}

/// Kafka's topic name rule: 1..=249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
/// Kafka's internal topics (`Topic.INTERNAL_TOPICS`): the broker's own
/// state lives there, so clients may read them but not write, delete, grow
/// or reconfigure them. Other names starting with "__" are ordinary topics,
/// as in Kafka.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state", "__share_group_state"];

pub fn is_internal(topic: &str) -> bool {
    INTERNAL_TOPICS.contains(&topic)
}

pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let invalid = |why| Err(MetadataError::InvalidTopicName { name: name.into(), why });
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return invalid("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are reserved");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{NodeId, NodeRegistration, ReplicaPlacement, ShardId};

    fn on_shard(shard: u16) -> PartitionAssignment {
        PartitionAssignment::single(ReplicaPlacement::new(NodeId(0), ShardId(shard)))
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("user-clicks_v2.x").is_ok());
        for bad in ["", ".", "..", "bad/name", "sp ace", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn snapshot_applies_records() {
        let mut s = Snapshot::default();
        let id = Uuid::new_v4();
        let partitions = vec![on_shard(0), on_shard(1)];
        let create = MetadataRecord::CreateTopic { name: "a".into(), id, partitions, configs: BTreeMap::new() };
        s.check(&create).unwrap();
        s.apply(&create);
        assert!(matches!(s.check(&create), Err(MetadataError::TopicExists(_))));
        s.apply(&MetadataRecord::CreatePartitions { name: "a".into(), partitions: vec![on_shard(0)] });
        assert_eq!(s.topic_by_id(&id).unwrap().partition_count(), 3);
        assert_eq!(s.topic("a").unwrap().partition(1), Some(&on_shard(1)));
        let mut leaderless = on_shard(1);
        leaderless.leader = on_shard(0).leader;
        let grow = MetadataRecord::CreatePartitions { name: "a".into(), partitions: vec![on_shard(0), leaderless] };
        let refused = s.check(&grow);
        assert!(matches!(refused, Err(MetadataError::InvalidAssignment { partition: 4, .. })), "{refused:?}");
        s.apply(&MetadataRecord::DeleteTopic { name: "a".into() });
        assert!(s.topic("a").is_none() && s.ids.is_empty());
    }

    fn registration(node: u32, epoch: i64) -> NodeRegistration {
        let (incarnation, host) = (Uuid::from_u128(epoch as u128), format!("127.0.0.{node}"));
        NodeRegistration {
            id: NodeId(node),
            incarnation,
            epoch,
            host,
            port: 9092,
            shards: 2,
            fenced: true,
            skipped_port: None,
        }
    }

    fn apply(s: &mut Snapshot, record: MetadataRecord) -> Result<(), MetadataError> {
        s.check(&record)?;
        s.apply(&record);
        Ok(())
    }

    #[test]
    fn nodes_register_fence_and_unfence_by_their_broker_epoch() {
        let mut s = Snapshot::default();
        apply(&mut s, MetadataRecord::RegisterNode { registration: registration(1, 10) }).unwrap();
        assert!(s.nodes[&NodeId(1)].fenced, "a node registers fenced");
        apply(&mut s, MetadataRecord::UnfenceNode { node: NodeId(1), epoch: 10 }).unwrap();
        assert!(!s.nodes[&NodeId(1)].fenced);
        let stale = apply(&mut s, MetadataRecord::RegisterNode { registration: registration(1, 10) });
        assert!(matches!(stale, Err(MetadataError::StaleNodeEpoch { got: 10, current: 10, .. })), "{stale:?}");
        apply(&mut s, MetadataRecord::RegisterNode { registration: registration(1, 25) }).unwrap();
        let old_life = apply(&mut s, MetadataRecord::FenceNode { node: NodeId(1), epoch: 10 });
        assert!(matches!(old_life, Err(MetadataError::StaleNodeEpoch { .. })), "{old_life:?}");
        let unknown = apply(&mut s, MetadataRecord::UnfenceNode { node: NodeId(2), epoch: 1 });
        assert!(matches!(unknown, Err(MetadataError::UnknownNode(NodeId(2)))));
    }

    #[test]
    fn a_partition_changes_only_from_its_current_epoch() {
        let at = |node| ReplicaPlacement::new(NodeId(node), ShardId(0));
        let mut s = Snapshot::default();
        let three = PartitionAssignment::led_by_first(vec![at(1), at(2), at(3)]);
        let create = MetadataRecord::CreateTopic {
            name: "t".into(),
            id: Uuid::from_u128(7),
            partitions: vec![three.clone()],
            configs: BTreeMap::new(),
        };
        apply(&mut s, create).unwrap();
        let change = |assignment| MetadataRecord::ChangePartition { name: "t".into(), partition: 0, assignment };
        // The leader shrinks the ISR: same leader, same leader epoch.
        let shrunk = PartitionAssignment { isr: vec![at(1), at(2)], partition_epoch: 1, ..three.clone() };
        apply(&mut s, change(shrunk.clone())).unwrap();
        // A second change made on epoch 0 is refused, not applied over the first.
        let late = PartitionAssignment { isr: vec![at(1), at(3)], partition_epoch: 1, ..three.clone() };
        assert!(matches!(apply(&mut s, change(late)), Err(MetadataError::StalePartitionEpoch { current: 1, .. })));
        // A new leader without a new leader epoch would not fence the old one.
        let moved = PartitionAssignment { leader: Some(at(2)), partition_epoch: 2, ..shrunk.clone() };
        assert!(matches!(apply(&mut s, change(moved.clone())), Err(MetadataError::InvalidAssignment { .. })));
        let moved = PartitionAssignment { leader_epoch: 1, isr: vec![at(2)], ..moved };
        apply(&mut s, change(moved.clone())).unwrap();
        assert_eq!(s.topic("t").unwrap().partition(0), Some(&moved));
        // A replica on a fenced node does not join the ISR (it may stay in it).
        apply(&mut s, MetadataRecord::RegisterNode { registration: registration(3, 5) }).unwrap();
        let joins = PartitionAssignment { isr: vec![at(2), at(3)], partition_epoch: 3, ..moved.clone() };
        assert!(matches!(apply(&mut s, change(joins)), Err(MetadataError::InvalidAssignment { .. })));
        // No leader at all: the partition is offline, which Metadata shows as -1.
        let offline = PartitionAssignment { leader: None, isr: vec![], leader_epoch: 2, partition_epoch: 3, ..moved };
        apply(&mut s, change(offline)).unwrap();
        assert_eq!(s.topic("t").unwrap().partition(0).unwrap().leader, None);
    }

    #[test]
    fn an_assignment_logged_before_the_isr_existed_has_every_replica_in_sync() {
        let old = r#"{"type":"CreateTopic","name":"t","id":"f37e4f12-48f9-48b8-b319-d254aa8461dc","partitions":[{"replicas":[{"node":0,"shard":1}],"leader":{"node":0,"shard":1},"leader_epoch":0}],"configs":{}}"#;
        let record: MetadataRecord = serde_json::from_str(old).unwrap();
        let mut s = Snapshot::default();
        apply(&mut s, record).unwrap();
        assert_eq!(s.topic("t").unwrap().partitions, vec![on_shard(1)]);
    }
}
