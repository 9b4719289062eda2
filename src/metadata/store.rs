//! The metadata log: one JSON [`MetadataRecord`] per line, appended and
//! fdatasync'ed before a change is answered. Replayed in full at start-up; a
//! torn last line (crash mid-append) is dropped, since its change was never
//! acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use super::producer_ids::{ProducerIdBlock, ProducerIdStore};
use super::{MetadataError, MetadataRecord, Snapshot};

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
    pub fn open(data_dir: &Path) -> Result<MetadataStore, MetadataError> {
        std::fs::create_dir_all(data_dir).map_err(|e| io_error("create data dir", e))?;
        let path = data_dir.join(FILE_NAME);
        let mut snapshot = Snapshot::default();
        let mut good_bytes = 0u64;
        if path.exists() {
            let reader = BufReader::new(File::open(&path).map_err(|e| io_error("open", e))?);
            for (i, line) in reader.split(b'\n').enumerate() {
                let line = line.map_err(|e| io_error("read", e))?;
                let record: MetadataRecord = match serde_json::from_slice(&line) {
                    Ok(r) => r,
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
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_error("open", e))?;
        file.set_len(good_bytes.min(file.metadata().map_err(|e| io_error("stat", e))?.len()))
            .map_err(|e| io_error("truncate", e))?;
        let producer_ids = ProducerIdStore::open(data_dir)?;
        Ok(MetadataStore { file, snapshot, producer_ids })
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Validates, persists (write + fdatasync) and applies one record. Cold
    /// path: topic changes are rare, so a blocking write on shard 0 is fine.
    pub fn append(&mut self, record: MetadataRecord) -> Result<&Snapshot, MetadataError> {
        self.snapshot.check(&record)?;
        let mut line = serde_json::to_vec(&record).expect("metadata records always serialize");
        line.push(b'\n');
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
    use std::collections::BTreeMap;

    #[test]
    fn records_survive_reopen_and_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let id = uuid::Uuid::new_v4();
        {
            let mut store = MetadataStore::open(dir.path()).unwrap();
            let configs = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
            store.append(MetadataRecord::CreateTopic { name: "t".into(), id, shards: vec![1, 0], configs }).unwrap();
            store.append(MetadataRecord::CreatePartitions { name: "t".into(), shards: vec![1] }).unwrap();
            let set = BTreeMap::from([("segment.ms".to_string(), "60000".to_string())]);
            store.append(MetadataRecord::UpdateConfigs { name: "t".into(), set, remove: vec![] }).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(dir.path().join(FILE_NAME)).unwrap();
        f.write_all(b"{\"type\":\"DeleteTo").unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        let t = store.snapshot().topic("t").unwrap();
        assert_eq!(t.shards, vec![1, 0, 1]);
        assert_eq!(t.id, id);
        assert_eq!(t.configs["retention.ms"], "1000");
        assert_eq!(t.configs["segment.ms"], "60000", "config changes replay");
    }
}
