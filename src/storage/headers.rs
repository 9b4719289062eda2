//! Walking batch headers of a segment file with small io_uring reads, for
//! fetch and ListOffsets. Record bytes are never read on purpose: the fetch
//! path only needs batch boundaries, and the bytes go to the socket by splice.

use std::path::Path;
use std::rc::Rc;

use crate::model::batch::{BatchHeader, HEADER_BYTES};
use crate::runtime::File;

use super::error::StorageError;
use super::segment;

/// One read when batches are small: several headers arrive together. After a
/// batch larger than this, only a header's worth is read.
const SCAN_BYTES: usize = 4096;

/// Read size when every header of a range is wanted (`for_each`).
const BULK_READ_BYTES: u64 = 1 << 20;

/// A forward walk over the batches of one segment below `end` (the readable
/// bytes: whole batches under the written end).
pub struct HeaderWalk<'a> {
    dir: &'a Path,
    segment_base: i64,
    file: Rc<File>,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    next_read: usize,
}

impl<'a> HeaderWalk<'a> {
    pub fn new(dir: &'a Path, segment_base: i64, file: Rc<File>, end: u64) -> HeaderWalk<'a> {
        HeaderWalk { dir, segment_base, file, end, buf: Vec::new(), buf_start: 0, next_read: SCAN_BYTES }
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    /// The file walked: a segment's index describes it only while the
    /// segment still holds this very file (compaction swaps files).
    pub fn file(&self) -> &Rc<File> {
        &self.file
    }

    /// The first batch at or after `position` whose last offset is >= `offset`.
    pub async fn find_offset(
        &mut self,
        mut position: u64,
        offset: i64,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        while position < self.end {
            let header = self.header_at(position).await?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.total_bytes() as u64;
        }
        Ok(None)
    }

    /// The first batch at or after `position` whose max_timestamp is >= `timestamp`.
    pub async fn find_timestamp(
        &mut self,
        mut position: u64,
        timestamp: i64,
    ) -> Result<Option<BatchHeader>, StorageError> {
        while position < self.end {
            let header = self.header_at(position).await?;
            if header.max_timestamp >= timestamp {
                return Ok(Some(header));
            }
            position += header.total_bytes() as u64;
        }
        Ok(None)
    }

    /// Visits every batch header from the boundary `position` to the end,
    /// reading the range in pieces of BULK_READ_BYTES (record bytes too): for
    /// start-up, where one small read per header would cost more.
    pub async fn for_each(
        &mut self,
        mut position: u64,
        mut visit: impl FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        let mut buf = Vec::new();
        while position < self.end {
            let len = (self.end - position).min(BULK_READ_BYTES) as usize;
            if let Err(e) = segment::read_exact_into(&self.file, &mut buf, position, len).await {
                let path = segment::log_path(self.dir, self.segment_base);
                return Err(StorageError::io(format!("reading {} at {position}", path.display()), e));
            }
            let mut at = 0;
            while at + HEADER_BYTES <= buf.len() {
                let header =
                    BatchHeader::parse(&buf[at..]).map_err(|e| self.corrupt(position + at as u64, e.to_string()))?;
                let next = at + header.total_bytes();
                if position + next as u64 > self.end {
                    let reason = format!("batch crosses the readable end {}", self.end);
                    return Err(self.corrupt(position + at as u64, reason));
                }
                visit(&header);
                at = next; // past the buffer when the batch is larger: its body is skipped
            }
            if at == 0 {
                return Err(self.corrupt(position, format!("only {len} bytes left for a batch header")));
            }
            position += at as u64;
        }
        Ok(())
    }

    /// The last batch boundary at or below `limit`, walking from the boundary
    /// `position` (itself <= limit).
    pub async fn boundary_at_or_below(&mut self, mut position: u64, limit: u64) -> Result<u64, StorageError> {
        debug_assert!(position <= limit);
        while position < self.end {
            let next = position + self.header_at(position).await?.total_bytes() as u64;
            if next > limit {
                break;
            }
            position = next;
        }
        Ok(position)
    }

    /// The header of the batch at `position`, from the buffer when the last
    /// read already brought it.
    async fn header_at(&mut self, position: u64) -> Result<BatchHeader, StorageError> {
        debug_assert!(position < self.end, "walks stay below the readable end");
        let buffered =
            position >= self.buf_start && position + HEADER_BYTES as u64 <= self.buf_start + self.buf.len() as u64;
        if !buffered {
            self.fill(position).await?;
        }
        let at = (position - self.buf_start) as usize;
        let header = BatchHeader::parse(&self.buf[at..]).map_err(|e| self.corrupt(position, e.to_string()))?;
        let bytes = header.total_bytes() as u64;
        if position + bytes > self.end {
            return Err(self.corrupt(position, format!("batch of {bytes} bytes crosses the readable end {}", self.end)));
        }
        self.next_read = if bytes as usize > SCAN_BYTES { HEADER_BYTES } else { SCAN_BYTES };
        Ok(header)
    }

    async fn fill(&mut self, position: u64) -> Result<(), StorageError> {
        let len = (self.next_read as u64).min(self.end - position) as usize;
        if len < HEADER_BYTES {
            return Err(self.corrupt(position, format!("only {len} bytes left for a batch header")));
        }
        let result = segment::read_exact_into(&self.file, &mut self.buf, position, len).await;
        self.buf_start = position;
        if let Err(e) = result {
            let path = segment::log_path(self.dir, self.segment_base);
            return Err(StorageError::io(format!("reading {} at {position}", path.display()), e));
        }
        Ok(())
    }

    fn corrupt(&self, position: u64, reason: String) -> StorageError {
        StorageError::Corrupt {
            path: segment::log_path(self.dir, self.segment_base).display().to_string(),
            position,
            reason,
        }
    }
}

/// The end of the last whole batch at or below `limit` in `bytes`, walking
/// back-to-back batches from `first_end` (the end of the first, which is
/// kept whatever its size, KIP-74) and taking none whose last offset
/// reaches `end_offset` (a replica's high watermark), and the last offset of
/// the last batch taken after the first, if any. Stops at a header it cannot
/// parse or a batch the bytes do not hold. For batches already in memory
/// (the hot tail, an O_DIRECT read).
pub fn whole_batches_end(bytes: &[u8], first_end: usize, limit: usize, end_offset: i64) -> (usize, Option<i64>) {
    let (mut end, mut last_offset) = (first_end, None);
    while let Some(Ok(header)) = bytes.get(end..).map(BatchHeader::parse) {
        let next = end + header.total_bytes();
        if next > limit || next > bytes.len() || header.last_offset() >= end_offset {
            break;
        }
        (end, last_offset) = (next, Some(header.last_offset()));
    }
    (end, last_offset)
}
