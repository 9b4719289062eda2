//! Fetch reads of bytes the hot tail no longer holds, for logs written with
//! O_DIRECT: read with O_DIRECT too, into memory the fetch answer is sent
//! from. Through the page cache they would cost the shard more CPU than the
//! read itself (filling it; see segment.rs), and nothing else would use the
//! pages. Batch boundaries are found in the bytes read; nothing is copied.
//!
//! Read buffers are reused (`take_buffer`, `Pooled`): for a fresh buffer the
//! kernel faults in and zeroes every page while it pins them for the read,
//! which took half of the shard's time when a consumer read from the disk.
//! And a consumer reading from the disk is read ahead (`ReadAhead`): the
//! bytes after an answer are read while it is sent and the consumer asks
//! again, which otherwise left the device idle a third of the time.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::headers::whole_batches_end;
use super::read_memory;
use crate::model::batch::{BatchHeader, HEADER_BYTES};
use crate::runtime::{align_down, AlignedBuf, BoundedBuf, File, DIRECT_IO_ALIGN};

/// Read at least this much at once: small reads cost the device as much as
/// larger ones, and the consumer comes back for the next bytes.
const MIN_READ: u64 = 256 << 10;

/// How far past an index entry the batch holding the offset may start (the
/// index has an entry every index.interval.bytes, 4 KiB by default).
const INDEX_SLACK: u64 = 64 << 10;

/// How long bytes read ahead wait for the fetch that should want them.
const READ_AHEAD_KEPT: Duration = Duration::from_secs(1);

/// Bytes a shard may hold read ahead at once, over all its logs.
const READ_AHEAD_BYTES_MAX: usize = 64 << 20;

/// The read buffers a shard keeps for reuse, at most: two 4 MiB fetches'
/// worth for each of a few consumers reading from the disk at once.
const POOL_BYTES_MAX: usize = 32 << 20;

thread_local! {
    /// Each shard thread's spare read buffers (empty, with capacity).
    static POOL: RefCell<Vec<AlignedBuf>> = const { RefCell::new(Vec::new()) };
}

/// A buffer for a read of `len` bytes: the smallest spare one that fits.
fn take_buffer(len: usize) -> AlignedBuf {
    POOL.with_borrow_mut(|pool| {
        let fitting = pool.iter().enumerate().filter(|(_, b)| b.capacity() >= len).min_by_key(|(_, b)| b.capacity());
        match fitting.map(|(at, _)| at) {
            Some(at) => pool.swap_remove(at),
            None => AlignedBuf::with_capacity(len),
        }
    })
}

/// Read bytes that go back to their thread's pool when the last `Bytes` of
/// them is dropped, i.e. once the fetch answer holding them is sent.
struct Pooled(AlignedBuf);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        buf.clear();
        // The thread may be exiting; then the buffer is simply freed.
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            let mut held: usize = pool.iter().map(|b| b.capacity()).sum();
            // Larger buffers are the costlier ones to fault in: they stay.
            pool.sort_unstable_by_key(|b| std::cmp::Reverse(b.capacity()));
            while held + buf.capacity() > POOL_BYTES_MAX && pool.last().is_some_and(|b| b.capacity() < buf.capacity()) {
                held -= pool.pop().map_or(0, |b| b.capacity());
            }
            if held + buf.capacity() <= POOL_BYTES_MAX {
                pool.push(buf);
            }
        });
    }
}

/// How much one read asks for, for a fetch of up to `max_bytes`.
fn read_bytes(max_bytes: u32) -> u64 {
    u64::from(max_bytes).max(MIN_READ) + INDEX_SLACK
}

/// The most memory a read for a fetch of up to `max_bytes` takes: its
/// window's blocks, from an unaligned start. (A first batch larger than
/// `max_bytes` takes a second window of its own size.)
pub fn window_bytes_max(max_bytes: u32) -> usize {
    Window::span(1, 1 + read_bytes(max_bytes)).1
}

/// What a read found: batches, the file position right after them and the
/// offset a consumer asks for next. The bytes hold their window's buffer,
/// `held_bytes` of memory, until dropped (see `read_memory`).
struct Found {
    bytes: Bytes,
    held_bytes: usize,
    end: u64,
    next_offset: i64,
}

/// Whole batches from the one holding `offset`, up to `max_bytes` but at
/// least one, searched from the batch boundary `from` up to `end` (the
/// readable end, also a batch boundary), in `window` first when it holds
/// bytes from `from`; none whose last offset reaches `end_offset`. None if
/// the segment ends first or the batch holding `offset` reaches `end_offset`.
async fn read(
    file: &File,
    mut from: u64,
    end: u64,
    offsets: (i64, i64),
    max_bytes: u32,
    mut window: Option<Window>,
) -> io::Result<Option<Found>> {
    let (offset, end_offset) = offsets;
    while from < end {
        let window = match window.take() {
            Some(window) => window,
            None => Window::read(file, from, (from + read_bytes(max_bytes)).min(end)).await?,
        };
        let mut at = from;
        while at < end {
            let Some(header) = window.header(at)? else { break };
            if header.last_offset() < offset {
                at += header.total_bytes() as u64;
                continue;
            }
            if header.last_offset() >= end_offset {
                return Ok(None);
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
            return Ok(Some(window.batches(at, &header, limit, end_offset)));
        }
        if at == from {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "segment file shorter than its batches"));
        }
        // The next header is past the window: read on from it.
        from = at;
    }
    Ok(None)
}

/// One log's read-ahead. After an answer read from the disk, the bytes that
/// follow it in the segment are read while it is sent; the next read uses
/// them if it asks for the offset after that answer in the same file (a
/// consumer catching up), and any other read drops them, as does a second
/// without such a read (`READ_AHEAD_KEPT`).
#[derive(Default)]
pub struct ReadAhead {
    slot: Rc<RefCell<Option<Ahead>>>,
    started: Cell<u64>,
}

struct Ahead {
    file: Rc<File>,
    from: u64,
    next_offset: i64,
    window: oneshot::Receiver<io::Result<Window>>,
    _budget: Budget,
    /// Which read-ahead of the log this is, for the one expiring it.
    number: u64,
}

impl ReadAhead {
    /// As [`read`] of the batches from the one holding `offsets.0` and below
    /// `offsets.1`, through the read-ahead, and reads ahead again. The bytes
    /// come with the memory they hold.
    pub async fn read(
        &self,
        file: &Rc<File>,
        from: u64,
        end: u64,
        offsets: (i64, i64),
        max_bytes: u32,
    ) -> io::Result<Option<(Bytes, usize)>> {
        let offset = offsets.0;
        let ahead = self.slot.borrow_mut().take().filter(|a| Rc::ptr_eq(&a.file, file) && a.next_offset == offset);
        let found = match ahead {
            // A failed read ahead (say the file was cut) is read again here, to report it.
            Some(Ahead { from: ahead_from, window, .. }) => match window.await {
                Ok(Ok(window)) => read(file, ahead_from, end, offsets, max_bytes, Some(window)).await?,
                _ => read(file, from, end, offsets, max_bytes, None).await?,
            },
            None => read(file, from, end, offsets, max_bytes, None).await?,
        };
        let Some(found) = found else { return Ok(None) };
        if found.end < end {
            self.start(file, found.end, end, found.next_offset, max_bytes);
        }
        Ok(Some((found.bytes, found.held_bytes)))
    }

    /// Drops what was read ahead (the log was truncated: those offsets will
    /// hold other bytes).
    pub fn forget(&self) {
        self.slot.borrow_mut().take();
    }

    fn start(&self, file: &Rc<File>, from: u64, end: u64, next_offset: i64, max_bytes: u32) {
        let to = (from + read_bytes(max_bytes)).min(end);
        let Some(budget) = Budget::take(Window::span(from, to).1) else { return };
        let number = self.started.get() + 1;
        self.started.set(number);
        let (sender, window) = oneshot::channel();
        *self.slot.borrow_mut() =
            Some(Ahead { file: file.clone(), from, next_offset, window, _budget: budget, number });
        let (file, slot) = (file.clone(), Rc::downgrade(&self.slot));
        crate::runtime::spawn(async move {
            let window = Window::read(&file, from, to).await;
            drop(file);
            if sender.send(window).is_err() {
                return; // dropped meanwhile
            }
            tokio::time::sleep(READ_AHEAD_KEPT).await;
            if let Some(slot) = slot.upgrade() {
                let mut slot = slot.borrow_mut();
                if slot.as_ref().is_some_and(|ahead| ahead.number == number) {
                    *slot = None;
                }
            }
        });
    }
}

thread_local! {
    /// Bytes of this shard's logs being read ahead or waiting to be used.
    static READ_AHEAD_BYTES: Cell<usize> = const { Cell::new(0) };
}

/// A share of the shard's read-ahead budget, given back when dropped.
struct Budget(usize);

impl Budget {
    fn take(bytes: usize) -> Option<Budget> {
        READ_AHEAD_BYTES.with(|held| {
            let after = held.get() + bytes;
            (after <= READ_AHEAD_BYTES_MAX).then(|| {
                held.set(after);
                Budget(bytes)
            })
        })
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        let _ = READ_AHEAD_BYTES.try_with(|held| held.set(held.get() - self.0));
    }
}

/// File bytes from `start` (a block boundary), as read, in a buffer of
/// `footprint` bytes.
struct Window {
    start: u64,
    bytes: Bytes,
    footprint: usize,
}

impl Window {
    /// Reads the blocks that hold `from..to` (fewer at the end of the file).
    async fn read(file: &File, from: u64, to: u64) -> io::Result<Window> {
        let (start, len) = Window::span(from, to);
        let mut buf = take_buffer(len);
        debug_assert!(buf.is_empty() && buf.capacity() >= len);
        while buf.len() < len {
            let filled = buf.len();
            let (result, slice) = file.read_at(buf.slice(filled..len), start + filled as u64).await;
            buf = slice.into_inner();
            if result? == 0 {
                break;
            }
        }
        let footprint = buf.capacity();
        Ok(Window { start, bytes: Bytes::from_owner(Pooled(buf)), footprint })
    }

    /// The first block and the length of the blocks that hold `from..to`.
    fn span(from: u64, to: u64) -> (u64, usize) {
        let start = align_down(from);
        (start, (to.next_multiple_of(DIRECT_IO_ALIGN as u64) - start) as usize)
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

    /// The batches from `at` (the first one's `header`) that end by `limit`,
    /// lie in the window and end below `end_offset`.
    fn batches(&self, at: u64, header: &BatchHeader, limit: u64, end_offset: i64) -> Found {
        let first_end = at + header.total_bytes() as u64;
        debug_assert!(first_end <= self.end(), "the first batch lies in the window");
        let relative = |position: u64| (position - self.start) as usize;
        let (end, last_offset) = whole_batches_end(&self.bytes, relative(first_end), relative(limit), end_offset);
        let slice = Bytes::slice(&self.bytes, relative(at)..end);
        Found {
            bytes: read_memory::hold(slice, self.bytes.as_ptr(), self.footprint),
            held_bytes: self.footprint,
            end: self.start + end as u64,
            next_offset: last_offset.unwrap_or(header.last_offset()) + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled(len: usize) -> (Bytes, *const u8) {
        let mut buf = take_buffer(len);
        buf.resize(len, 1);
        let at = buf.as_ptr();
        (Bytes::from_owner(Pooled(buf)), at)
    }

    fn spares() -> usize {
        POOL.with_borrow(Vec::len)
    }

    /// The offset of the read the read-ahead waits for, if any.
    fn waiting_for(ahead: &ReadAhead) -> Option<i64> {
        ahead.slot.borrow().as_ref().map(|ahead| ahead.next_offset)
    }

    fn shard_bytes() -> usize {
        READ_AHEAD_BYTES.with(Cell::get)
    }

    /// Batches of `records` records each, back to back with their offsets.
    fn batches(count: i64, records: usize, value_bytes: usize) -> Vec<u8> {
        let value = vec![b'v'; value_bytes];
        let values: Vec<&[u8]> = (0..records).map(|_| value.as_slice()).collect();
        let mut bytes = Vec::new();
        for i in 0..count {
            let start = bytes.len();
            bytes.extend_from_slice(&crate::model::batch::build(i, &values));
            crate::model::batch::set_base_offset(&mut bytes[start..], i * records as i64);
        }
        bytes
    }

    #[test]
    fn a_consumer_reading_from_the_disk_is_read_ahead_within_the_shards_budget() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("segment");
            let bytes = batches(40, 10, 10_000);
            std::fs::write(&path, &bytes).unwrap();
            let file = Rc::new(crate::runtime::file_from_std(std::fs::File::open(&path).unwrap()));
            let (end, ahead) = (bytes.len() as u64, ReadAhead::default());
            let max = 300 << 10;
            let read = |offset: i64, from: u64, max_bytes: u32| {
                let (file, ahead) = (file.clone(), &ahead);
                async move { ahead.read(&file, from, end, (offset, i64::MAX), max_bytes).await.unwrap().unwrap() }
            };
            let (first, _) = read(0, 0, max).await;
            let next = crate::model::batch::validate_all(&first).last().unwrap().unwrap().last_offset() + 1;
            assert_eq!(waiting_for(&ahead), Some(next), "the bytes after the answer are read ahead");
            assert!(shard_bytes() >= max as usize, "and counted against the shard's budget");
            let (second, _) = read(next, first.len() as u64, max).await;
            assert_eq!(&second[..], &bytes[first.len()..first.len() + second.len()]);
            // Another offset drops it.
            read(0, 0, 1).await;
            assert_eq!(waiting_for(&ahead), Some(10));
            // Nothing follows the last answer: nothing is read ahead.
            read(0, 0, u32::MAX).await;
            assert_eq!(waiting_for(&ahead), None);
            // Bytes read ahead for nobody are dropped after a second.
            read(0, 0, max).await;
            assert!(waiting_for(&ahead).is_some());
            tokio::time::sleep(Duration::from_millis(1200)).await;
            assert_eq!((waiting_for(&ahead), shard_bytes()), (None, 0));
            // A truncated log forgets what was read ahead.
            read(0, 0, max).await;
            ahead.forget();
            assert_eq!((waiting_for(&ahead), shard_bytes()), (None, 0));
        });
    }

    #[test]
    fn a_read_buffer_is_reused_once_its_bytes_are_dropped() {
        let (first, first_at) = pooled(1 << 20);
        let slice = Bytes::slice(&first, 10..20);
        drop(first);
        assert_eq!(spares(), 0, "a slice of the fetch answer still holds the buffer");
        drop(slice);
        assert_eq!(spares(), 1);
        let reused = take_buffer(1 << 20);
        assert_eq!((reused.as_ptr(), reused.len(), spares()), (first_at, 0, 0), "the spare is handed out, empty");
        assert!(take_buffer(4 << 20).capacity() >= 4 << 20, "a larger read gets a buffer that fits");
    }

    #[test]
    fn spare_read_buffers_stay_under_the_budget_keeping_the_largest() {
        let held = || POOL.with_borrow(|pool| pool.iter().map(|b| b.capacity()).sum::<usize>());
        let small: Vec<_> = (0..40).map(|_| pooled(1 << 20).0).collect();
        drop(small);
        assert!(held() <= POOL_BYTES_MAX && held() >= POOL_BYTES_MAX - (1 << 20) - DIRECT_IO_ALIGN);
        let large: Vec<_> = (0..2).map(|_| pooled(8 << 20).0).collect();
        drop(large);
        assert!(held() <= POOL_BYTES_MAX);
        let sizes = POOL.with_borrow(|pool| pool.iter().filter(|b| b.capacity() >= 8 << 20).count());
        assert_eq!(sizes, 2, "small spares make room for large ones");
    }
}
