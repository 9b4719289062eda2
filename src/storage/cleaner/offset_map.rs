//! The cleaner's key -> latest offset map, bounded in memory as Kafka's
//! `SkimpyOffsetMap` is: keys are kept as 16-byte digests, never as bytes, so
//! a key costs the same whatever its length.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Bytes one key is counted as: a 16-byte digest and an 8-byte offset, and
/// as much again for the hash table's control bytes and spare capacity.
pub const ENTRY_BYTES: u64 = 48;

/// A 128-bit digest of a key: two SipHash-1-3 runs (std's hasher with fixed
/// keys) over differently prefixed input. Two keys sharing a digest would make
/// the cleaner drop the older one's record; at 128 bits that takes ~2^64 keys.
fn digest(key: &[u8]) -> u128 {
    let half = |seed: u8| {
        // DefaultHasher::new() always uses the same keys, unlike RandomState.
        let mut hasher = std::hash::DefaultHasher::new();
        seed.hash(&mut hasher);
        key.hash(&mut hasher);
        hasher.finish() as u128
    };
    (half(0) << 64) | half(1)
}

/// Latest offset of each key seen in a log's dirty section.
pub struct OffsetMap {
    offsets: HashMap<u128, i64>,
    entries_max: usize,
}

impl OffsetMap {
    /// A map holding at most `bytes / ENTRY_BYTES` keys (at least one).
    pub fn with_bytes(bytes: u64) -> OffsetMap {
        let entries_max = (bytes / ENTRY_BYTES).clamp(1, usize::MAX as u64) as usize;
        OffsetMap { offsets: HashMap::new(), entries_max }
    }

    pub fn clear(&mut self) {
        self.offsets.clear();
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether `keys` more distinct keys surely fit.
    pub fn has_room(&self, keys: usize) -> bool {
        self.offsets.len().saturating_add(keys) <= self.entries_max
    }

    /// Records `offset` as the latest of `key`; callers go forward in offsets
    /// and check [`Self::has_room`] first.
    pub fn put(&mut self, key: &[u8], offset: i64) {
        let previous = self.offsets.insert(digest(key), offset);
        debug_assert!(previous.is_none_or(|p| p < offset), "offsets are put in increasing order");
        debug_assert!(self.offsets.len() <= self.entries_max, "callers check has_room");
    }

    /// The latest offset of `key` in the mapped section, if it appears there.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.offsets.get(&digest(key)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_and_respects_its_bound() {
        let mut map = OffsetMap::with_bytes(3 * ENTRY_BYTES);
        map.put(b"a", 1);
        map.put(b"b", 2);
        map.put(b"a", 5);
        assert_eq!(map.get(b"a"), Some(5));
        assert_eq!(map.get(b"b"), Some(2));
        assert_eq!(map.get(b"c"), None);
        assert!(map.has_room(1));
        assert!(!map.has_room(2));
        assert_ne!(digest(b"ab"), digest(b"ba"));
        map.clear();
        assert_eq!(map.len(), 0);
    }
}
