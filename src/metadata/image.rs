//! The metadata state as one serialized image: what a controller snapshot
//! holds (raft-rs snapshots carry it to a follower that fell behind the
//! compacted log, and a restart reads it before the log entries after it).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MetadataError, Snapshot, TopicMeta};
use crate::cluster::{NodeId, NodeRegistration, PartitionAssignment};

#[derive(Serialize, Deserialize)]
struct TopicImage {
    name: String,
    id: Uuid,
    partitions: Vec<PartitionAssignment>,
    configs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct Image {
    version: u64,
    cluster_id: Option<String>,
    controller: Option<NodeId>,
    producer_id_next: i64,
    nodes: Vec<NodeRegistration>,
    topics: Vec<TopicImage>,
}

pub fn encode_image(snapshot: &Snapshot) -> Vec<u8> {
    let image = Image {
        version: snapshot.version,
        cluster_id: snapshot.cluster_id.clone(),
        controller: snapshot.controller,
        producer_id_next: snapshot.producer_id_next,
        nodes: snapshot.nodes.values().cloned().collect(),
        topics: snapshot
            .topics
            .values()
            .map(|t| TopicImage {
                name: t.name.clone(),
                id: t.id,
                partitions: t.partitions.clone(),
                configs: t.configs.clone(),
            })
            .collect(),
    };
    serde_json::to_vec(&image).expect("a metadata image encodes")
}

pub fn decode_image(bytes: &[u8]) -> Result<Snapshot, MetadataError> {
    let image: Image = serde_json::from_slice(bytes).map_err(|e| MetadataError::CorruptImage(e.to_string()))?;
    let mut snapshot = Snapshot {
        version: image.version,
        cluster_id: image.cluster_id,
        controller: image.controller,
        producer_id_next: image.producer_id_next,
        nodes: image.nodes.into_iter().map(|n| (n.id, n)).collect(),
        ..Snapshot::default()
    };
    for t in image.topics {
        snapshot.ids.insert(t.id, t.name.clone());
        let meta = TopicMeta { name: t.name.clone(), id: t.id, partitions: t.partitions, configs: t.configs };
        snapshot.topics.insert(t.name, Arc::new(meta));
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ReplicaPlacement, ShardId};
    use crate::metadata::MetadataRecord;

    #[test]
    fn an_image_decodes_to_the_state_it_was_made_of() {
        let mut s = Snapshot::default();
        let at = |n| ReplicaPlacement::new(NodeId(n), ShardId(1));
        let partitions = vec![PartitionAssignment::led_by_first(vec![at(1), at(2)])];
        let configs = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
        for record in [
            MetadataRecord::SetClusterId { cluster_id: "c".into() },
            MetadataRecord::ChangeController { leader: NodeId(2) },
            MetadataRecord::AllocateProducerIds { node: NodeId(1), first: 0 },
            MetadataRecord::CreateTopic { name: "t".into(), id: Uuid::from_u128(3), partitions, configs },
        ] {
            s.check(&record).unwrap();
            s.apply(&record);
        }
        let back = decode_image(&encode_image(&s)).unwrap();
        assert_eq!((back.version, back.cluster_id.as_deref(), back.controller), (4, Some("c"), Some(NodeId(2))));
        assert_eq!(back.producer_id_next, s.producer_id_next);
        assert_eq!(back.topic_by_id(&Uuid::from_u128(3)).unwrap(), s.topic("t").unwrap());
        assert!(decode_image(b"{not json").is_err());
    }
}
