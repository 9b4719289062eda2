//! The two sparse indexes of a segment, kept in memory (a `Vec` the shard
//! owns, never an mmap: a page fault would stall the shard's loop).
//!
//! ```text
//! <base_offset:020>.index      entries of 8 bytes, big endian:
//!     relative_offset u32   base offset of an indexed batch - segment base offset
//!     position        u32   byte position of that batch in the .log file
//! <base_offset:020>.timeindex  entries of 12 bytes, big endian:
//!     timestamp       i64   largest max_timestamp of every batch up to and including ...
//!     relative_offset u32   ... the batch with this base offset
//! ```
//!
//! An offset entry is added for the first batch that starts at least
//! `index_interval_bytes` after the previous entry (or the segment start). A
//! time entry is added at the same moments, when the largest timestamp seen
//! grew since the last time entry, and once more when the segment is sealed, so
//! the last time entry holds the segment's largest timestamp.
//!
//! Both files are written whole when a segment is sealed (rolled) and at a
//! clean close, and are fsynced then; the active segment has none on disk
//! while the broker runs. After a crash they may be missing, short or stale:
//! recovery checks them (size a multiple of the entry size, strictly
//! increasing, positions inside the file, the last entry pointing at the batch
//! it names) and rebuilds them from the log when any check fails.

/// Bytes of one `.index` entry.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of one `.timeindex` entry.
pub const TIME_ENTRY_BYTES: usize = 12;

/// Relative offset → file position, for batch starts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        debug_assert!(
            self.entries.last().is_none_or(|&(r, p)| r < relative_offset && p < position),
            "offset index must grow strictly"
        );
        self.entries.push((relative_offset, position));
    }

    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    pub fn pop(&mut self) -> Option<(u32, u32)> {
        self.entries.pop()
    }

    /// Position of the last indexed batch starting at or below
    /// `relative_offset`: the batch holding that offset starts there or later.
    pub fn position_for(&self, relative_offset: u32) -> u32 {
        let after = self.entries.partition_point(|&(r, _)| r <= relative_offset);
        after.checked_sub(1).map_or(0, |i| self.entries[i].1)
    }

    /// Position of the last indexed batch starting at or below `position`:
    /// a batch boundary the fetch path can scan forward from.
    pub fn boundary_at_or_below(&self, position: u64) -> u64 {
        let after = self.entries.partition_point(|&(_, p)| p as u64 <= position);
        after.checked_sub(1).map_or(0, |i| self.entries[i].1 as u64)
    }

    /// Drops the entries of batches at or after `position` (a truncated tail).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self.entries.partition_point(|&(_, p)| (p as u64) < position);
        self.entries.truncate(keep);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for &(relative_offset, position) in &self.entries {
            out.extend_from_slice(&relative_offset.to_be_bytes());
            out.extend_from_slice(&position.to_be_bytes());
        }
        out
    }

    /// Decodes a `.index` file, refusing anything recovery cannot trust.
    pub fn decode(bytes: &[u8], log_bytes: u64) -> Result<OffsetIndex, &'static str> {
        if bytes.len() % OFFSET_ENTRY_BYTES != 0 {
            return Err("size is not a multiple of the entry size");
        }
        let mut index = OffsetIndex::default();
        for entry in bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
            let relative_offset = u32::from_be_bytes(entry[0..4].try_into().unwrap());
            let position = u32::from_be_bytes(entry[4..8].try_into().unwrap());
            if let Some((r, p)) = index.last() {
                if relative_offset <= r || position <= p {
                    return Err("entries are not strictly increasing");
                }
            }
            if position as u64 >= log_bytes {
                return Err("an entry points past the end of the log file");
            }
            index.entries.push((relative_offset, position));
        }
        Ok(index)
    }
}

/// Largest timestamp so far → relative offset of the batch where it was seen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub fn push(&mut self, timestamp: i64, relative_offset: u32) {
        debug_assert!(
            self.entries.last().is_none_or(|&(t, r)| t < timestamp && r <= relative_offset),
            "time index must grow"
        );
        self.entries.push((timestamp, relative_offset));
    }

    pub fn last_timestamp(&self) -> Option<i64> {
        self.entries.last().map(|&(t, _)| t)
    }

    /// Relative offset to start a timestamp search from: every batch up to
    /// the returned one has max_timestamp < `timestamp`, so the first match
    /// lies after it. None: search from the segment start.
    pub fn search_start(&self, timestamp: i64) -> Option<u32> {
        let below = self.entries.partition_point(|&(t, _)| t < timestamp);
        below.checked_sub(1).map(|i| self.entries[i].1)
    }

    /// Drops the entries naming batches at or after `relative_offset`.
    pub fn truncate_from(&mut self, relative_offset: u32) {
        let keep = self.entries.partition_point(|&(_, r)| r < relative_offset);
        self.entries.truncate(keep);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for &(timestamp, relative_offset) in &self.entries {
            out.extend_from_slice(&timestamp.to_be_bytes());
            out.extend_from_slice(&relative_offset.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<TimeIndex, &'static str> {
        if bytes.len() % TIME_ENTRY_BYTES != 0 {
            return Err("size is not a multiple of the entry size");
        }
        let mut index = TimeIndex::default();
        for entry in bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let timestamp = i64::from_be_bytes(entry[0..8].try_into().unwrap());
            let relative_offset = u32::from_be_bytes(entry[8..12].try_into().unwrap());
            if let Some(&(t, r)) = index.entries.last() {
                if timestamp <= t || relative_offset < r {
                    return Err("entries are not increasing");
                }
            }
            index.entries.push((timestamp, relative_offset));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_the_entry_at_or_below() {
        let mut index = OffsetIndex::default();
        index.push(10, 4100);
        index.push(20, 8300);
        assert_eq!(index.position_for(0), 0);
        assert_eq!(index.position_for(9), 0);
        assert_eq!(index.position_for(10), 4100);
        assert_eq!(index.position_for(19), 4100);
        assert_eq!(index.position_for(500), 8300);
        assert_eq!(index.boundary_at_or_below(8299), 4100);
        assert_eq!(index.boundary_at_or_below(8300), 8300);
    }

    #[test]
    fn offset_index_round_trips_and_refuses_bad_files() {
        let mut index = OffsetIndex::default();
        index.push(3, 100);
        index.push(7, 300);
        let bytes = index.encode();
        assert_eq!(bytes.len(), 16);
        assert_eq!(OffsetIndex::decode(&bytes, 400), Ok(index.clone()));
        assert!(OffsetIndex::decode(&bytes[..12], 400).is_err());
        assert!(OffsetIndex::decode(&bytes, 300).is_err(), "position past the log end");
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert!(OffsetIndex::decode(&swapped, 400).is_err());
        assert!(OffsetIndex::decode(&[0; 16], 400).is_err(), "zero-filled tail");
    }

    #[test]
    fn time_search_starts_after_smaller_timestamps() {
        let mut index = TimeIndex::default();
        index.push(100, 0);
        index.push(200, 5);
        index.push(300, 9);
        assert_eq!(index.search_start(50), None);
        assert_eq!(index.search_start(100), None);
        assert_eq!(index.search_start(101), Some(0));
        assert_eq!(index.search_start(250), Some(5));
        assert_eq!(index.search_start(1000), Some(9));
        assert_eq!(TimeIndex::decode(&index.encode()), Ok(index.clone()));
        index.truncate_from(5);
        assert_eq!(index.last_timestamp(), Some(100));
    }
}
