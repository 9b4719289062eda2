//! What a read of a partition log gives a fetch: whole batches, as a file
//! range to splice or as bytes in memory that hold their buffer.

use std::rc::Rc;

use bytes::Bytes;

use crate::runtime::File;

/// Whole batches, as a fetch sends them.
#[derive(Debug, Clone)]
pub enum ReadSlice {
    /// `bytes` long from `position` of a segment file, to be spliced to a
    /// socket. They stay valid while the `Rc<File>` is held.
    File { file: Rc<File>, position: u64, bytes: u32 },
    /// In memory: the hot tail, or an O_DIRECT read. `bytes`, then `more`
    /// (the following writes' ranges of the hot tail, in order; empty
    /// otherwise, which allocates nothing). The bytes keep the buffers they
    /// lie in, `held_bytes` of memory, until dropped; the shard counts it
    /// (`read_memory`).
    Memory { bytes: Bytes, more: Vec<Bytes>, held_bytes: usize },
}

impl ReadSlice {
    #[allow(clippy::len_without_is_empty)] // never empty: at least one batch
    pub fn len(&self) -> u32 {
        match self {
            ReadSlice::File { bytes, .. } => *bytes,
            ReadSlice::Memory { bytes, more, .. } => (bytes.len() + more.iter().map(Bytes::len).sum::<usize>()) as u32,
        }
    }

    /// Memory the slice keeps until dropped: none for file ranges.
    pub fn held_bytes(&self) -> usize {
        match self {
            ReadSlice::File { .. } => 0,
            ReadSlice::Memory { held_bytes, .. } => *held_bytes,
        }
    }

    /// The bytes in memory, read from the file if need be (cold paths:
    /// ListOffsets by timestamp, replaying committed offsets).
    pub async fn into_bytes(self) -> std::io::Result<Bytes> {
        match self {
            ReadSlice::File { file, position, bytes } => {
                let (read, buf) = file.read_exact_at(Vec::with_capacity(bytes as usize), position).await;
                read.map(|()| Bytes::from(buf))
            }
            ReadSlice::Memory { bytes, more, .. } if more.is_empty() => Ok(bytes),
            ReadSlice::Memory { bytes, more, .. } => {
                let mut all = Vec::with_capacity(bytes.len() + more.iter().map(Bytes::len).sum::<usize>());
                for part in std::iter::once(&bytes).chain(&more) {
                    all.extend_from_slice(part);
                }
                Ok(Bytes::from(all))
            }
        }
    }
}
