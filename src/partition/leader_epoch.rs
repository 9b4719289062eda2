//! The leader epoch cache of one replica, as Kafka's `LeaderEpochFileCache`:
//! for every leader epoch the replica has seen, the first offset written in
//! it. A leader begins an epoch at its log end (`begin`); a follower records
//! the epochs of the batches it appends (`assign`, `assign_batches`). After
//! a leader change, OffsetsForLeaderEpoch answers from `end_offset_for`, and
//! a follower that truncated its log drops the epochs that began past its
//! new end (`truncate_from_end`) (KIP-101, KIP-279).
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

use crate::model::batch::{partition_leader_epoch, BatchHeader};

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
        self.flush()
    }
}

impl LeaderEpochCache {
    /// A follower appends a batch of `epoch` starting at `start_offset`
    /// (Kafka's `assign`): recorded, durably, when it is a new epoch or the
    /// latest one starting earlier (after a truncation). Entries that it
    /// contradicts (an epoch as high or higher, or a start as late or later)
    /// are dropped first, as Kafka does, so the cache stays monotonic.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<(), PartitionError> {
        assert!(epoch >= 0 && start_offset >= 0, "epoch {epoch} at {start_offset}: neither is negative");
        let needed = self.latest().is_none_or(|l| l.epoch != epoch || start_offset < l.start_offset);
        if !needed {
            return Ok(());
        }
        let kept =
            self.entries.iter().rposition(|e| e.epoch < epoch && e.start_offset < start_offset).map_or(0, |at| at + 1);
        if self.entries.len() - kept > 1 || self.entries.get(kept).is_some_and(|e| e.start_offset != start_offset) {
            tracing::warn!(path = %self.path.display(), epoch, start_offset, dropped = ?&self.entries[kept..], "leader epochs contradicted by an appended batch");
        }
        self.entries.truncate(kept);
        self.entries.push(EpochEntry { epoch, start_offset });
        self.flush()
    }

    /// `assign` for each batch of a follower's append (whole batches as
    /// `storage::PartitionLog::append_replicated` took them): the leader
    /// epoch each carries, from its base offset. Batches without one (-1)
    /// are skipped. Writes the checkpoint only when an epoch begins.
    pub fn assign_batches(&mut self, batches: &[u8]) -> Result<(), PartitionError> {
        let mut at = 0;
        while let Ok(header) = BatchHeader::parse(&batches[at..]) {
            let epoch = partition_leader_epoch(&batches[at..]).unwrap_or(-1);
            if epoch >= 0 {
                self.assign(epoch, header.base_offset)?;
            }
            at += header.total_bytes();
            if at >= batches.len() {
                break;
            }
        }
        Ok(())
    }

    /// Drops the epochs that begin at or after `end_offset` (Kafka's
    /// `truncateFromEnd`): after the log was truncated there. Durable.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), PartitionError> {
        let kept = self.entries.partition_point(|e| e.start_offset < end_offset);
        if end_offset < 0 || kept == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(kept);
        self.flush()
    }

    /// What OffsetsForLeaderEpoch answers for `epoch` (Kafka's
    /// `endOffsetFor`): the largest epoch at most `epoch` and the offset
    /// where the epoch after it begins, or `log_end_offset` when `epoch` is
    /// the latest. An epoch older than every entry answers itself with the
    /// first entry's start (the data before was removed; the follower
    /// replicates from there). None (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
    /// for an epoch newer than the latest, a negative one, or an empty cache.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        if self.latest().is_some_and(|l| l.epoch == epoch) {
            return Some((epoch, log_end_offset));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= epoch);
        let next = self.entries.get(higher)?;
        match higher.checked_sub(1) {
            Some(floor) => Some((self.entries[floor].epoch, next.start_offset)),
            None => Some((epoch, next.start_offset)),
        }
    }

    fn flush(&self) -> Result<(), PartitionError> {
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

    fn filled(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::open(dir.path()).unwrap();
        for &(epoch, start_offset) in entries {
            cache.begin(epoch, start_offset).unwrap();
        }
        (dir, cache)
    }

    fn entries(cache: &LeaderEpochCache) -> Vec<(i32, i64)> {
        cache.entries.iter().map(|e| (e.epoch, e.start_offset)).collect()
    }

    fn on_disk(dir: &Path) -> Vec<(i32, i64)> {
        entries(&LeaderEpochCache::open(dir).unwrap())
    }

    #[test]
    fn end_offset_for_follows_kafkas_rules() {
        let (_dir, cache) = filled(&[(2, 10), (4, 25), (7, 40)]);
        let log_end = 55;
        assert_eq!(cache.end_offset_for(7, log_end), Some((7, 55)), "the latest epoch ends at the log end");
        assert_eq!(cache.end_offset_for(4, log_end), Some((4, 40)), "an epoch ends where the next begins");
        assert_eq!(cache.end_offset_for(5, log_end), Some((4, 40)), "an unknown epoch: the largest below it");
        assert_eq!(cache.end_offset_for(6, log_end), Some((4, 40)));
        assert_eq!(cache.end_offset_for(2, log_end), Some((2, 25)));
        assert_eq!(cache.end_offset_for(3, log_end), Some((2, 25)));
        assert_eq!(cache.end_offset_for(1, log_end), Some((1, 10)), "older than every entry: the first start");
        assert_eq!(cache.end_offset_for(0, log_end), Some((0, 10)));
        assert_eq!(cache.end_offset_for(8, log_end), None, "newer than the latest: undefined");
        assert_eq!(cache.end_offset_for(-1, log_end), None, "UNDEFINED_EPOCH asked: undefined");
        let (_dir, empty) = filled(&[]);
        assert_eq!(empty.end_offset_for(0, 0), None, "an empty cache knows no epoch");
    }

    #[test]
    fn assign_records_new_epochs_durably_and_ignores_known_ones() {
        let (dir, mut cache) = filled(&[]);
        cache.assign(1, 0).unwrap();
        cache.assign(1, 5).unwrap();
        assert_eq!(entries(&cache), [(1, 0)], "the same epoch later on: nothing new");
        cache.assign(3, 12).unwrap();
        assert_eq!(on_disk(dir.path()), [(1, 0), (3, 12)]);
        // The latest epoch starting earlier (appended again after a truncation).
        cache.assign(3, 10).unwrap();
        assert_eq!(on_disk(dir.path()), [(1, 0), (3, 10)]);
    }

    #[test]
    fn assign_drops_the_entries_it_contradicts() {
        // A lower epoch than the latest: the later entries go (Kafka's
        // maybeTruncateNonMonotonicEntries).
        let (dir, mut cache) = filled(&[(1, 0), (3, 10), (5, 20)]);
        cache.assign(4, 15).unwrap();
        assert_eq!(on_disk(dir.path()), [(1, 0), (3, 10), (4, 15)]);
        // A higher epoch starting no later than entries before it: they go.
        cache.assign(6, 10).unwrap();
        assert_eq!(entries(&cache), [(1, 0), (6, 10)]);
        cache.assign(7, 0).unwrap();
        assert_eq!(entries(&cache), [(7, 0)]);
    }

    #[test]
    fn assign_batches_records_each_epoch_where_its_first_batch_starts() {
        let (dir, mut cache) = filled(&[(0, 0)]);
        let stamped = |base: i64, epoch: i32| {
            let mut bytes = crate::model::batch::build(1, &[b"a".as_slice(), b"b"]);
            crate::model::batch::set_base_offset(&mut bytes, base);
            crate::model::batch::set_partition_leader_epoch(&mut bytes, epoch);
            bytes
        };
        let fetched = [stamped(4, 0), stamped(6, 2), stamped(8, 2), stamped(10, -1), stamped(12, 5)].concat();
        cache.assign_batches(&fetched).unwrap();
        assert_eq!(on_disk(dir.path()), [(0, 0), (2, 6), (5, 12)]);
    }

    #[test]
    fn truncate_from_end_drops_the_epochs_beginning_at_or_after_the_offset() {
        let (dir, mut cache) = filled(&[(1, 0), (3, 10), (5, 20)]);
        cache.truncate_from_end(25).unwrap();
        assert_eq!(entries(&cache), [(1, 0), (3, 10), (5, 20)], "every epoch begins below it");
        cache.truncate_from_end(20).unwrap();
        assert_eq!(on_disk(dir.path()), [(1, 0), (3, 10)], "an epoch beginning at the offset goes");
        cache.truncate_from_end(11).unwrap();
        assert_eq!(entries(&cache), [(1, 0), (3, 10)]);
        cache.truncate_from_end(-1).unwrap();
        assert_eq!(entries(&cache), [(1, 0), (3, 10)], "a negative offset (undefined) changes nothing");
        cache.truncate_from_end(0).unwrap();
        assert_eq!(on_disk(dir.path()), []);
        assert_eq!(cache.latest(), None);
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
