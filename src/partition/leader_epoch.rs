//! The leader epoch cache of one replica, as Kafka's `LeaderEpochFileCache`:
//! for every leader epoch the replica has seen, the first offset written in
//! it. Followers truncate by it after a leader change (KIP-101, issue 16);
//! today one node leads every partition from creation on, so a replica has
//! one entry, epoch 0.
//!
//! Kept in the partition directory as Kafka's `leader-epoch-checkpoint`, in
//! Kafka's text format:
//!
//! ```text
//! 0                  version
//! 2                  number of entries
//! 0 0                epoch start_offset, epochs increasing
//! 1 1500
//! ```
//!
//! The file is replaced whole when an epoch begins (rare: leader changes):
//! written to a temporary file, fsynced, renamed over the old one, and the
//! directory fsynced, so a crash leaves either the old file or the new one.
//! A file that does not parse is refused with the line at fault rather than
//! guessed at. Synchronous std I/O: it runs when a replica opens or its
//! leadership changes, never on the produce path.

use std::fs;
use std::path::{Path, PathBuf};

use super::PartitionError;

pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// The only version of the format Kafka has written.
const CHECKPOINT_VERSION: u32 = 0;
/// Kafka's first leader epoch. One node leads each of its partitions from
/// creation on, so today no epoch follows it. Metadata and ListOffsets
/// answer it, and the replica stamps it on every batch it appends, as
/// Kafka's leader does (KIP-101): consumers read it from the batches and
/// commit it with their offsets (KIP-320).
pub const LEADER_EPOCH_INITIAL: i32 = 0;
/// Entries a checkpoint may hold: one per leader change the log still
/// holds data of. Bounds what a damaged count line can make us allocate.
const CHECKPOINT_ENTRIES_MAX: usize = 1 << 20;

/// Where an epoch begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

pub struct LeaderEpochCache {
    path: PathBuf,
    /// Epochs strictly increasing, start offsets non-decreasing.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Reads the checkpoint of the partition in `dir`; an absent file is an empty cache.
    pub fn open(dir: &Path) -> Result<LeaderEpochCache, PartitionError> {
        let path = dir.join(CHECKPOINT_FILE);
        let entries = match fs::read_to_string(&path) {
            Ok(text) => parse(&path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(PartitionError::CheckpointIo { path, source }),
        };
        Ok(LeaderEpochCache { path, entries })
    }

    /// The epoch the replica is in now, and where it began.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// A new epoch begins at `start_offset` (the log end when leadership
    /// starts): recorded, and durable before this returns.
    pub fn begin(&mut self, epoch: i32, start_offset: i64) -> Result<(), PartitionError> {
        if let Some(latest) = self.latest() {
            assert!(
                epoch > latest.epoch && start_offset >= latest.start_offset,
                "leader epochs only move forward: {latest:?} then epoch {epoch} at {start_offset}"
            );
        }
        self.entries.push(EpochEntry { epoch, start_offset });
        crate::runtime::durable::replace(&self.path, format(&self.entries).as_bytes())
            .map_err(|source| PartitionError::CheckpointIo { path: self.path.clone(), source })
    }
}

// Interim (part C), until part A's extension of this cache is merged:
// the two operations replication needs, Kafka's `endOffsetFor` and
// `truncateFromEnd`. At the merge, part A's versions replace this block.
impl LeaderEpochCache {
    /// Kafka's `endOffsetFor`: for `requested`, the largest epoch at or
    /// below it that this cache knows and the start of the epoch after it
    /// (`log_end` for the latest); (-1, -1) for an epoch past the latest.
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (-1, -1);
        match self.latest() {
            _ if requested < 0 => UNDEFINED,
            Some(latest) if latest.epoch == requested => (requested, log_end),
            _ => {
                let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else { return UNDEFINED };
                let floor = self.entries.iter().rev().find(|e| e.epoch <= requested);
                (floor.map_or(requested, |f| f.epoch), higher.start_offset)
            }
        }
    }

    /// Kafka's `truncateFromEnd`: the log was cut at `end_offset`, so the
    /// epochs that began at or after it are forgotten, durably.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), PartitionError> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() == before {
            return Ok(());
        }
        crate::runtime::durable::replace(&self.path, format(&self.entries).as_bytes())
            .map_err(|source| PartitionError::CheckpointIo { path: self.path.clone(), source })
    }
}

fn format(entries: &[EpochEntry]) -> String {
    let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for e in entries {
        text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    text
}

fn parse(path: &Path, text: &str) -> Result<Vec<EpochEntry>, PartitionError> {
    let corrupt = |line: usize, why: String| PartitionError::CheckpointCorrupt { path: path.to_path_buf(), line, why };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut next = |what: &str| lines.next().ok_or_else(|| corrupt(0, format!("ends before its {what}")));
    let (n, version) = next("version line")?;
    if version.trim().parse::<u32>().ok() != Some(CHECKPOINT_VERSION) {
        return Err(corrupt(n, format!("version {version:?}, expected {CHECKPOINT_VERSION}")));
    }
    let (n, count) = next("count line")?;
    let count: usize = count.trim().parse().map_err(|_| corrupt(n, format!("count {count:?} is not a number")))?;
    if count > CHECKPOINT_ENTRIES_MAX {
        return Err(corrupt(n, format!("count {count} exceeds {CHECKPOINT_ENTRIES_MAX}")));
    }
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(count);
    for _ in 0..count {
        let (n, line) = next("entries")?;
        let mut fields = line.split_whitespace();
        let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(corrupt(n, format!("{line:?} is not 'epoch start_offset'")));
        };
        let (Ok(epoch), Ok(start_offset)) = (epoch.parse::<i32>(), start.parse::<i64>()) else {
            return Err(corrupt(n, format!("{line:?} is not two numbers")));
        };
        let entry = EpochEntry { epoch, start_offset };
        if epoch < 0 || start_offset < 0 {
            return Err(corrupt(n, format!("{line:?} is negative")));
        }
        if entries.last().is_some_and(|last| epoch <= last.epoch || start_offset < last.start_offset) {
            return Err(corrupt(n, format!("{line:?} does not follow the entry before it")));
        }
        entries.push(entry);
    }
    if let Some((n, extra)) = lines.find(|(_, l)| !l.trim().is_empty()) {
        return Err(corrupt(n, format!("{extra:?} after the {count} entries the count line announced")));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_in_kafkas_text_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::open(dir.path()).unwrap();
        assert_eq!(cache.latest(), None, "no file: no entry");
        cache.begin(0, 0).unwrap();
        cache.begin(3, 1500).unwrap();
        let text = fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n3 1500\n");
        let reopened = LeaderEpochCache::open(dir.path()).unwrap();
        assert_eq!(reopened.entries, cache.entries);
        assert_eq!(reopened.latest(), Some(EpochEntry { epoch: 3, start_offset: 1500 }));
    }

    #[test]
    fn a_torn_or_garbled_checkpoint_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let refused = |text: &str| {
            fs::write(dir.path().join(CHECKPOINT_FILE), text).unwrap();
            match LeaderEpochCache::open(dir.path()) {
                Err(e @ PartitionError::CheckpointCorrupt { .. }) => e.to_string(),
                Err(e) => panic!("{text:?}: {e}"),
                Ok(_) => panic!("{text:?} was accepted"),
            }
        };
        assert!(refused("").contains("ends before its version line"));
        assert!(refused("1\n1\n0 0\n").contains("line 1: version"));
        assert!(refused("0\n2\n0 0\n").contains("ends before its entries"), "torn: fewer entries than counted");
        assert!(refused("0\n1\n0 zero\n").contains("line 3"));
        assert!(refused("0\n1\n0\n").contains("line 3"));
        assert!(refused("0\n2\n1 10\n0 20\n").contains("line 4: \"0 20\" does not follow"));
        assert!(refused("0\n1\n0 0\n1 5\n").contains("line 4"));
        assert!(refused("0\n99999999999\n").contains("line 2"));
    }

    #[test]
    fn a_new_epoch_replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // A temporary left by a crash mid-write (runtime::durable's name for
        // it) is ignored, then overwritten.
        const CHECKPOINT_TEMP_FILE: &str = "leader-epoch-checkpoint.tmp";
        fs::write(dir.path().join(CHECKPOINT_TEMP_FILE), "0\n5\n").unwrap();
        let mut cache = LeaderEpochCache::open(dir.path()).unwrap();
        cache.begin(0, 7).unwrap();
        assert!(!dir.path().join(CHECKPOINT_TEMP_FILE).exists());
        assert_eq!(fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap(), "0\n1\n0 7\n");
        cache.begin(1, 9).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap(), "0\n2\n0 7\n1 9\n");
    }

    #[test]
    #[should_panic(expected = "leader epochs only move forward")]
    fn an_epoch_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::open(dir.path()).unwrap();
        cache.begin(2, 0).unwrap();
        let _ = cache.begin(1, 5);
    }
}
