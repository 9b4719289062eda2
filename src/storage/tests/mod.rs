//! Tests of the partition log through its public API, on real files in
//! temporary directories, each inside its own io_uring runtime.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::batch::{self, BatchHeader};

/// The leader epoch a test replica stamps (not 0, to tell it from a zeroed field).
const STAMPED_EPOCH: i32 = 3;

use super::segment;
use super::{HotTail, LogConfig, PartitionLog, ReadSlice, RecoveryReport, StorageError};
use faulty_io::io;

fn run<F: Future>(test: F) -> F::Output {
    tokio_uring::start(test)
}

fn open(dir: &Path, config: LogConfig, clean: bool) -> (Rc<PartitionLog>, RecoveryReport) {
    PartitionLog::open_with_io(dir, config, clean, Rc::new(Notify::new()), HotTail::new(1 << 20), io()).expect("open")
}

fn small_segments(segment_bytes: u64) -> LogConfig {
    LogConfig { segment_bytes, index_interval_bytes: 256, ..LogConfig::default() }
}

/// A batch of `records` records of `value_bytes` bytes each.
fn batch_of(timestamp: i64, records: usize, value_bytes: usize) -> Vec<u8> {
    let value = vec![b'v'; value_bytes];
    let values: Vec<&[u8]> = (0..records).map(|_| value.as_slice()).collect();
    batch::build(timestamp, &values)
}

/// Appends and waits until written; returns the first offset.
async fn append(log: &PartitionLog, bytes: &[u8]) -> i64 {
    let info = log.append(bytes, 0, 1000).expect("append");
    log.wait_written(info.last_offset).await.expect("written");
    info.base_offset
}

/// The slice's bytes; a file range is read with std from the same file.
fn slice_bytes(slice: &ReadSlice) -> Vec<u8> {
    let (file, position, len) = match slice {
        ReadSlice::File { file, position, bytes } => (file, *position, *bytes),
        ReadSlice::Memory { bytes, more, .. } => {
            return more.iter().fold(bytes.to_vec(), |mut all, part| {
                all.extend_from_slice(part);
                all
            })
        }
    };
    // SAFETY: the fd stays open (owned by slice.file); ManuallyDrop never closes it.
    let file = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(file.as_raw_fd()) });
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, position).expect("read slice");
    bytes
}

/// Where a page-cache log's slice lies in its segment file.
fn position(slice: &ReadSlice) -> u64 {
    match slice {
        ReadSlice::File { position, .. } => *position,
        ReadSlice::Memory { .. } => panic!("a log written through the page cache reads from its file"),
    }
}

fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    batch::validate_all(bytes).collect::<Result<_, _>>().expect("whole valid batches")
}

/// Reads the whole log below the written end, slice after slice.
async fn read_all(log: &PartitionLog) -> Vec<BatchHeader> {
    let mut all = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read(offset, 1 << 20).await.expect("read") {
        let batches = headers(&slice_bytes(&slice));
        offset = batches.last().unwrap().last_offset() + 1;
        all.extend(batches);
    }
    all
}

fn assert_contiguous(batches: &[BatchHeader], from: i64, to: i64) {
    let mut next = from;
    for header in batches {
        assert_eq!(header.base_offset, next, "offsets follow on");
        next = header.last_offset() + 1;
    }
    assert_eq!(next, to);
}

fn log_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

/// The active segment file: the batches, then the zeros that pad O_DIRECT's
/// last block.
fn assert_padded(file: &[u8], batches: &[u8]) {
    assert_eq!(file.len(), batches.len().next_multiple_of(crate::runtime::DIRECT_IO_ALIGN), "padded to a block");
    assert_eq!(&file[..batches.len()], batches);
    assert!(file[batches.len()..].iter().all(|&b| b == 0), "zero padding");
}

/// Seals run beside the writes: waits until the rolled segments are sealed.
async fn wait_for_seals(log: &PartitionLog) {
    // Pending writes to the active segment are waited for too: harmless.
    let sealed = |log: &PartitionLog| {
        let bases: Vec<i64> = log.segments().all().iter().map(|s| s.base_offset).collect();
        !bases.into_iter().any(|base| log.segment_pending(base))
    };
    while !sealed(log) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Lets the writer task run its queued jobs (deletions included) until
/// `done` holds, as files or descriptors show it: a loaded machine can take
/// far longer than a fixed grace period. Gives up after ten seconds (the
/// caller's assertion then says what is missing).
async fn eventually(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn open_direct(dir: &Path, config: LogConfig, hot_bytes: usize, clean: bool) -> Rc<PartitionLog> {
    let config = LogConfig { direct_io: true, ..config };
    PartitionLog::open_with_io(dir, config, clean, Rc::new(Notify::new()), HotTail::new(hot_bytes), io())
        .expect("open")
        .0
}

mod append_read;
mod bounded_read;
mod descriptors;
mod direct_io;
pub(crate) mod faulty_io;
mod follower_append;
mod queued_writes;
mod recovery;
mod retention;
mod segment_set;
mod truncation;
mod writer_faults;
