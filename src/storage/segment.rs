//! One segment: a `.log` file of RecordBatch v2 bytes and its in-memory
//! indexes.
//!
//! ```text
//! <base_offset:020>.log   batches back to back, exactly as on the wire, each
//!                         carrying its broker-assigned base offset. Nothing
//!                         else: no segment header, no padding.
//! ```
//!
//! The `.log` file is the only source of truth. Its tail may be torn after a
//! crash (a partial or corrupt last batch); recovery finds the last whole
//! batch whose CRC checks and truncates the file there. The index files (see
//! `index.rs`) can always be rebuilt from it.
//!
//! The active segment is written with O_DIRECT where the file system allows
//! it: buffered writes cost the shard more CPU in the kernel (copying into
//! the page cache, ext4's per-page bookkeeping) than everything else a
//! produce does. O_DIRECT writes whole blocks, so each write starts at the
//! block holding the segment end and rewrites its head from `tail`, and the
//! last block is zero-padded: until a seal or a clean close cuts it back,
//! the file may run up to a block past its last batch, which recovery
//! recognises as padding.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::runtime::{align_down, file_from_std, File, DIRECT_IO_ALIGN};

use super::error::{IoContext, StorageError};
use super::index::{OffsetIndex, TimeIndex};
use super::io::LogIo;

pub fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}

pub fn index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}

pub fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.timeindex"))
}

/// Opens a segment's `.log` for reading and writing at explicit positions.
pub fn open_log_file(path: &Path, create: bool) -> Result<fs::File, StorageError> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(create)
        .open(path)
        .context(|| format!("opening {}", path.display()))
}

/// What the index needs to know about one batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchMeta {
    pub position: u64,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub bytes: u64,
}

/// A segment's in-memory state. Offsets below `next_offset` and bytes below
/// `size` are assigned (written or still queued for the writer); only bytes
/// below `readable_bytes` hold offsets under the written end.
pub struct Segment {
    pub base_offset: i64,
    /// Through the page cache: fetch splices from it, syncs, seals.
    pub file: Rc<File>,
    /// The same file opened with O_DIRECT, when the log is written that way
    /// and the file system allows it: writes, and fetch reads (direct_read.rs).
    pub direct: Option<Rc<File>>,
    /// The file system refused O_DIRECT for this file: do not ask again.
    direct_refused: bool,
    /// The bytes of the partial block at the end, `size % DIRECT_IO_ALIGN`
    /// of them: the next write starts with them so it can start on a block.
    pub tail: Vec<u8>,
    pub size: u64,
    pub readable_bytes: u64,
    pub next_offset: i64,
    /// Local clock at the first append (after recovery: the file's birth
    /// time), for `segment_ms`.
    pub first_append_ms: Option<i64>,
    /// Largest batch max_timestamp in the segment; may overestimate after a
    /// failed write rolled batches back, which only costs a wasted search.
    pub max_timestamp: i64,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    bytes_since_index: u64,
}

impl Segment {
    pub fn new(base_offset: i64, file: fs::File) -> Segment {
        Segment {
            base_offset,
            file: Rc::new(file_from_std(file)),
            direct: None,
            direct_refused: false,
            tail: Vec::new(),
            size: 0,
            readable_bytes: 0,
            next_offset: base_offset,
            first_append_ms: None,
            max_timestamp: i64::MIN,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
        }
    }

    /// Creates an empty segment file at `base_offset` (a roll, or a new
    /// log), to be written with O_DIRECT when `direct_io` and the file
    /// system allow.
    pub fn create(dir: &Path, base_offset: i64, direct_io: bool, io: &dyn LogIo) -> Result<Segment, StorageError> {
        let path = log_path(dir, base_offset);
        let mut segment = Segment::new(base_offset, open_log_file(&path, true)?);
        segment.open_writer(&path, direct_io, io)?;
        Ok(segment)
    }

    /// Makes this the segment appends go to: the O_DIRECT descriptor (when
    /// `direct_io`) and the partial last block, read back from `path`.
    pub fn open_writer(&mut self, path: &Path, direct_io: bool, io: &dyn LogIo) -> Result<(), StorageError> {
        if direct_io {
            self.open_direct(path, io)?;
        }
        if self.size % DIRECT_IO_ALIGN as u64 == 0 {
            // A new segment (every roll) or one ending on a block: no tail to read.
            self.tail.clear();
            return Ok(());
        }
        let reader = fs::File::open(path).context(|| format!("opening {}", path.display()))?;
        self.reload_tail(&reader).context(|| format!("reading the last block of {}", path.display()))
    }

    /// Reads the partial last block (below `size`) back from the file: after
    /// recovery, or after a failed write cut the segment back.
    pub fn reload_tail(&mut self, file: &fs::File) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let block = align_down(self.size);
        self.tail.resize((self.size - block) as usize, 0);
        file.read_exact_at(&mut self.tail, block)
    }

    /// The O_DIRECT descriptor, opened on first use (None where the file
    /// system refuses O_DIRECT).
    pub fn open_direct(&mut self, path: &Path, io: &dyn LogIo) -> Result<Option<Rc<File>>, StorageError> {
        if self.direct.is_none() && !self.direct_refused {
            let opened = io.open_direct(path).context(|| format!("opening {} for O_DIRECT", path.display()))?;
            self.direct = opened.map(|f| Rc::new(file_from_std(f)));
            self.direct_refused = self.direct.is_none();
        }
        Ok(self.direct.clone())
    }

    /// Where writes go: O_DIRECT when the segment has that descriptor.
    pub fn write_file(&self) -> Rc<File> {
        self.direct.as_ref().unwrap_or(&self.file).clone()
    }

    /// Where the next write of this segment starts: the block holding its end.
    pub fn write_position(&self) -> u64 {
        debug_assert_eq!(self.tail.len() as u64, self.size % DIRECT_IO_ALIGN as u64, "tail is the partial last block");
        align_down(self.size)
    }

    /// The segment is no longer written (rolled).
    pub fn close_writer(&mut self) {
        self.tail = Vec::new();
    }

    /// Offset relative to the segment base, as the index files store it.
    pub fn relative(&self, offset: i64) -> u32 {
        debug_assert!(offset >= self.base_offset);
        (offset - self.base_offset).min(u32::MAX as i64) as u32
    }

    /// Accounts for the batch that now follows the segment's last byte.
    pub fn track(&mut self, batch: &BatchMeta, index_interval_bytes: u32) {
        debug_assert_eq!(batch.position, self.size, "batches are back to back");
        debug_assert!(batch.base_offset >= self.next_offset, "offsets only grow");
        debug_assert!(batch.last_offset >= batch.base_offset);
        self.max_timestamp = self.max_timestamp.max(batch.max_timestamp);
        if self.bytes_since_index >= index_interval_bytes as u64 {
            let relative = self.relative(batch.base_offset);
            self.index.push(relative, batch.position as u32);
            self.add_time_entry(relative);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += batch.bytes;
        self.size = batch.position + batch.bytes;
        self.next_offset = batch.last_offset + 1;
    }

    fn add_time_entry(&mut self, relative: u32) {
        if self.time_index.last_timestamp().is_none_or(|t| self.max_timestamp > t) {
            self.time_index.push(self.max_timestamp, relative);
        }
    }

    /// Makes the last time entry carry the segment's largest timestamp, so a
    /// reopened segment knows it without reading the log (done on roll and
    /// close, as Kafka's onBecomeInactiveSegment does).
    pub fn seal_time_index(&mut self) {
        if self.next_offset > self.base_offset {
            self.add_time_entry(self.relative(self.next_offset - 1));
        }
    }

    /// Continues from loaded index files: the batch of the last offset entry
    /// and everything after it will be scanned again (and re-indexed).
    /// Returns where that scan starts: (position, base offset of its batch).
    pub fn resume_from(&mut self, index: OffsetIndex, time_index: TimeIndex, interval: u32) -> (u64, i64) {
        self.index = index;
        self.max_timestamp = time_index.last_timestamp().unwrap_or(i64::MIN);
        self.time_index = time_index;
        if let Some((relative, position)) = self.index.pop() {
            self.size = position as u64;
            self.next_offset = self.base_offset + relative as i64;
            self.bytes_since_index = interval as u64;
        }
        (self.size, self.next_offset)
    }

    /// Forgets everything from byte `bytes` / offset `next_offset` on: a
    /// truncated tail (recovery, or a failed write).
    pub fn truncate_to(&mut self, bytes: u64, next_offset: i64, interval: u32) {
        debug_assert!(bytes <= self.size && next_offset >= self.base_offset);
        self.size = bytes;
        self.readable_bytes = self.readable_bytes.min(bytes);
        self.next_offset = next_offset;
        self.index.truncate_to_position(bytes);
        let relative = self.relative(next_offset);
        self.time_index.truncate_from(relative);
        // The next batch gets an entry, whatever the lost bytes were.
        self.bytes_since_index = interval as u64;
    }

    /// The index files' bytes, to be written when the segment is sealed.
    pub fn encoded_indexes(&self) -> (Vec<u8>, Vec<u8>) {
        (self.index.encode(), self.time_index.encode())
    }
}

/// Writes both index files of a segment through io_uring and fsyncs them, so
/// a later recovery finds either whole files or (after a crash mid-way)
/// files its checks refuse.
pub async fn write_index_files(
    dir: &Path,
    base_offset: i64,
    (index, time_index): (Vec<u8>, Vec<u8>),
) -> Result<(), StorageError> {
    let files = [(index_path(dir, base_offset), index), (time_index_path(dir, base_offset), time_index)];
    for (path, bytes) in files {
        let std_file = fs::File::create(&path).context(|| format!("creating {}", path.display()))?;
        let file = file_from_std(std_file);
        let (result, _) = file.write_all_at(bytes, 0).await;
        result.context(|| format!("writing {}", path.display()))?;
        file.sync_data().await.context(|| format!("syncing {}", path.display()))?;
        file.close().await.context(|| format!("closing {}", path.display()))?;
    }
    Ok(())
}

/// fsyncs a directory, so that the files created in it survive a power failure.
pub async fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let what = || format!("fsync of directory {}", dir.display());
    let file = File::open(dir).await.context(what)?;
    file.sync_all().await.context(what)?;
    file.close().await.context(what)
}

/// Removes a segment's files; returns the `.log` bytes that went with them.
/// The `.log` goes last: index files without their `.log` are what recovery
/// reports as a segment deleted by hand.
pub fn remove_files(dir: &Path, base_offset: i64) -> io::Result<u64> {
    let log = log_path(dir, base_offset);
    let bytes = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    for path in [index_path(dir, base_offset), time_index_path(dir, base_offset), log] {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(bytes)
}

/// Reads `len` bytes at `position` into `buf`, keeping its allocation when it
/// is an exact fit: read_exact_at fills the Vec's capacity, and with_capacity
/// gives exactly what is asked (a std guarantee). On error `buf` is empty.
pub async fn read_exact_into(file: &File, buf: &mut Vec<u8>, position: u64, len: usize) -> io::Result<()> {
    let mut owned = std::mem::take(buf);
    if owned.capacity() != len {
        owned = Vec::with_capacity(len);
    }
    owned.clear();
    let (result, owned) = file.read_exact_at(owned, position).await;
    *buf = owned;
    if result.is_err() {
        buf.clear();
    }
    debug_assert!(result.is_err() || buf.len() == len);
    result
}
