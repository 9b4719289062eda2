//! Partition directories and the topic they belong to.
//!
//! A partition directory is named by topic name and partition only
//! (`<topic>-<partition>`), and a name outlives its topic: a topic deleted
//! while a node was down, then created again under the same name, would
//! find the old topic's records in the directory of the new one's replica,
//! and a node could serve, or lead the partition with, a log nobody wrote
//! to that topic (Kafka's KAFKA-14616). So, as Kafka's
//! `partition.metadata` file, each directory records the id of the topic it
//! was created for, written before the log's first segment, and:
//!
//! - a replica opens its directory only through [`claim`]: a directory of
//!   another topic id is removed first (an id-less one, from before the
//!   file existed, is adopted);
//! - at start-up, before any shard opens a replica, [`sweep`] removes every
//!   directory the metadata gives no replica on this node: the topic is
//!   gone, its id changed, or a reassignment moved the replica away while
//!   the node was down (Kafka's stray replicas), and the remains of
//!   deletions a crash interrupted;
//! - a directory is removed by renaming it aside first ([`remove`]), so a
//!   crash part-way through never leaves a half-deleted directory under
//!   the partition's name.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::cluster::NodeId;
use crate::metadata::Snapshot;

/// The file in a partition directory that names its topic.
const TOPIC_ID_FILE: &str = "partition.metadata";
/// The only version of the file's format.
const TOPIC_ID_FILE_VERSION: u32 = 0;
/// The suffix of a directory renamed aside to be removed.
const REMOVING_SUFFIX: &str = "-delete";
/// Kafka's suffix for a stray replica's directory renamed aside.
const STRAY_SUFFIX: &str = "-stray";

/// The topic id a partition directory records; None when it has no file
/// (created before the file existed) or the file does not read as one.
fn recorded_topic_id(dir: &Path) -> Option<Uuid> {
    let text = fs::read_to_string(dir.join(TOPIC_ID_FILE)).ok()?;
    let mut lines = text.lines();
    let version = lines.next()?.strip_prefix("version: ")?.trim().parse::<u32>().ok()?;
    let id = lines.next()?.strip_prefix("topic_id: ")?.trim();
    (version == TOPIC_ID_FILE_VERSION).then(|| Uuid::parse_str(id).ok()).flatten()
}

/// Records `topic_id` in `dir`, durably (file and directory synced) before
/// any segment is written there.
fn record_topic_id(dir: &Path, topic_id: Uuid) -> io::Result<()> {
    let path = dir.join(TOPIC_ID_FILE);
    let temporary = dir.join(format!("{TOPIC_ID_FILE}.tmp"));
    fs::write(&temporary, format!("version: {TOPIC_ID_FILE_VERSION}\ntopic_id: {topic_id}\n"))?;
    fs::File::open(&temporary)?.sync_all()?;
    fs::rename(&temporary, &path)?;
    fs::File::open(dir)?.sync_all()
}

/// Makes `dir` the directory of a replica of topic `topic_id`: created with
/// the id if absent, the id recorded if it has none, removed and created
/// anew if it belongs to another topic of the same name. Cold path (a
/// replica's opening).
pub fn claim(dir: &Path, topic_id: Uuid) -> io::Result<()> {
    if dir.is_dir() {
        match recorded_topic_id(dir) {
            Some(id) if id == topic_id => return Ok(()),
            Some(id) => {
                tracing::warn!(
                    dir = %dir.display(), recorded = %id, topic_id = %topic_id,
                    "the partition directory belongs to an earlier topic of the same name; removing it"
                );
                remove(dir, STRAY_SUFFIX)?;
            }
            None => return record_topic_id(dir, topic_id),
        }
    }
    fs::create_dir_all(dir)?;
    record_topic_id(dir, topic_id)
}

/// Renames `dir` aside (`<name>.<unique>-delete` or `-stray`), syncs its
/// parent, then removes it with everything in it.
pub fn remove(dir: &Path, suffix: &str) -> io::Result<()> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("partition");
    let aside = dir.with_file_name(format!("{name}.{}{suffix}", Uuid::new_v4().simple()));
    fs::rename(dir, &aside)?;
    if let Some(parent) = dir.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    fs::remove_dir_all(&aside)
}

/// Removes a deleted replica's directory (see [`remove`]).
pub fn remove_deleted(dir: &Path) -> io::Result<()> {
    remove(dir, REMOVING_SUFFIX)
}

/// `<topic>-<partition>` split; None for any other name.
fn partition_of(name: &str) -> Option<(&str, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    let partition = partition.parse::<i32>().ok().filter(|p| *p >= 0 && !partition.starts_with('+'))?;
    (!topic.is_empty()).then_some((topic, partition))
}

/// The partition directories in `data_dir`, sorted: a data directory with
/// partitions but no metadata log must not start afresh, or its sweep would
/// remove them all.
pub fn partition_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(data_dir) else { return Vec::new() };
    let is_partition = |path: &Path| path.file_name().and_then(|n| n.to_str()).and_then(partition_of).is_some();
    let mut found: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.is_dir() && is_partition(p)).collect();
    found.sort();
    found
}

/// A directory renamed aside by [`remove`] that a crash left behind.
fn is_removal_remains(name: &str) -> bool {
    name.ends_with(REMOVING_SUFFIX) || name.ends_with(STRAY_SUFFIX)
}

/// Why the directory `name` holds no replica of this node, if it holds none.
fn stray_because(dir: &Path, name: &str, node: NodeId, snapshot: &Snapshot) -> Option<&'static str> {
    if is_removal_remains(name) {
        return Some("the remains of a removal a crash interrupted");
    }
    let (topic, partition) = partition_of(name)?;
    let Some(meta) = snapshot.topic(topic) else { return Some("its topic no longer exists") };
    let Some(assignment) = usize::try_from(partition).ok().and_then(|p| meta.partitions.get(p)) else {
        return Some("its topic no longer has that partition");
    };
    if !assignment.replicas.iter().any(|r| r.node == node) {
        return Some("the partition has no replica on this node any more");
    }
    match recorded_topic_id(dir) {
        Some(id) if id != meta.id => Some("it belongs to an earlier topic of the same name"),
        _ => None,
    }
}

/// Removes, from `data_dir`, every partition directory the metadata gives
/// no replica on `node`, before the shards open any (see the module's
/// comment). Returns the directories removed. A directory that cannot be
/// removed is reported and left (it is not opened either: no replica of
/// this node is there).
pub fn sweep(data_dir: &Path, node: NodeId, snapshot: &Snapshot) -> Vec<PathBuf> {
    let entries = match fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %data_dir.display(), error = %e, "cannot list the data directory for stray partitions");
            return Vec::new();
        }
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if !path.is_dir() {
            continue;
        }
        let Some(why) = stray_because(&path, &name, node, snapshot) else { continue };
        let outcome = if is_removal_remains(&name) { fs::remove_dir_all(&path) } else { remove(&path, STRAY_SUFFIX) };
        match outcome {
            Ok(()) => {
                tracing::warn!(dir = %path.display(), why, "stray partition directory removed");
                removed.push(path);
            }
            Err(e) => {
                tracing::error!(dir = %path.display(), why, error = %e, "cannot remove a stray partition directory")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cluster::{PartitionAssignment, ReplicaPlacement, ShardId};
    use crate::metadata::MetadataRecord;

    fn at(node: u32) -> ReplicaPlacement {
        ReplicaPlacement::new(NodeId(node), ShardId(0))
    }

    fn snapshot_with(topics: &[(&str, Uuid, Vec<Vec<u32>>)]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for (name, id, partitions) in topics {
            let partitions = partitions
                .iter()
                .map(|nodes| PartitionAssignment::led_by_first(nodes.iter().map(|n| at(*n)).collect()))
                .collect();
            let record =
                MetadataRecord::CreateTopic { name: name.to_string(), id: *id, partitions, configs: BTreeMap::new() };
            snapshot.check(&record).unwrap();
            snapshot.apply(&record);
        }
        snapshot
    }

    fn segment(dir: &Path) {
        fs::write(dir.join("00000000000000000000.log"), b"old records").unwrap();
    }

    #[test]
    fn a_directory_of_an_earlier_topic_of_the_same_name_is_emptied_before_the_new_one_uses_it() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("orders-0");
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        claim(&dir, old).unwrap();
        segment(&dir);
        claim(&dir, old).unwrap();
        assert!(dir.join("00000000000000000000.log").exists(), "its own topic's directory is kept");
        claim(&dir, new).unwrap();
        assert!(!dir.join("00000000000000000000.log").exists(), "the earlier topic's records are gone");
        assert_eq!(recorded_topic_id(&dir), Some(new));
        assert_eq!(fs::read_dir(data.path()).unwrap().count(), 1, "nothing left aside");
    }

    #[test]
    fn a_directory_from_before_the_file_is_adopted() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("orders-0");
        fs::create_dir(&dir).unwrap();
        segment(&dir);
        let id = Uuid::new_v4();
        claim(&dir, id).unwrap();
        assert!(dir.join("00000000000000000000.log").exists());
        assert_eq!(recorded_topic_id(&dir), Some(id));
    }

    #[test]
    fn the_sweep_removes_what_no_replica_of_this_node_owns_and_keeps_the_rest() {
        let data = tempfile::tempdir().unwrap();
        let (kept, recreated, old) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let snapshot =
            snapshot_with(&[("kept", kept, vec![vec![1, 2], vec![2, 3]]), ("re-created", recreated, vec![vec![1, 2]])]);
        let make = |name: &str, id: Option<Uuid>| {
            let dir = data.path().join(name);
            fs::create_dir(&dir).unwrap();
            if let Some(id) = id {
                record_topic_id(&dir, id).unwrap();
            }
            segment(&dir);
        };
        make("kept-0", Some(kept)); // a replica here
        make("kept-1", Some(kept)); // moved to nodes 2 and 3 while this node was down
        make("kept-2", Some(kept)); // a partition the topic does not have
        make("re-created-0", Some(old)); // the earlier topic of that name
        make("gone-0", None); // a topic deleted while this node was down
        make("upgraded-0", None); // from before the file: not in the metadata either
        fs::create_dir(data.path().join("re-created-0.0123abcd-delete")).unwrap();
        fs::create_dir(data.path().join("controller")).unwrap();
        fs::write(data.path().join("meta.properties"), b"").unwrap();

        let mut removed: Vec<String> = sweep(data.path(), NodeId(1), &snapshot)
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        removed.sort();
        assert_eq!(
            removed,
            ["gone-0", "kept-1", "kept-2", "re-created-0", "re-created-0.0123abcd-delete", "upgraded-0"]
        );
        let mut left: Vec<String> =
            fs::read_dir(data.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["controller", "kept-0", "meta.properties"]);
    }

    #[test]
    fn only_topic_dash_partition_names_are_partitions() {
        assert_eq!(partition_of("a-b-12"), Some(("a-b", 12)));
        assert_eq!(partition_of("__consumer_offsets-0"), Some(("__consumer_offsets", 0)));
        for name in ["controller", "t-", "-3", "t-+1", "t-x", "t-0.0123abcd-delete"] {
            assert_eq!(partition_of(name), None, "{name}");
        }
    }
}
