//! Reading metadata logs written before placement was stored as replicas.
//!
//! Until issue 15 a partition's place was its shard alone: CreateTopic and
//! CreatePartitions records carried `"shards":[s, ...]`, one shard per
//! partition. Such a record is read here as one replica on (this node, that
//! shard) leading at epoch 0, which is what it meant; the store then
//! rewrites the whole log in today's format at once ([`rewrite`]), so a
//! second start finds nothing to migrate and the old format is never
//! appended to.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use uuid::Uuid;

use super::MetadataRecord;
use crate::cluster::{NodeId, PartitionAssignment, ReplicaPlacement, ShardId};
use crate::runtime::durable;

/// The two records whose layout changed, as the code before issue 15 wrote
/// them. The others were written as they still are.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum ShardPlacedRecord {
    CreateTopic { name: String, id: Uuid, shards: Vec<u16>, configs: BTreeMap<String, String> },
    CreatePartitions { name: String, shards: Vec<u16> },
}

fn on_this_node(node: NodeId, shards: Vec<u16>) -> Vec<PartitionAssignment> {
    shards.into_iter().map(|s| PartitionAssignment::single(ReplicaPlacement::new(node, ShardId(s)))).collect()
}

/// A record as the log stores it now.
pub(super) fn encode(record: &MetadataRecord) -> Vec<u8> {
    let mut line = serde_json::to_vec(record).expect("metadata records always serialize");
    line.push(b'\n');
    line
}

/// One line of the log, in today's format or the shard-placed one; true if
/// it was the old one (the log must be rewritten). The error is today's
/// format's: a line that is neither is a torn or corrupt one.
pub(super) fn decode(line: &[u8], node: NodeId) -> Result<(MetadataRecord, bool), serde_json::Error> {
    let current = match serde_json::from_slice::<MetadataRecord>(line) {
        Ok(record) => return Ok((record, false)),
        Err(e) => e,
    };
    let upgraded = match serde_json::from_slice::<ShardPlacedRecord>(line).map_err(|_| current)? {
        ShardPlacedRecord::CreateTopic { name, id, shards, configs } => {
            MetadataRecord::CreateTopic { name, id, partitions: on_this_node(node, shards), configs }
        }
        ShardPlacedRecord::CreatePartitions { name, shards } => {
            MetadataRecord::CreatePartitions { name, partitions: on_this_node(node, shards) }
        }
    };
    Ok((upgraded, true))
}

/// Replaces the log at `path` by `records` in today's format, atomically
/// (`durable::replace`): a crash leaves the old log whole, which the next
/// start migrates again, or the new one. Returns the bytes written.
pub(super) fn rewrite(path: &Path, records: &[MetadataRecord]) -> std::io::Result<u64> {
    let bytes: Vec<u8> = records.iter().flat_map(encode).collect();
    durable::replace(path, &bytes)?;
    Ok(bytes.len() as u64)
}
