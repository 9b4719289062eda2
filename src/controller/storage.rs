//! The controller's durable Raft storage, under `<data_dir>/controller/`:
//!
//! - `raft.log`: the entries, appended as frames `[u32 length][u32 crc32c]
//!   [protobuf Entry]` and fdatasync'ed before `append` returns (raft-rs's
//!   Ready contract: entries are durable before the messages that announce
//!   them are sent). An entry whose index is not past the last one replaces
//!   the tail from that index (a new leader overwrote it), on replay as when
//!   it was written. A torn or corrupt tail (a crash mid-append) is cut off
//!   at start-up: it was never acknowledged to anyone.
//! - `raft.state`: the hard state (term, vote, commit) and the conf state,
//!   replaced crash-safely (`runtime::durable`) whenever they change.
//! - `raft.snapshot`: the last snapshot (its metadata and the metadata
//!   state it holds), replaced crash-safely. Compaction writes it first and
//!   rewrites the log without the entries it covers second, so a crash in
//!   between leaves entries the snapshot already covers, which replay skips.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot as RaftSnapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::ControllerError;
use crate::runtime::durable;

const LOG_FILE: &str = "raft.log";
const STATE_FILE: &str = "raft.state";
const SNAPSHOT_FILE: &str = "raft.snapshot";
/// Bytes of a frame's header: length, then CRC32C of the payload.
const FRAME_HEADER_BYTES: usize = 8;
/// Largest entry the log accepts: a metadata batch is a few KiB; a frame
/// claiming more is corruption.
pub const ENTRY_BYTES_MAX: usize = 16 << 20;

fn io(context: &str, source: std::io::Error) -> ControllerError {
    ControllerError::Storage { context: context.into(), source }
}

fn corrupt(file: &str, why: impl std::fmt::Display) -> ControllerError {
    ControllerError::Storage {
        context: format!("{file} is corrupt"),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string()),
    }
}

/// Raft's log, hard state and snapshot, in memory and on disk.
pub struct DurableStorage {
    dir: PathBuf,
    log: File,
    hard_state: HardState,
    conf_state: ConfState,
    /// Entries after the snapshot, in index order, without gaps.
    entries: Vec<Entry>,
    snapshot: RaftSnapshot,
}

fn frame(entry: &Entry) -> Vec<u8> {
    let payload = entry.write_to_bytes().expect("an in-memory entry encodes");
    let mut bytes = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

/// The whole frames at the start of `bytes` and the bytes they take; stops
/// at the first incomplete or corrupt one.
fn read_frames(bytes: &[u8]) -> (Vec<Entry>, usize) {
    let (mut entries, mut at) = (Vec::new(), 0);
    while bytes.len() - at >= FRAME_HEADER_BYTES {
        let length = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let start = at + FRAME_HEADER_BYTES;
        if length > ENTRY_BYTES_MAX || bytes.len() - start < length {
            break;
        }
        let payload = &bytes[start..start + length];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(entry) = Entry::parse_from_bytes(payload) else { break };
        entries.push(entry);
        at = start + length;
    }
    (entries, at)
}

impl DurableStorage {
    /// Opens the storage in `dir`; a new one starts with `voters` as its
    /// configuration (every node of the quorum starts from the same one).
    pub fn open(dir: &Path, voters: &[u64]) -> Result<DurableStorage, ControllerError> {
        std::fs::create_dir_all(dir).map_err(|e| io("create the controller directory", e))?;
        let snapshot = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => RaftSnapshot::parse_from_bytes(&bytes).map_err(|e| corrupt(SNAPSHOT_FILE, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RaftSnapshot::default(),
            Err(e) => return Err(io("read raft.snapshot", e)),
        };
        let (hard_state, conf_state) = match std::fs::read(dir.join(STATE_FILE)) {
            Ok(bytes) => decode_state(&bytes).ok_or_else(|| corrupt(STATE_FILE, "unreadable"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (HardState::default(), ConfState { voters: voters.to_vec(), ..Default::default() })
            }
            Err(e) => return Err(io("read raft.state", e)),
        };
        let log_path = dir.join(LOG_FILE);
        let bytes = match std::fs::read(&log_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io("read raft.log", e)),
        };
        let (frames, good_bytes) = read_frames(&bytes);
        if good_bytes < bytes.len() {
            tracing::warn!(dropped_bytes = bytes.len() - good_bytes, "controller log: dropping a torn tail");
        }
        let log = OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| io("open raft.log", e))?;
        log.set_len(good_bytes as u64).map_err(|e| io("truncate raft.log", e))?;
        log.sync_all().map_err(|e| io("fsync raft.log", e))?;
        let mut storage =
            DurableStorage { dir: dir.into(), log, hard_state, conf_state, entries: Vec::new(), snapshot };
        for entry in frames {
            if entry.index > storage.snapshot_index() {
                storage.place(entry);
            }
        }
        // A commit index past the log (the state file is written after the
        // entries, but a snapshot may have moved it) is brought back.
        storage.hard_state.commit = storage.hard_state.commit.min(storage.last());
        Ok(storage)
    }

    /// The same storage opened again from its files: what a restart would
    /// find (everything in memory is also on disk).
    pub fn reopen(&self) -> Result<DurableStorage, ControllerError> {
        DurableStorage::open(&self.dir, &self.conf_state.voters)
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn last(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_index(), |e| e.index)
    }

    /// Puts `entry` in memory, replacing the tail from its index.
    fn place(&mut self, entry: Entry) {
        let first = self.snapshot_index() + 1;
        assert!(entry.index >= first, "entry {} before the snapshot's end {}", entry.index, first - 1);
        assert!(entry.index <= self.last() + 1, "entry {} leaves a gap after {}", entry.index, self.last());
        self.entries.truncate((entry.index - first) as usize);
        self.entries.push(entry);
    }

    /// Appends entries and fdatasyncs them (blocking: the controller's own thread).
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), ControllerError> {
        if entries.is_empty() {
            return Ok(());
        }
        let bytes: Vec<u8> = entries.iter().flat_map(frame).collect();
        self.log.write_all(&bytes).map_err(|e| io("append to raft.log", e))?;
        self.log.sync_data().map_err(|e| io("fdatasync raft.log", e))?;
        for entry in entries {
            self.place(entry.clone());
        }
        Ok(())
    }

    /// Makes `hard_state` durable (term and vote before any vote is sent).
    pub fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), ControllerError> {
        if hard_state != self.hard_state {
            self.hard_state = hard_state;
            self.write_state()?;
        }
        Ok(())
    }

    pub fn set_commit(&mut self, commit: u64) -> Result<(), ControllerError> {
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = commit;
        self.set_hard_state(hard_state)
    }

    fn write_state(&self) -> Result<(), ControllerError> {
        durable::replace(&self.dir.join(STATE_FILE), &encode_state(&self.hard_state, &self.conf_state))
            .map_err(|e| io("replace raft.state", e))
    }

    /// Installs a snapshot the leader sent: the log before it goes.
    pub fn apply_snapshot(&mut self, snapshot: RaftSnapshot) -> Result<(), ControllerError> {
        let metadata = snapshot.get_metadata();
        if metadata.index <= self.snapshot_index() {
            return Ok(());
        }
        self.hard_state.term = self.hard_state.term.max(metadata.term);
        self.hard_state.commit = self.hard_state.commit.max(metadata.index);
        self.conf_state = metadata.get_conf_state().clone();
        let keep_from = self.entries.iter().position(|e| e.index > metadata.index && e.term >= metadata.term);
        // Entries the snapshot covers go; so does a tail that disagrees with it.
        let rest = match self.entries.iter().find(|e| e.index == metadata.index) {
            Some(e) if e.term == metadata.term => keep_from.map(|i| self.entries.split_off(i)).unwrap_or_default(),
            _ => Vec::new(),
        };
        self.snapshot = snapshot;
        self.entries = rest;
        self.persist_compaction()
    }

    /// Replaces the snapshot with `data`, the state machine at `applied`
    /// (an applied, so committed, index), and drops the entries it covers.
    pub fn compact(&mut self, applied: u64, data: Vec<u8>) -> Result<(), ControllerError> {
        if applied <= self.snapshot_index() {
            return Ok(());
        }
        let term = raft::Storage::term(self, applied).map_err(|e| corrupt(LOG_FILE, e))?;
        let mut snapshot = RaftSnapshot { data: data.into(), ..Default::default() };
        let metadata = snapshot.mut_metadata();
        metadata.index = applied;
        metadata.term = term;
        metadata.set_conf_state(self.conf_state.clone());
        let first = self.snapshot_index() + 1;
        self.entries.drain(..(applied + 1 - first) as usize);
        self.snapshot = snapshot;
        self.persist_compaction()
    }

    /// Snapshot first, then the log without what the snapshot covers.
    fn persist_compaction(&mut self) -> Result<(), ControllerError> {
        let snapshot = self.snapshot.write_to_bytes().expect("a snapshot encodes");
        durable::replace(&self.dir.join(SNAPSHOT_FILE), &snapshot).map_err(|e| io("replace raft.snapshot", e))?;
        self.write_state()?;
        let log: Vec<u8> = self.entries.iter().flat_map(frame).collect();
        let path = self.dir.join(LOG_FILE);
        durable::replace(&path, &log).map_err(|e| io("rewrite raft.log", e))?;
        self.log = OpenOptions::new().append(true).open(&path).map_err(|e| io("open raft.log", e))?;
        Ok(())
    }

    /// Entries kept in memory and on disk after the snapshot.
    pub fn entries_held(&self) -> usize {
        self.entries.len()
    }

    /// The last snapshot's data (the metadata state at its index).
    pub fn snapshot_data(&self) -> (&[u8], u64) {
        (&self.snapshot.data, self.snapshot_index())
    }
}

fn encode_state(hard_state: &HardState, conf_state: &ConfState) -> Vec<u8> {
    let hard = hard_state.write_to_bytes().expect("a hard state encodes");
    let conf = conf_state.write_to_bytes().expect("a conf state encodes");
    let mut bytes = Vec::with_capacity(8 + hard.len() + conf.len());
    bytes.extend_from_slice(&(hard.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&hard);
    bytes.extend_from_slice(&conf);
    bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_be_bytes());
    bytes
}

fn decode_state(bytes: &[u8]) -> Option<(HardState, ConfState)> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32c::crc32c(body).to_be_bytes() != crc {
        return None;
    }
    let hard_len = u32::from_be_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let hard = body.get(4..4 + hard_len)?;
    let conf = body.get(4 + hard_len..)?;
    Some((HardState::parse_from_bytes(hard).ok()?, ConfState::parse_from_bytes(conf).ok()?))
}

impl raft::Storage for DurableStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let first = self.snapshot_index() + 1;
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut entries = self.entries[(low - first) as usize..(high - first) as usize].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let snapshot = self.snapshot.get_metadata();
        if index == snapshot.index {
            return Ok(snapshot.term);
        }
        if index < snapshot.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match self.entries.get((index - snapshot.index - 1) as usize) {
            Some(entry) => Ok(entry.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_index() + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<RaftSnapshot> {
        if self.snapshot_index() < request_index {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry { index, term, data: data.to_vec().into(), ..Default::default() }
    }

    fn data(storage: &DurableStorage) -> Vec<(u64, u64, Vec<u8>)> {
        let (first, last) = (storage.first_index().unwrap(), storage.last_index().unwrap());
        let entries = storage.entries(first, last + 1, None, GetEntriesContext::empty(false)).unwrap();
        entries.iter().map(|e| (e.index, e.term, e.data.to_vec())).collect()
    }

    #[test]
    fn entries_and_state_survive_reopen_and_an_overwritten_tail_stays_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = DurableStorage::open(dir.path(), &[1, 2, 3]).unwrap();
            s.append(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")]).unwrap();
            // A new leader of term 2 overwrote index 2 onwards.
            s.append(&[entry(2, 2, b"B")]).unwrap();
            let mut hard = HardState::default();
            (hard.term, hard.vote, hard.commit) = (2, 3, 2);
            s.set_hard_state(hard).unwrap();
        }
        let s = DurableStorage::open(dir.path(), &[9]).unwrap();
        assert_eq!(data(&s), vec![(1, 1, b"a".to_vec()), (2, 2, b"B".to_vec())]);
        let state = s.initial_state().unwrap();
        assert_eq!((state.hard_state.term, state.hard_state.vote, state.hard_state.commit), (2, 3, 2));
        assert_eq!(state.conf_state.voters, vec![1, 2, 3], "the first configuration, not the one passed later");
    }

    #[test]
    fn a_torn_tail_is_dropped_and_appends_go_on_after_the_good_entries() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = DurableStorage::open(dir.path(), &[1]).unwrap();
            s.append(&[entry(1, 1, b"kept"), entry(2, 1, b"torn")]).unwrap();
        }
        let path = dir.path().join(LOG_FILE);
        let len = std::fs::metadata(&path).unwrap().len();
        // SIGKILL mid-append: the second frame lost its last bytes.
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 2).unwrap();
        let mut s = DurableStorage::open(dir.path(), &[1]).unwrap();
        assert_eq!(data(&s), vec![(1, 1, b"kept".to_vec())]);
        s.append(&[entry(2, 2, b"next")]).unwrap();
        drop(s);
        // A flipped byte in the last frame's payload is caught by its CRC.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let s = DurableStorage::open(dir.path(), &[1]).unwrap();
        assert_eq!(data(&s), vec![(1, 1, b"kept".to_vec())]);
    }

    #[test]
    fn compaction_keeps_the_snapshot_and_the_entries_after_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = DurableStorage::open(dir.path(), &[1]).unwrap();
            s.append(&(1..=5).map(|i| entry(i, 1, &[i as u8])).collect::<Vec<_>>()).unwrap();
            s.set_commit(5).unwrap();
            s.compact(3, b"state at 3".to_vec()).unwrap();
            assert!(matches!(
                s.entries(2, 4, None, GetEntriesContext::empty(false)),
                Err(raft::Error::Store(StorageError::Compacted))
            ));
            assert_eq!(s.term(3).unwrap(), 1, "the snapshot's own index keeps its term");
            s.append(&[entry(6, 2, b"6")]).unwrap();
        }
        let s = DurableStorage::open(dir.path(), &[1]).unwrap();
        assert_eq!(s.first_index().unwrap(), 4);
        assert_eq!(data(&s), vec![(4, 1, vec![4]), (5, 1, vec![5]), (6, 2, b"6".to_vec())]);
        assert_eq!(s.snapshot_data(), (&b"state at 3"[..], 3));
        assert_eq!(s.snapshot(0, 2).unwrap().get_metadata().index, 3);
    }

    #[test]
    fn a_snapshot_from_the_leader_replaces_a_log_it_is_ahead_of() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DurableStorage::open(dir.path(), &[1, 2]).unwrap();
        s.append(&[entry(1, 1, b"a"), entry(2, 1, b"b")]).unwrap();
        let mut snapshot = RaftSnapshot { data: b"state at 10".to_vec().into(), ..Default::default() };
        snapshot.mut_metadata().index = 10;
        snapshot.mut_metadata().term = 3;
        snapshot.mut_metadata().mut_conf_state().voters = vec![1, 2];
        s.apply_snapshot(snapshot).unwrap();
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (11, 10));
        drop(s);
        let mut s = DurableStorage::open(dir.path(), &[1, 2]).unwrap();
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (11, 10));
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 10);
        s.append(&[entry(11, 3, b"c")]).unwrap();
        assert_eq!(data(&s), vec![(11, 3, b"c".to_vec())]);
    }
}
