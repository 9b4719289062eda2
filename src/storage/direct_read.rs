//! Fetch reads of bytes the hot tail no longer holds, for logs written with
//! O_DIRECT: read with O_DIRECT too, into memory the fetch answer is sent
//! from. Through the page cache they would cost the shard more CPU than the
//! read itself (filling it; see segment.rs), and nothing else would use the
//! pages. Batch boundaries are found in the bytes read; nothing is copied.

use std::io;

use bytes::Bytes;

use super::headers::whole_batches_end;
use crate::model::batch::{BatchHeader, HEADER_BYTES};
use crate::runtime::{align_down, AlignedBuf, BoundedBuf, File, DIRECT_IO_ALIGN};

/// Read at least this much at once: small reads cost the device as much as
/// larger ones, and the consumer comes back for the next bytes.
const MIN_READ: u64 = 256 << 10;

/// How far past an index entry the batch holding the offset may start (the
/// index has an entry every index.interval.bytes, 4 KiB by default).
const INDEX_SLACK: u64 = 64 << 10;

/// Whole batches from the one holding `offset`, up to `max_bytes` but at
/// least one, searched from the batch boundary `from` up to `end` (the
/// readable end, also a batch boundary). None if the segment ends first.
pub async fn read(file: &File, mut from: u64, end: u64, offset: i64, max_bytes: u32) -> io::Result<Option<Bytes>> {
    let want = u64::from(max_bytes).max(MIN_READ) + INDEX_SLACK;
    while from < end {
        let window = Window::read(file, from, (from + want).min(end)).await?;
        let mut at = from;
        while at < end {
            let Some(header) = window.header(at)? else { break };
            if header.last_offset() < offset {
                at += header.total_bytes() as u64;
                continue;
            }
            let first_end = at + header.total_bytes() as u64;
            if first_end > end {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "a batch runs past the readable bytes"));
            }
            let limit = (at + u64::from(max_bytes)).max(first_end).min(end);
            let window = if first_end <= window.end() { window } else { Window::read(file, at, limit).await? };
            if first_end > window.end() {
                // The file is shorter than the log says (cut under the broker).
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "segment file shorter than its batches"));
            }
            return Ok(Some(window.batches(at, first_end, limit)));
        }
        if at == from {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "segment file shorter than its batches"));
        }
        // The next header is past the window: read on from it.
        from = at;
    }
    Ok(None)
}

/// File bytes from `start` (a block boundary), as read.
struct Window {
    start: u64,
    bytes: Bytes,
}

impl Window {
    /// Reads the blocks that hold `from..to` (fewer at the end of the file).
    async fn read(file: &File, from: u64, to: u64) -> io::Result<Window> {
        let start = align_down(from);
        let len = (to.next_multiple_of(DIRECT_IO_ALIGN as u64) - start) as usize;
        let mut buf = AlignedBuf::with_capacity(len);
        while buf.len() < len {
            let filled = buf.len();
            let (result, slice) = file.read_at(buf.slice(filled..len), start + filled as u64).await;
            buf = slice.into_inner();
            if result? == 0 {
                break;
            }
        }
        Ok(Window { start, bytes: Bytes::from_owner(buf) })
    }

    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// The header of the batch at `at`, if the window holds all of it.
    fn header(&self, at: u64) -> io::Result<Option<BatchHeader>> {
        let from = (at - self.start) as usize;
        let Some(header) = self.bytes.get(from..from + HEADER_BYTES) else { return Ok(None) };
        let header =
            BatchHeader::parse(header).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(Some(header))
    }

    /// The batches from `at` (whose first ends at `first_end`) that end by
    /// `limit` and lie in the window.
    fn batches(&self, at: u64, first_end: u64, limit: u64) -> Bytes {
        debug_assert!(first_end <= self.end(), "the first batch lies in the window");
        let relative = |position: u64| (position - self.start) as usize;
        let end = whole_batches_end(&self.bytes, relative(first_end), relative(limit));
        Bytes::slice(&self.bytes, relative(at)..end)
    }
}
