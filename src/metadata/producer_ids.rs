//! Producer id blocks, as Kafka's controller allocates them (KIP-730,
//! ProducerIdsRecord): the metadata owner (shard 0) hands ids out a block at
//! a time, and persists the end of a block before any id from it is used.
//! So an id is never handed out twice, by two shards or across restarts: a
//! crash loses at most the unused rest of each shard's block.
//!
//! The state is one number, the first id of the next block, kept in
//! `producer-ids.checkpoint` in the data directory (`next_producer_id=N`),
//! replaced crash-safely: a temporary file is written and fsynced, renamed
//! over the checkpoint, and the directory fsynced. It is not a record of the
//! metadata log: that log has no snapshots, and a client calling
//! InitProducerId in a loop would grow it by a line per block for ever.

use std::path::{Path, PathBuf};

use super::MetadataError;
use crate::runtime::durable;

const FILE_NAME: &str = "producer-ids.checkpoint";
const KEY: &str = "next_producer_id=";
/// Ids per block. Kafka's blocks hold 1,000, but each block costs shard 0
/// two fsyncs and a rename, and a client can ask for ids as fast as it
/// likes (~130,000 a second were measured): at 65,536 that is two blocks a
/// second. The id space (2^63) is not the limit: a restart wastes at most a
/// block per shard.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1 << 16;

/// Producer ids `first..end` (end exclusive), for one shard to hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdBlock {
    pub first: i64,
    pub end: i64,
}

impl ProducerIdBlock {
    /// The block's first id, and what is left of the block after it.
    pub fn take_first(self) -> (i64, Option<ProducerIdBlock>) {
        debug_assert!(self.first < self.end, "blocks are never empty");
        let rest = ProducerIdBlock { first: self.first + 1, end: self.end };
        (self.first, (rest.first < rest.end).then_some(rest))
    }
}

/// The allocator's durable state; owned by shard 0's `MetadataStore`.
pub struct ProducerIdStore {
    dir: PathBuf,
    next_producer_id: i64,
}

fn io_error(context: &str, source: std::io::Error) -> MetadataError {
    MetadataError::Io { context: format!("{FILE_NAME}: {context}"), source }
}

impl ProducerIdStore {
    /// Reads the checkpoint; a data directory without one starts at id 0.
    /// (Builds before the checkpoint derived ids from the start time, about
    /// 2^59 and up, so ids counted from 0 meet none of theirs.)
    pub fn open(data_dir: &Path) -> Result<ProducerIdStore, MetadataError> {
        let next_producer_id = match std::fs::read_to_string(data_dir.join(FILE_NAME)) {
            Ok(text) => parse(&text).ok_or_else(|| MetadataError::CorruptFile {
                file: FILE_NAME,
                why: format!("it holds {text:?}; write {KEY}N, N above every producer id ever used, to start"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_error("read", e)),
        };
        Ok(ProducerIdStore { dir: data_dir.to_path_buf(), next_producer_id })
    }

    /// The next block, durable before it is returned. Cold: once per block.
    pub fn allocate(&mut self) -> Result<ProducerIdBlock, MetadataError> {
        let first = self.next_producer_id;
        let end = first.checked_add(PRODUCER_ID_BLOCK_SIZE).ok_or(MetadataError::ProducerIdsExhausted)?;
        self.persist(end)?;
        self.next_producer_id = end;
        Ok(ProducerIdBlock { first, end })
    }

    fn persist(&self, next_producer_id: i64) -> Result<(), MetadataError> {
        let text = format!("{KEY}{next_producer_id}\n");
        durable::replace(&self.dir.join(FILE_NAME), text.as_bytes()).map_err(|e| io_error("replace", e))
    }
}

fn parse(text: &str) -> Option<i64> {
    text.trim_end().strip_prefix(KEY)?.parse().ok().filter(|id: &i64| *id >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_never_repeat_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProducerIdStore::open(dir.path()).unwrap();
        let first = store.allocate().unwrap();
        let second = store.allocate().unwrap();
        assert_eq!(first, ProducerIdBlock { first: 0, end: PRODUCER_ID_BLOCK_SIZE });
        assert_eq!(second.first, first.end);
        // Durable before it was handed out: a reopen (a crash) starts after it.
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(text, format!("next_producer_id={}\n", second.end));
        drop(store);
        let third = ProducerIdStore::open(dir.path()).unwrap().allocate().unwrap();
        assert_eq!(third, ProducerIdBlock { first: second.end, end: second.end + PRODUCER_ID_BLOCK_SIZE });
    }

    #[test]
    fn the_id_space_running_out_is_an_error_not_a_wrap() {
        let dir = tempfile::tempdir().unwrap();
        let last_block = i64::MAX - PRODUCER_ID_BLOCK_SIZE;
        std::fs::write(dir.path().join(FILE_NAME), format!("next_producer_id={last_block}\n")).unwrap();
        let mut store = ProducerIdStore::open(dir.path()).unwrap();
        assert_eq!(store.allocate().unwrap(), ProducerIdBlock { first: last_block, end: i64::MAX });
        assert!(matches!(store.allocate(), Err(MetadataError::ProducerIdsExhausted)));
        assert!(matches!(store.allocate(), Err(MetadataError::ProducerIdsExhausted)), "and it stays so");
        let reopened = ProducerIdStore::open(dir.path()).unwrap().allocate();
        assert!(matches!(reopened, Err(MetadataError::ProducerIdsExhausted)));
    }

    #[test]
    fn a_damaged_checkpoint_refuses_to_start_rather_than_repeat_ids() {
        let dir = tempfile::tempdir().unwrap();
        for damaged in ["", "next_producer_id=", "next_producer_id=-5\n", "garbage"] {
            std::fs::write(dir.path().join(FILE_NAME), damaged).unwrap();
            assert!(matches!(ProducerIdStore::open(dir.path()), Err(MetadataError::CorruptFile { .. })), "{damaged:?}");
        }
    }

    #[test]
    fn a_block_is_handed_out_one_id_at_a_time() {
        let block = ProducerIdBlock { first: 7, end: 9 };
        let (id, rest) = block.take_first();
        assert_eq!((id, rest), (7, Some(ProducerIdBlock { first: 8, end: 9 })));
        assert_eq!(rest.unwrap().take_first(), (8, None));
    }
}
