//! The metadata log: one JSON [`MetadataRecord`] per line, appended and
//! fdatasync'ed before a change is answered. Replayed in full at start-up; a
//! torn last line (crash mid-append) is dropped, since its change was never
//! acknowledged. A log written before placement was stored as replicas is
//! rewritten in today's format when it is opened (see `migrate`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use super::producer_ids::{ProducerIdBlock, ProducerIdStore};
use super::{meta_properties, migrate};
use super::{MetadataError, MetadataRecord, Snapshot};
use crate::cluster::NodeId;

const FILE_NAME: &str = "__cluster_metadata.log";

pub struct MetadataStore {
    file: File,
    snapshot: Snapshot,
    producer_ids: ProducerIdStore,
}

fn io_error(context: &str, source: std::io::Error) -> MetadataError {
    MetadataError::Io { context: context.into(), source }
}

impl MetadataStore {
    /// Opens (or creates) the log of `data_dir` on node `node`: the node
    /// that partitions placed by shard alone (the old format) are on.
    pub fn open(data_dir: &Path, node: NodeId) -> Result<MetadataStore, MetadataError> {
        std::fs::create_dir_all(data_dir).map_err(|e| io_error("create data dir", e))?;
        meta_properties::claim(data_dir, node)?;
        let path = data_dir.join(FILE_NAME);
        let mut snapshot = Snapshot::default();
        let mut good_bytes = 0u64;
        // Kept in case the log must be rewritten: a few bytes per topic, once.
        let mut records = Vec::new();
        let mut old_format = 0usize;
        if path.exists() {
            let reader = BufReader::new(File::open(&path).map_err(|e| io_error("open", e))?);
            for (i, line) in reader.split(b'\n').enumerate() {
                let line = line.map_err(|e| io_error("read", e))?;
                let record = match migrate::decode(&line, node) {
                    Ok((record, migrated)) => {
                        old_format += usize::from(migrated);
                        record
                    }
                    Err(e) => {
                        tracing::warn!(line = i + 1, error = %e, "metadata log: dropping unreadable tail");
                        break;
                    }
                };
                if let Err(e) = snapshot.check(&record) {
                    return Err(MetadataError::Corrupt { line: i + 1, why: e.to_string() });
                }
                snapshot.apply(&record);
                good_bytes += line.len() as u64 + 1;
                records.push(record);
            }
        }
        if old_format > 0 {
            good_bytes = migrate::rewrite(&path, &records).map_err(|e| io_error("rewrite in the replica format", e))?;
            tracing::info!(
                records = old_format,
                %node,
                "metadata log migrated: partitions placed on shards are now replica assignments on (node {node}, shard)"
            );
        }
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_error("open", e))?;
        file.set_len(good_bytes.min(file.metadata().map_err(|e| io_error("stat", e))?.len()))
            .map_err(|e| io_error("truncate", e))?;
        let producer_ids = ProducerIdStore::open(data_dir)?;
        Ok(MetadataStore { file, snapshot, producer_ids })
    }

    /// Whether `data_dir` holds a single node's metadata log.
    pub fn exists(data_dir: &Path) -> bool {
        data_dir.join(FILE_NAME).exists()
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Validates, persists (write + fdatasync) and applies one record. Cold
    /// path: topic changes are rare, so a blocking write on shard 0 is fine.
    pub fn append(&mut self, record: MetadataRecord) -> Result<&Snapshot, MetadataError> {
        self.snapshot.check(&record)?;
        let line = migrate::encode(&record);
        self.file.write_all(&line).map_err(|e| io_error("append", e))?;
        self.file.sync_data().map_err(|e| io_error("fdatasync", e))?;
        self.snapshot.apply(&record);
        Ok(&self.snapshot)
    }

    /// The next block of producer ids, durable before it is returned
    /// (blocking, like `append`: once per block of ids).
    pub fn allocate_producer_ids(&mut self) -> Result<ProducerIdBlock, MetadataError> {
        self.producer_ids.allocate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{PartitionAssignment, ReplicaPlacement, ShardId};
    use std::collections::BTreeMap;

    fn on(node: u32, shard: u16) -> PartitionAssignment {
        PartitionAssignment::single(ReplicaPlacement::new(NodeId(node), ShardId(shard)))
    }

    #[test]
    fn records_survive_reopen_and_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let id = uuid::Uuid::new_v4();
        {
            let mut store = MetadataStore::open(dir.path(), NodeId(0)).unwrap();
            let configs = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
            let partitions = vec![on(0, 1), on(0, 0)];
            store.append(MetadataRecord::CreateTopic { name: "t".into(), id, partitions, configs }).unwrap();
            store.append(MetadataRecord::CreatePartitions { name: "t".into(), partitions: vec![on(0, 1)] }).unwrap();
            let set = BTreeMap::from([("segment.ms".to_string(), "60000".to_string())]);
            store.append(MetadataRecord::UpdateConfigs { name: "t".into(), set, remove: vec![] }).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(dir.path().join(FILE_NAME)).unwrap();
        f.write_all(b"{\"type\":\"DeleteTo").unwrap();
        let store = MetadataStore::open(dir.path(), NodeId(0)).unwrap();
        let t = store.snapshot().topic("t").unwrap();
        assert_eq!(t.partitions, vec![on(0, 1), on(0, 0), on(0, 1)]);
        assert_eq!(t.id, id);
        assert_eq!(t.configs["retention.ms"], "1000");
        assert_eq!(t.configs["segment.ms"], "60000", "config changes replay");
    }

    /// Lines as the code before issue 15 wrote them (placement as shards),
    /// with a torn last line.
    const SHARD_PLACED_LOG: &str = concat!(
        r#"{"type":"CreateTopic","name":"orders","id":"f37e4f12-48f9-48b8-b319-d254aa8461dc","shards":[0,1,0],"configs":{"retention.ms":"604800000"}}"#,
        "\n",
        r#"{"type":"CreatePartitions","name":"orders","shards":[1]}"#,
        "\n",
        r#"{"type":"AlterConfigs","name":"orders","configs":{"retention.ms":"1000"}}"#,
        "\n",
        r#"{"type":"CreatePartitions","name":"ord"#,
    );

    #[test]
    fn a_shard_placed_log_is_rewritten_as_replicas_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, SHARD_PLACED_LOG).unwrap();
        let store = MetadataStore::open(dir.path(), NodeId(3)).unwrap();
        let orders = store.snapshot().topic("orders").unwrap();
        assert_eq!(orders.partitions, vec![on(3, 0), on(3, 1), on(3, 0), on(3, 1)], "each shard on this node");
        assert_eq!(orders.configs["retention.ms"], "1000", "records that did not change layout replay as before");
        drop(store);

        let rewritten = std::fs::read_to_string(&path).unwrap();
        assert!(!rewritten.contains("shards"), "{rewritten}");
        assert_eq!(rewritten.lines().count(), 3, "the torn line is dropped, the others kept: {rewritten}");
        let records: Vec<MetadataRecord> = rewritten.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let MetadataRecord::CreatePartitions { partitions, .. } = &records[1] else { panic!("{records:?}") };
        assert_eq!(partitions, &vec![on(3, 1)]);

        // A second start finds nothing to migrate: the file is left as it is.
        let mut store = MetadataStore::open(dir.path(), NodeId(3)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), rewritten);
        store.append(MetadataRecord::DeleteTopic { name: "orders".into() }).unwrap();
        drop(store);
        let reopened = MetadataStore::open(dir.path(), NodeId(3)).unwrap();
        assert!(reopened.snapshot().topic("orders").is_none(), "appends go on after the rewritten lines");
    }

    #[test]
    fn a_failed_rewrite_leaves_the_old_log_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, SHARD_PLACED_LOG).unwrap();
        // The temporary file cannot be created where a directory stands.
        std::fs::create_dir(dir.path().join(format!("{FILE_NAME}.tmp"))).unwrap();
        assert!(matches!(MetadataStore::open(dir.path(), NodeId(0)), Err(MetadataError::Io { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), SHARD_PLACED_LOG, "not a byte changed");
    }
}
