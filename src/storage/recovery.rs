//! Start-up recovery of a partition directory, with synchronous std I/O (a
//! cold path: broker start or topic creation, before the shard serves).
//!
//! - Sealed segments were fsynced when they were rolled, so their index files
//!   are trusted when they pass the checks in `index.rs`; otherwise the index
//!   is rebuilt by walking the whole segment. Either way the walk covers the
//!   tail after the last index entry, batch by batch with the full `validate`
//!   (length + CRC32C): a bad or partial batch is cut off there.
//! - The active (last) segment is walked from its last index entry after a
//!   clean shutdown, from the start otherwise, and truncated at the first bad
//!   or partial batch (a torn tail).
//! - A gap between segments, a sealed segment cut short, or index files whose
//!   `.log` is gone mean lost offsets: rolls fsync a segment before the next
//!   one gets a byte, so only a hand or a failing disk leaves them. The range
//!   is logged and the remaining segments are served, as Kafka does: a fetch
//!   inside the gap continues at the next offset that exists. Only empty
//!   segments after a gap (a crash in the middle of a roll) are dropped, so
//!   that the log ends where its data ends.
//! - The active segment's index files are then deleted: they live in memory
//!   until the segment is sealed or the log closed, and a stale copy must not
//!   be trusted after a later crash.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::model::batch::{self, BatchHeader, HEADER_BYTES};
use crate::runtime::DIRECT_IO_ALIGN;

use super::error::{IoContext, StorageError};
use super::index::{OffsetIndex, TimeIndex};
use super::io::LogIo;
use super::log::{LogConfig, RecoveryReport};
use super::segment::{self, BatchMeta, Segment};
use super::segment_set::SegmentSet;

/// Bytes read at once while walking a segment file at start-up.
const WINDOW_BYTES: usize = 64 * 1024;

/// Recovers the log in `dir` (which exists): its segments, and its log start
/// from the checkpoint DeleteRecords leaves (retention.rs). Everything
/// recovered counts as written.
pub fn recover_log(
    dir: &Path,
    clean_shutdown: bool,
    config: &LogConfig,
    io: &dyn LogIo,
) -> Result<(SegmentSet, RecoveryReport), StorageError> {
    let (segments, report) = recover_segments(dir, clean_shutdown, config, io)?;
    let log_end_offset = segments.last().expect("at least one segment").next_offset;
    let log_start_offset = super::retention::recovered_start_offset(dir, segments[0].base_offset, log_end_offset);
    Ok((SegmentSet::recovered(segments, log_start_offset), report))
}

/// Recovers every segment in `dir`. Returns them oldest first; there is
/// always at least one.
fn recover_segments(
    dir: &Path,
    clean_shutdown: bool,
    config: &LogConfig,
    io: &dyn LogIo,
) -> Result<(Vec<Segment>, RecoveryReport), StorageError> {
    super::cleaner::finish_interrupted(dir)?;
    // Below the cleaner checkpoint, a gap before the next segment is compaction's.
    let cleaned_to = super::cleaner::read_checkpoint(dir);
    let (mut bases, orphans) = list_segments(dir)?;
    remove_orphan_indexes(dir, &orphans)?;
    let mut report = RecoveryReport::default();
    if bases.is_empty() {
        report.segments = 1;
        report.created = true;
        return Ok((vec![Segment::create(dir, 0, config.direct_io, io)?], report));
    }
    let mut segments = Vec::with_capacity(bases.len());
    let mut clean = clean_shutdown;
    while segments.len() < bases.len() {
        let base = bases[segments.len()];
        let active = segments.len() + 1 == bases.len();
        let recovered = recover_segment(dir, base, active, clean, config.index_interval_bytes, io)?;
        report.truncated_bytes += recovered.truncated_bytes;
        let next_base = bases.get(segments.len() + 1).copied();
        let lost_tail = next_base.filter(|&next| {
            recovered.truncated_bytes > 0 || (recovered.segment.next_offset != next && next > cleaned_to)
        });
        if let Some(next) = lost_tail {
            let overlaps = recovered.segment.next_offset > next;
            if overlaps || all_empty(dir, &bases[segments.len() + 1..])? {
                // A crash during a roll (the new segments hold nothing yet),
                // or offsets that cannot follow on: the log ends here. Check
                // this segment again as the active one.
                tracing::warn!(
                    partition = %partition_name(dir),
                    offset = recovered.segment.next_offset,
                    "segment {base:020}.log does not lead on to {next:020}.log: dropping the segments after it"
                );
                for later in bases.drain(segments.len() + 1..) {
                    report.truncated_bytes += segment::remove_files(dir, later)
                        .context(|| format!("removing segment {later} of {}", dir.display()))?;
                }
                clean = false;
                continue;
            }
            report_lost_range(dir, base, &recovered, next);
            if recovered.segment.size == 0 {
                // Nothing readable is left of it; the next segment carries on.
                segment::remove_files(dir, base).context(|| format!("removing segment {base} of {}", dir.display()))?;
                bases.remove(segments.len());
                continue;
            }
            if recovered.truncated_bytes > 0 {
                // Its index files point past the cut: write them again.
                let mut segment = recovered.segment;
                segment.seal_time_index();
                write_index_files_blocking(dir, &segment)?;
                segments.push(segment);
                continue;
            }
        }
        report.rebuilt_indexes += recovered.rebuilt_index as u32;
        let mut segment = recovered.segment;
        if !active {
            // A rebuilt index lacks the entry sealing adds; no-op otherwise.
            segment.seal_time_index();
        }
        segments.push(segment);
    }
    let active = segments.last_mut().expect("at least one segment");
    if active.size > 0 {
        active.first_append_ms = segment_birth_ms(dir, active);
    }
    active.open_writer(&segment::log_path(dir, active.base_offset), config.direct_io, io)?;
    for path in [segment::index_path(dir, active.base_offset), segment::time_index_path(dir, active.base_offset)] {
        if let Err(e) = fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(StorageError::io(format!("removing {}", path.display()), e));
            }
        }
    }
    report.segments = segments.len() as u32;
    Ok((segments, report))
}

/// Base offsets of the `.log` files in `dir`, ascending, and of `.index`
/// files whose `.log` is missing.
fn list_segments(dir: &Path) -> Result<(Vec<i64>, Vec<i64>), StorageError> {
    let mut bases = Vec::new();
    let mut indexed = Vec::new();
    let entries = fs::read_dir(dir).context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        let Some((stem, extension)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        let list = match extension {
            "log" => &mut bases,
            "index" => &mut indexed,
            _ => continue,
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(base) = stem.parse::<i64>() {
                list.push(base);
            }
        }
    }
    bases.sort_unstable();
    indexed.retain(|base| bases.binary_search(base).is_err());
    indexed.sort_unstable();
    Ok((bases, indexed))
}

/// Index files left by a `.log` deleted by hand: say what is gone, and
/// remove them so that no later segment at that base trusts them.
fn remove_orphan_indexes(dir: &Path, orphans: &[i64]) -> Result<(), StorageError> {
    for &base in orphans {
        tracing::error!(
            partition = %partition_name(dir),
            "segment {base:020}.log is missing (its index files remain): offsets from {base} in it are lost"
        );
        segment::remove_files(dir, base).context(|| format!("removing index files {base} of {}", dir.display()))?;
    }
    Ok(())
}

/// The partition as the topic-partition directory names it, for log lines.
fn partition_name(dir: &Path) -> std::borrow::Cow<'_, str> {
    dir.file_name().unwrap_or(dir.as_os_str()).to_string_lossy()
}

fn all_empty(dir: &Path, bases: &[i64]) -> Result<bool, StorageError> {
    for &base in bases {
        let path = segment::log_path(dir, base);
        if fs::metadata(&path).context(|| format!("reading size of {}", path.display()))?.len() > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A sealed segment that does not lead on to the next one: says which
/// offsets are lost and why.
fn report_lost_range(dir: &Path, base: i64, recovered: &Recovered, next_base: i64) {
    let end = recovered.segment.next_offset;
    let why = match recovered.truncated_bytes {
        0 => format!("ends at offset {end} but the next segment starts at {next_base}"),
        cut => format!("is damaged at byte {}: {cut} bytes cut", recovered.segment.size),
    };
    if end == next_base {
        tracing::error!(partition = %partition_name(dir), "segment {base:020}.log {why} after its last batch; no offset is lost");
        return;
    }
    tracing::error!(
        partition = %partition_name(dir),
        "segment {base:020}.log {why}; offsets {end}..{} are lost; serving the rest, fetches in the gap continue at {next_base}",
        next_base - 1
    );
}

/// Rewrites a sealed segment's index files after recovery cut it.
fn write_index_files_blocking(dir: &Path, segment: &Segment) -> Result<(), StorageError> {
    let (index, time_index) = segment.encoded_indexes();
    for (path, bytes) in [
        (segment::index_path(dir, segment.base_offset), index),
        (segment::time_index_path(dir, segment.base_offset), time_index),
    ] {
        fs::write(&path, bytes)
            .and_then(|()| fs::File::open(&path)?.sync_all())
            .context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

struct Recovered {
    segment: Segment,
    truncated_bytes: u64,
    rebuilt_index: bool,
}

fn recover_segment(
    dir: &Path,
    base: i64,
    active: bool,
    clean: bool,
    interval: u32,
    io: &dyn LogIo,
) -> Result<Recovered, StorageError> {
    let path = segment::log_path(dir, base);
    let file = segment::open_log_file(&path, false)?;
    let file_bytes = file.metadata().context(|| format!("reading size of {}", path.display()))?.len();
    if file_bytes > u32::MAX as u64 {
        return Err(corrupt(&path, file_bytes, "segment larger than 32-bit positions allow"));
    }
    let reader = file.try_clone().context(|| format!("duplicating {}", path.display()))?;
    let mut segment = Segment::new(base, file);
    let trusted = if active && !clean { None } else { load_indexes(dir, base, &reader, file_bytes) };
    let rebuilt_index = trusted.is_none();
    let (from, first_offset) = match trusted {
        Some((index, time_index)) => segment.resume_from(index, time_index, interval),
        None => (0, base),
    };
    // The walk reads every byte it passes anyway, so checking CRCs costs
    // little; sealed segments with trusted indexes are walked from their last
    // entry only.
    let mut walk = Walk { file: &reader, file_bytes, window: Window::default() };
    let end = walk.scan(from, first_offset, |batch| segment.track(batch, interval))?;
    let mut truncated_bytes = 0;
    if let Some(problem) = end.problem {
        if !walk.is_block_padding(end.valid_bytes)? {
            truncated_bytes = file_bytes - end.valid_bytes;
            tracing::warn!(
                dir = %dir.display(),
                offset = segment.next_offset,
                position = end.valid_bytes,
                truncated_bytes,
                "truncating torn segment tail: {problem}"
            );
        }
        reader
            .set_len(end.valid_bytes)
            .and_then(|()| io.sync_data_blocking(&reader))
            .context(|| format!("truncating {}", path.display()))?;
        let next_offset = segment.next_offset;
        segment.truncate_to(end.valid_bytes, next_offset, interval);
    }
    // Time entries past the last batch (a stale file) would hide batches.
    let next_relative = segment.relative(segment.next_offset);
    segment.time_index.truncate_from(next_relative);
    segment.readable_bytes = segment.size;
    Ok(Recovered { segment, truncated_bytes, rebuilt_index })
}

/// Loads both index files if they pass every check, else None (rebuild).
fn load_indexes(dir: &Path, base: i64, log: &fs::File, log_bytes: u64) -> Option<(OffsetIndex, TimeIndex)> {
    let index_bytes = fs::read(segment::index_path(dir, base)).ok()?;
    let time_bytes = fs::read(segment::time_index_path(dir, base)).ok()?;
    let checked = OffsetIndex::decode(&index_bytes, log_bytes).and_then(|index| {
        let time_index = TimeIndex::decode(&time_bytes)?;
        match index.last() {
            Some((relative, position)) if header_at(log, position as u64)?.base_offset != base + relative as i64 => {
                Err("the last entry does not name the batch at its position")
            }
            _ => Ok((index, time_index)),
        }
    });
    match checked {
        Ok(indexes) => Some(indexes),
        Err(reason) => {
            tracing::info!(dir = %dir.display(), base, "rebuilding segment index: {reason}");
            None
        }
    }
}

fn header_at(log: &fs::File, position: u64) -> Result<BatchHeader, &'static str> {
    let mut header = [0u8; HEADER_BYTES];
    log.read_exact_at(&mut header, position).map_err(|_| "cannot read the batch an entry points at")?;
    BatchHeader::parse(&header).map_err(|_| "an entry points at no batch header")
}

/// For `segment_ms`: when the active segment's file was created (its birth
/// time), on the same local clock as appends. None where the file system
/// does not record it: the age then counts from the next append.
fn segment_birth_ms(dir: &Path, segment: &Segment) -> Option<i64> {
    let created = fs::metadata(segment::log_path(dir, segment.base_offset)).and_then(|m| m.created());
    let since_epoch = created.ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(since_epoch.as_millis() as i64)
}

fn corrupt(path: &Path, position: u64, reason: &str) -> StorageError {
    StorageError::Corrupt { path: path.display().to_string(), position, reason: reason.to_string() }
}

/// How a walk over a segment file ended.
struct ScanEnd {
    /// Bytes of whole, valid batches from the start of the file.
    valid_bytes: u64,
    /// Why the walk stopped before the end of the file, if it did.
    problem: Option<String>,
}

/// Walks the batches of one file forward, through a read window.
struct Walk<'a> {
    file: &'a fs::File,
    file_bytes: u64,
    window: Window,
}

impl Walk<'_> {
    /// Visits each whole batch from `position` on (which must hold the batch
    /// with base offset `first_offset`, or a later one if scanning from 0).
    fn scan(
        &mut self,
        mut position: u64,
        first_offset: i64,
        mut visit: impl FnMut(&BatchMeta),
    ) -> Result<ScanEnd, StorageError> {
        let mut next_offset = first_offset;
        while position < self.file_bytes {
            let header = match self.batch_at(position, next_offset)? {
                Ok(header) => header,
                Err(problem) => return Ok(ScanEnd { valid_bytes: position, problem: Some(problem) }),
            };
            let bytes = header.total_bytes() as u64;
            visit(&BatchMeta {
                position,
                base_offset: header.base_offset,
                last_offset: header.last_offset(),
                max_timestamp: header.max_timestamp,
                bytes,
            });
            position += bytes;
            next_offset = header.last_offset() + 1;
        }
        Ok(ScanEnd { valid_bytes: position, problem: None })
    }

    /// Whether everything from `position` on is the zeros an O_DIRECT write
    /// pads its last block with (see segment.rs): not a torn write.
    fn is_block_padding(&mut self, position: u64) -> Result<bool, StorageError> {
        let rest = self.file_bytes - position;
        if self.file_bytes % DIRECT_IO_ALIGN as u64 != 0 || rest >= DIRECT_IO_ALIGN as u64 {
            return Ok(false);
        }
        Ok(self.window.get(self.file, self.file_bytes, position, rest)?.iter().all(|&b| b == 0))
    }

    /// The batch at `position`, or why it is not a valid one.
    fn batch_at(&mut self, position: u64, next_offset: i64) -> Result<Result<BatchHeader, String>, StorageError> {
        let available = self.file_bytes - position;
        let head = self.window.get(self.file, self.file_bytes, position, (HEADER_BYTES as u64).min(available))?;
        let header = match BatchHeader::parse(head) {
            Ok(header) => header,
            Err(e) => return Ok(Err(format!("at offset {next_offset}: {e}"))),
        };
        let bytes = header.total_bytes() as u64;
        if bytes > available {
            return Ok(Err(format!("batch at offset {} needs {bytes} bytes, {available} remain", header.base_offset)));
        }
        if header.base_offset < next_offset || header.last_offset_delta < 0 {
            return Ok(Err(format!("batch offset {} does not follow {}", header.base_offset, next_offset - 1)));
        }
        // Compacted batches hold fewer records than their offset range.
        let whole = self.window.get(self.file, self.file_bytes, position, bytes)?;
        if let Err(e) = batch::validate_stored(whole) {
            return Ok(Err(format!("batch at offset {}: {e}", header.base_offset)));
        }
        Ok(Ok(header))
    }
}

/// A buffered region of a file, refilled when a request falls outside it.
#[derive(Default)]
struct Window {
    start: u64,
    bytes: Vec<u8>,
}

impl Window {
    /// `len` bytes at `position`, which the caller knows lie inside the file
    /// of `file_bytes` bytes (fewer only if the file shrank meanwhile).
    fn get(&mut self, file: &fs::File, file_bytes: u64, position: u64, len: u64) -> Result<&[u8], StorageError> {
        let end = self.start + self.bytes.len() as u64;
        if position < self.start || position + len > end {
            let want = len.max(WINDOW_BYTES as u64).min(file_bytes.saturating_sub(position));
            self.bytes.resize(want.max(len) as usize, 0);
            let read = read_up_to(file, &mut self.bytes, position).context(|| format!("reading at {position}"))?;
            self.bytes.truncate(read);
            self.start = position;
        }
        let from = (position - self.start) as usize;
        let to = (from + len as usize).min(self.bytes.len());
        Ok(&self.bytes[from..to])
    }
}

/// Reads as much of `buf` as the file holds at `position`.
fn read_up_to(file: &fs::File, buf: &mut [u8], position: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], position + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
