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

use super::direct_read::ReadAhead;
use super::segment;
use super::writer::fault;
use super::{HotTail, LogConfig, PartitionLog, ReadSlice, RecoveryReport, StorageError};

fn run<F: Future>(test: F) -> F::Output {
    tokio_uring::start(test)
}

fn open(dir: &Path, config: LogConfig, clean: bool) -> (Rc<PartitionLog>, RecoveryReport) {
    PartitionLog::open(dir, config, clean, Rc::new(Notify::new()), HotTail::new(1 << 20)).expect("open")
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
        ReadSlice::Memory { bytes, .. } => return bytes.to_vec(),
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

/// Reads the whole log below the high watermark, slice after slice.
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

#[test]
fn append_then_read_returns_the_bytes_with_assigned_offsets() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, report) = open(dir.path(), LogConfig::default(), true);
        assert_eq!(report, RecoveryReport { truncated_bytes: 0, rebuilt_indexes: 0, segments: 1, created: true });
        // Producers send -1 as the partition leader epoch (franz-go, librdkafka),
        // a replayed batch may carry any: the log stamps the replica's on each.
        let mut originals = [batch_of(10, 1, 5), batch_of(20, 2, 5), batch_of(30, 3, 5)];
        for (original, sent_epoch) in originals.iter_mut().zip([-1i32, 7, STAMPED_EPOCH]) {
            original[12..16].copy_from_slice(&sent_epoch.to_be_bytes());
        }
        let first = originals.concat();
        let info = log.append(&first, STAMPED_EPOCH, 1000).unwrap();
        assert_eq!((info.base_offset, info.last_offset, info.log_start_offset), (0, 5, 0));
        assert_eq!(log.log_end_offset(), 6);
        log.wait_written(info.last_offset).await.unwrap();
        assert_eq!(log.high_watermark(), 6);
        let fourth = batch_of(40, 4, 5);
        let info = log.append(&fourth, STAMPED_EPOCH, 1000).unwrap();
        log.wait_written(info.last_offset).await.unwrap();
        assert_eq!((info.base_offset, log.high_watermark()), (6, 10));

        let slice = log.read(0, 1 << 20).await.unwrap().unwrap();
        assert_eq!(position(&slice), 0);
        let bytes = slice_bytes(&slice);
        assert_eq!(bytes.len(), first.len() + fourth.len());
        let found = headers(&bytes);
        let bases: Vec<i64> = found.iter().map(|h| h.base_offset).collect();
        assert_eq!(bases, [0, 1, 3, 6]);
        // Apart from the base offset and the leader epoch, the stored bytes are the wire bytes.
        let mut at = 0;
        for (original, header) in originals.iter().chain([&fourth]).zip(&found) {
            let stored = &bytes[at..at + original.len()];
            assert_eq!((&stored[8..12], &stored[16..]), (&original[8..12], &original[16..]));
            assert_eq!(i64::from_be_bytes(stored[..8].try_into().unwrap()), header.base_offset);
            assert_eq!(i32::from_be_bytes(stored[12..16].try_into().unwrap()), STAMPED_EPOCH);
            at += original.len();
        }
        assert_padded(&std::fs::read(segment::log_path(dir.path(), 0)).unwrap(), &bytes);
    });
}

/// The active segment file: the batches, then the zeros that pad O_DIRECT's
/// last block.
fn assert_padded(file: &[u8], batches: &[u8]) {
    assert_eq!(file.len(), batches.len().next_multiple_of(crate::runtime::DIRECT_IO_ALIGN), "padded to a block");
    assert_eq!(&file[..batches.len()], batches);
    assert!(file[batches.len()..].iter().all(|&b| b == 0), "zero padding");
}

#[test]
fn read_inside_a_batch_returns_the_whole_batch() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), LogConfig::default(), true);
        for _ in 0..3 {
            append(&log, &batch_of(1, 3, 10)).await;
        }
        let slice = log.read(4, 1 << 20).await.unwrap().unwrap();
        let found = headers(&slice_bytes(&slice));
        assert_eq!(found[0].base_offset, 3, "starts with the batch holding offset 4");
        assert_eq!(found.len(), 2);
        assert_eq!(position(&slice), found[0].total_bytes() as u64);
    });
}

#[test]
fn max_bytes_cuts_at_whole_batches_but_returns_at_least_one() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), LogConfig::default(), true);
        let sizes: Vec<u32> = [100, 300, 50]
            .iter()
            .map(|&value_bytes| {
                let bytes = batch_of(1, 1, value_bytes);
                log.append(&bytes, 0, 0).unwrap();
                bytes.len() as u32
            })
            .collect();
        log.wait_written(2).await.unwrap();
        let one = log.read(0, 1).await.unwrap().unwrap();
        assert_eq!(one.len(), sizes[0], "KIP-74: one whole batch even over max_bytes");
        assert_eq!(log.read(0, sizes[0] + sizes[1] - 1).await.unwrap().unwrap().len(), sizes[0]);
        assert_eq!(log.read(0, sizes[0] + sizes[1]).await.unwrap().unwrap().len(), sizes[0] + sizes[1]);
        let last = log.read(2, 0).await.unwrap().unwrap();
        assert_eq!((position(&last), last.len()), ((sizes[0] + sizes[1]) as u64, sizes[2]));
    });
}

#[test]
fn index_finds_every_offset_among_many_batches() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(1 << 30), true);
        for i in 0..400 {
            log.append(&batch_of(i, 1 + (i as usize % 3), 40), 0, i).unwrap();
        }
        let end = log.log_end_offset();
        log.wait_written(end - 1).await.unwrap();
        let entries = log.inner.borrow().segments[0].index.len();
        assert!(entries > 50, "sparse index has {entries} entries");
        for offset in 0..end {
            let slice = log.read(offset, 0).await.unwrap().unwrap();
            let found = headers(&slice_bytes(&slice));
            assert_eq!(found.len(), 1);
            assert!(found[0].base_offset <= offset && offset <= found[0].last_offset());
        }
        assert_contiguous(&read_all(&log).await, 0, end);
    });
}

#[test]
fn rolls_by_segment_bytes_and_reads_across_segments() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(1000), true);
        let one = batch_of(1, 2, 100);
        // Appended without waiting, so rolls happen with writes still queued.
        for _ in 0..20 {
            log.append(&one, 0, 0).unwrap();
        }
        log.wait_written(39).await.unwrap();
        let files = log_files(dir.path());
        assert!(files.len() >= 4, "rolled into {files:?}");
        assert_eq!(files[0], "00000000000000000000.log");
        // Sealed segments were cut back to their batches: no padding left.
        wait_for_seals(&log).await;
        for name in &files[..files.len() - 1] {
            assert!(std::fs::metadata(dir.path().join(name)).unwrap().len() <= 1000);
        }
        let first = log.read(0, 1 << 20).await.unwrap().unwrap();
        let in_first = headers(&slice_bytes(&first));
        assert_eq!(
            first.len() as u64,
            std::fs::metadata(dir.path().join(&files[0])).unwrap().len(),
            "a slice stays in one segment"
        );
        let next = in_first.last().unwrap().last_offset() + 1;
        assert_eq!(files[1], format!("{next:020}.log"));
        assert_contiguous(&read_all(&log).await, 0, 40);
        // Sealed segments have their index files on disk.
        let base = 0;
        assert!(segment::index_path(dir.path(), base).exists());
        assert!(segment::time_index_path(dir.path(), base).exists());
    });
}

#[test]
fn rolls_by_segment_ms() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_ms: 1000, ..LogConfig::default() };
        let (log, _) = open(dir.path(), config, true);
        log.append(&batch_of(1, 1, 10), 0, 5_000).unwrap();
        log.append(&batch_of(1, 1, 10), 0, 6_000).unwrap();
        log.append(&batch_of(1, 1, 10), 0, 6_001).unwrap();
        log.wait_written(2).await.unwrap();
        assert_eq!(log_files(dir.path()), ["00000000000000000000.log", "00000000000000000002.log"]);
    });
}

#[test]
fn reopen_after_close_keeps_everything() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments(2000);
        let (log, _) = open(dir.path(), config, true);
        for i in 0..30 {
            log.append(&batch_of(100 + i, 2, 50), 0, 0).unwrap();
        }
        log.close().await.unwrap();
        assert!(matches!(log.append(&batch_of(1, 1, 1), 0, 0), Err(StorageError::Closed)));
        let before = read_all(&log).await;
        let indexes_before: Vec<_> = log.inner.borrow().segments.iter().map(|s| s.encoded_indexes()).collect();
        drop(log);

        let (log, report) = open(dir.path(), config, true);
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(report.rebuilt_indexes, 0);
        assert_eq!(report.segments as usize, log_files(dir.path()).len());
        assert!(report.segments > 1);
        assert_eq!((log.log_end_offset(), log.high_watermark()), (60, 60));
        assert_eq!(read_all(&log).await, before);
        let indexes_after: Vec<_> = log.inner.borrow().segments.iter().map(|s| s.encoded_indexes()).collect();
        assert_eq!(indexes_after, indexes_before);
        assert_eq!(log.offset_for_timestamp(120).await.unwrap(), Some((40, 120)));
        assert_eq!(append(&log, &batch_of(500, 1, 5)).await, 60);
        assert_contiguous(&read_all(&log).await, 0, 61);
    });
}

#[test]
fn torn_tail_is_cut_at_the_partial_batch() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), LogConfig::default(), true);
        let sizes: Vec<u64> = (0..3)
            .map(|_| {
                let bytes = batch_of(1, 2, 30);
                log.append(&bytes, 0, 0).unwrap();
                bytes.len() as u64
            })
            .collect();
        log.wait_written(5).await.unwrap();
        drop(log); // a crash: no close
        let path = segment::log_path(dir.path(), 0);
        let full = sizes.iter().sum::<u64>();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(full - 5).unwrap();

        let (log, report) = open(dir.path(), LogConfig::default(), false);
        assert_eq!(report.truncated_bytes, sizes[2] - 5);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), sizes[0] + sizes[1]);
        assert_eq!((log.log_end_offset(), log.high_watermark()), (4, 4));
        assert_contiguous(&read_all(&log).await, 0, 4);
        assert_eq!(append(&log, &batch_of(1, 1, 1)).await, 4, "offsets continue after the cut");
    });
}

#[test]
fn a_crash_leaves_block_padding_that_recovery_drops_without_loss() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let first = batch_of(1, 3, 1500);
        let (log, _) = open(dir.path(), LogConfig::default(), true);
        append(&log, &first).await;
        drop(log); // a crash: the file still ends with the padded block
        let path = segment::log_path(dir.path(), 0);
        assert_padded(&std::fs::read(&path).unwrap(), &first);

        let (log, report) = open(dir.path(), LogConfig::default(), false);
        assert_eq!(report.truncated_bytes, 0, "padding is no torn write");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), first.len() as u64);
        // The next write starts inside the first's last block: it must carry
        // the bytes recovery read back, or the first batch would be damaged.
        let second = batch_of(2, 2, 3000);
        assert_eq!(append(&log, &second).await, 3);
        log.close().await.unwrap();
        let file = std::fs::read(&path).unwrap();
        assert_eq!(file.len(), first.len() + second.len(), "a clean close cuts the padding");
        drop(log);
        let (log, report) = open(dir.path(), LogConfig::default(), false);
        assert_eq!(report.truncated_bytes, 0);
        assert_contiguous(&read_all(&log).await, 0, 5);
    });
}

#[test]
fn corrupt_last_batch_is_cut_when_shutdown_was_unclean() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), LogConfig::default(), true);
        let first = batch_of(1, 3, 30);
        let second = batch_of(2, 3, 30);
        append(&log, &first).await;
        append(&log, &second).await;
        log.close().await.unwrap();
        drop(log);
        let path = segment::log_path(dir.path(), 0);
        let mut bytes = std::fs::read(&path).unwrap();
        let flip = bytes.len() - 3;
        bytes[flip] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();

        let (log, report) = open(dir.path(), LogConfig::default(), false);
        assert_eq!(report.truncated_bytes, second.len() as u64);
        assert_eq!(report.rebuilt_indexes, 1, "an unclean start rebuilds the active index");
        assert_eq!(log.log_end_offset(), 3);
        let kept = read_all(&log).await;
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].crc, batch::validate(&first).unwrap().crc);
    });
}

#[test]
fn missing_index_files_are_rebuilt() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments(1500);
        let (log, _) = open(dir.path(), config, true);
        for i in 0..40 {
            log.append(&batch_of(i * 10, 1, 40), 0, 0).unwrap();
        }
        log.close().await.unwrap();
        let before: Vec<_> = log.inner.borrow().segments.iter().map(|s| s.encoded_indexes()).collect();
        assert!(!before[0].0.is_empty(), "the first segment has index entries");
        drop(log);
        std::fs::remove_file(segment::index_path(dir.path(), 0)).unwrap();
        std::fs::remove_file(segment::time_index_path(dir.path(), 0)).unwrap();

        let (log, report) = open(dir.path(), config, true);
        assert_eq!(report.rebuilt_indexes, 1);
        assert_eq!(report.truncated_bytes, 0);
        let after: Vec<_> = log.inner.borrow().segments.iter().map(|s| s.encoded_indexes()).collect();
        assert_eq!(after, before);
        assert_contiguous(&read_all(&log).await, 0, 40);
        assert_eq!(log.offset_for_timestamp(15).await.unwrap(), Some((2, 20)));
    });
}

/// Twenty one-record batches in segments of at most 1000 bytes; the log is
/// dropped without close (a crash). Returns the segment file names.
async fn crashed_log_of_many_segments(dir: &Path, config: &LogConfig) -> Vec<String> {
    let (log, _) = open(dir, *config, true);
    for _ in 0..20 {
        log.append(&batch_of(1, 1, 100), 0, 0).unwrap();
    }
    log.wait_written(19).await.unwrap();
    wait_for_seals(&log).await;
    drop(log);
    let files = log_files(dir);
    assert!(files.len() >= 3, "rolled into {files:?}");
    files
}

/// Seals run beside the writes: waits until the rolled segments are sealed.
async fn wait_for_seals(log: &PartitionLog) {
    while !log.inner.borrow().sealing.is_empty()
        || log.inner.borrow().queue.iter().any(|j| matches!(j, super::writer::Job::Seal { .. }))
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn base_of(file_name: &str) -> i64 {
    file_name.trim_end_matches(".log").parse().unwrap()
}

#[test]
fn a_sealed_segment_cut_short_keeps_the_segments_after_it() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments(1000);
        let files = crashed_log_of_many_segments(dir.path(), &config).await;
        let first = dir.path().join(&files[0]);
        let first_bytes = std::fs::metadata(&first).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&first).unwrap().set_len(first_bytes - 1).unwrap();

        let (log, report) = open(dir.path(), config, false);
        assert_eq!(report.segments as usize, files.len(), "the later segments are kept");
        assert_eq!(log.log_end_offset(), 20);
        let second = base_of(&files[1]);
        // The cut batch's offset is a gap: a read there continues in the next segment.
        let slice = log.read(second - 1, 1 << 20).await.unwrap().unwrap();
        assert_eq!(headers(&slice_bytes(&slice))[0].base_offset, second);
        let kept = read_all(&log).await;
        assert_contiguous(&kept[..second as usize - 1], 0, second - 1);
        assert_contiguous(&kept[second as usize - 1..], second, 20);
        log.close().await.unwrap();
        drop(log);
        // The cut segment's index files were rewritten: the next start trusts them.
        let (log, report) = open(dir.path(), config, true);
        assert_eq!((report.truncated_bytes, report.rebuilt_indexes), (0, 0));
        assert_eq!(read_all(&log).await.len(), 19);
    });
}

#[test]
fn empty_segments_after_a_lost_tail_are_dropped() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments(1000);
        let files = crashed_log_of_many_segments(dir.path(), &config).await;
        // A crash while rolls were queued: the new files exist, none written yet.
        for name in &files[1..] {
            std::fs::OpenOptions::new().write(true).open(dir.path().join(name)).unwrap().set_len(0).unwrap();
        }
        let first = dir.path().join(&files[0]);
        let first_bytes = std::fs::metadata(&first).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&first).unwrap().set_len(first_bytes - 1).unwrap();

        let (log, report) = open(dir.path(), config, false);
        assert_eq!(report.segments, 1);
        assert_eq!(log_files(dir.path()), [files[0].clone()]);
        let kept = read_all(&log).await;
        let end = kept.last().unwrap().last_offset() + 1;
        assert_contiguous(&kept, 0, end);
        assert_eq!(log.log_end_offset(), end, "the log ends where its data ends");
    });
}

#[test]
fn a_missing_middle_segment_leaves_a_gap_and_the_rest_is_served() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments(1000);
        let files = crashed_log_of_many_segments(dir.path(), &config).await;
        let (second, third) = (base_of(&files[1]), base_of(&files[2]));
        std::fs::remove_file(dir.path().join(&files[1])).unwrap();

        let (log, report) = open(dir.path(), config, false);
        assert_eq!(report.segments as usize, files.len() - 1);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 20));
        let slice = log.read(second, 1 << 20).await.unwrap().unwrap();
        assert_eq!(headers(&slice_bytes(&slice))[0].base_offset, third, "a fetch in the gap jumps to the next offset");
        let kept = read_all(&log).await;
        assert_contiguous(&kept[..second as usize], 0, second);
        assert_contiguous(&kept[second as usize..], third, 20);
        assert!(!segment::index_path(dir.path(), second).exists(), "the lost segment's index files are gone");
        assert_eq!(append(&log, &batch_of(2, 1, 10)).await, 20);
    });
}

#[test]
fn a_missing_first_segment_moves_the_log_start() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments(1000);
        let files = crashed_log_of_many_segments(dir.path(), &config).await;
        std::fs::remove_file(dir.path().join(&files[0])).unwrap();

        let (log, _) = open(dir.path(), config, false);
        let second = base_of(&files[1]);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (second, 20));
        assert!(matches!(log.read(0, 1 << 20).await, Err(StorageError::OffsetOutOfRange { .. })));
        assert_contiguous(&read_all(&log).await, second, 20);
        assert!(!segment::index_path(dir.path(), 0).exists(), "orphan index files are removed");
    });
}

#[test]
fn a_failed_fdatasync_takes_the_log_offline() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { flush_messages: 1, ..LogConfig::default() };
        let (log, _) = open(dir.path(), config, true);
        let kept = batch_of(1, 2, 50);
        append(&log, &kept).await;
        fault::FAILING_SYNCS.with(|n| n.set(1));
        let info = log.append(&batch_of(2, 3, 50), 0, 0).unwrap();
        assert!(log.wait_appended(&info).await.is_err(), "no ack for a write whose fdatasync failed");
        assert!(matches!(log.append(&batch_of(3, 1, 50), 0, 0), Err(StorageError::Offline { .. })));
        assert_eq!(fault::FAILING_SYNCS.with(|n| n.get()), 0);
        assert!(
            matches!(log.append(&batch_of(3, 1, 50), 0, 0), Err(StorageError::Offline { .. })),
            "even when fsync works again"
        );
        assert_eq!(std::fs::metadata(segment::log_path(dir.path(), 0)).unwrap().len(), kept.len() as u64);
        assert_contiguous(&read_all(&log).await, 0, 2);
    });
}

#[test]
fn a_failed_timed_fdatasync_takes_the_log_offline() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { flush_ms: 10, ..LogConfig::default() };
        let (log, _) = open(dir.path(), config, true);
        fault::FAILING_SYNCS.with(|n| n.set(1));
        append(&log, &batch_of(1, 1, 10)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(matches!(log.append(&batch_of(2, 1, 10), 0, 0), Err(StorageError::Offline { .. })));
        assert_contiguous(&read_all(&log).await, 0, 1);
    });
}

#[test]
fn offset_for_timestamp_finds_the_first_batch_reaching_it() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(700), true);
        for timestamp in [100, 200, 150, 300, 250, 400] {
            append(&log, &batch_of(timestamp, 2, 100)).await;
        }
        assert!(log_files(dir.path()).len() > 1, "the search crosses segments");
        let found = |t| {
            let log = log.clone();
            async move { log.offset_for_timestamp(t).await.unwrap() }
        };
        assert_eq!(found(50).await, Some((0, 100)));
        assert_eq!(found(100).await, Some((0, 100)));
        assert_eq!(found(150).await, Some((2, 200)));
        assert_eq!(found(201).await, Some((6, 300)));
        assert_eq!(found(301).await, Some((10, 400)));
        assert_eq!(found(401).await, None);
    });
}

#[test]
fn offsets_outside_the_log_are_out_of_range() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), LogConfig::default(), true);
        assert!(log.read(0, 100).await.unwrap().is_none(), "empty log: nothing yet");
        append(&log, &batch_of(1, 2, 10)).await;
        assert!(log.read(2, 100).await.unwrap().is_none(), "at the high watermark: nothing yet");
        for offset in [-1, 3, 100] {
            match log.read(offset, 100).await {
                Err(StorageError::OffsetOutOfRange { offset: o, log_start: 0, high_watermark: 2 }) => {
                    assert_eq!(o, offset)
                }
                other => panic!("offset {offset}: {other:?}"),
            }
        }
        assert!(matches!(log.wait_written(7).await, Err(StorageError::NotAppended { offset: 7, .. })));
    });
}

#[test]
fn appends_during_a_write_go_down_together() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { flush_messages: 1, ..LogConfig::default() };
        let (log, _) = open(dir.path(), config, true);
        let on_written = log.on_written.clone();
        let notified = on_written.notified();
        for _ in 0..10 {
            log.append(&batch_of(1, 1, 10), 0, 0).unwrap();
        }
        log.wait_written(9).await.unwrap();
        assert_eq!(fault::WRITES.with(|n| n.get()), 1, "one write for ten appends");
        assert_eq!(fault::SYNCS.with(|n| n.get()), 1, "durable: the write was fsynced");
        tokio::time::timeout(Duration::from_secs(1), notified).await.expect("on_written notified");
        assert_contiguous(&read_all(&log).await, 0, 10);
    });
}

#[test]
fn flush_ms_syncs_in_the_background() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { flush_ms: 20, ..LogConfig::default() };
        let (log, _) = open(dir.path(), config, true);
        append(&log, &batch_of(1, 1, 10)).await;
        assert_eq!(fault::SYNCS.with(|n| n.get()), 0, "acknowledged before the fsync");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(fault::SYNCS.with(|n| n.get()), 1);
    });
}

#[test]
fn a_failed_write_fails_its_waiters_and_rolls_back() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(1 << 20), true);
        let kept = batch_of(1, 2, 50);
        append(&log, &kept).await;
        fault::FAILING_WRITES.with(|n| n.set(1));
        let info = log.append(&batch_of(2, 3, 50), 0, 0).unwrap();
        assert!(matches!(log.wait_written(info.last_offset).await, Err(StorageError::Io { .. })));
        let path = segment::log_path(dir.path(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), kept.len() as u64, "no half batch stays");
        assert_eq!((log.log_end_offset(), log.high_watermark()), (2, 2));

        assert_eq!(append(&log, &batch_of(3, 1, 50)).await, 2, "the next append reuses the offsets");
        // The failed append's offsets now hold other bytes: its waiter must still hear of the failure.
        assert!(matches!(log.wait_appended(&info).await, Err(StorageError::NotAppended { .. })));
        let batches = read_all(&log).await;
        assert_contiguous(&batches, 0, 3);
        assert_eq!(batches[1].max_timestamp, 3);
        log.close().await.unwrap();
        drop(log);
        let (log, report) = open(dir.path(), small_segments(1 << 20), false);
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(log.log_end_offset(), 3);
    });
}

#[test]
fn an_o_direct_log_rolls_back_a_failed_write_and_serves_what_replaced_it() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let log = open_direct(dir.path(), small_segments(1 << 20), 1 << 20, true);
        let kept = batch_of(1, 2, 3000);
        append(&log, &kept).await;
        // The failing write tears: half of its blocks land, the block the
        // kept batch ends in among them.
        fault::FAILING_WRITES.with(|n| n.set(1));
        let info = log.append(&batch_of(2, 3, 3000), 0, 0).unwrap();
        assert!(log.wait_appended(&info).await.is_err());
        assert_eq!(append(&log, &batch_of(3, 1, 50)).await, 2, "the next append reuses the offsets");
        let batches = read_all(&log).await;
        assert_contiguous(&batches, 0, 3);
        assert_eq!((batches[0].crc, batches[1].max_timestamp), (batch::validate(&kept).unwrap().crc, 3));
        // The same from the disk, after a crash (nothing hot, the padding left).
        drop(log);
        let log = open_direct(dir.path(), small_segments(1 << 20), 1 << 20, false);
        assert_eq!(read_all(&log).await, batches);
    });
}

#[test]
fn a_failed_write_across_a_roll_drops_the_new_segment() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(500), true);
        append(&log, &batch_of(1, 1, 200)).await;
        fault::FAILING_WRITES.with(|n| n.set(1));
        log.append(&batch_of(2, 1, 100), 0, 0).unwrap(); // still fits: fails with the old file
        let rolled = log.append(&batch_of(3, 1, 300), 0, 0).unwrap(); // new segment at offset 2
        assert_eq!(log_files(dir.path()).len(), 2);
        assert!(log.wait_written(rolled.last_offset).await.is_err());
        assert_eq!(log_files(dir.path()), ["00000000000000000000.log"]);
        assert_eq!(log.log_end_offset(), 1);
        assert_eq!(append(&log, &batch_of(4, 1, 100)).await, 1);
        assert_contiguous(&read_all(&log).await, 0, 2);
    });
}

/// Lets the writer task run the queued jobs (deletions included) until it
/// is idle: a loaded machine can take far longer than a fixed grace period.
async fn settle(log: &PartitionLog) {
    for _ in 0..10_000 {
        let idle = {
            let inner = log.inner.borrow();
            inner.queue.is_empty() && !inner.writer_busy
        };
        if idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn retention_deletes_old_segments_and_moves_the_log_start() {
    use super::RetentionPolicy;
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(1000), true);
        for i in 0..20 {
            append(&log, &batch_of(1_000 + i, 2, 100)).await;
        }
        let files = log_files(dir.path());
        assert!(files.len() >= 4, "{files:?}");
        // Everything but the newest batches is older than 10 ms at "now" = 1015.
        let policy = RetentionPolicy { retention_ms: 10, retention_bytes: -1 };
        let deleted = log.delete_old_segments(policy, 1_015).unwrap().expect("segments go");
        let start = log.log_start_offset();
        assert_eq!(deleted.log_start_offset, start);
        assert!(start > 0 && start < 40);
        settle(&log).await;
        let left = log_files(dir.path());
        assert_eq!(left.len(), files.len() - deleted.segments);
        assert_eq!(left[0], format!("{start:020}.log"));
        assert!(!segment::index_path(dir.path(), 0).exists(), "index files go with the segment");
        assert!(
            matches!(log.read(0, 100).await, Err(StorageError::OffsetOutOfRange { log_start, .. }) if log_start == start)
        );
        assert_contiguous(&read_all(&log).await, start, 40);
        assert!(log.delete_old_segments(policy, 1_015).unwrap().is_none(), "nothing more is expired");

        // All expired: the active segment is rolled and goes too; appends go on.
        let all = log.delete_old_segments(policy, 1_000_000).unwrap().expect("the rest goes");
        assert_eq!(all.log_start_offset, 40);
        settle(&log).await;
        assert_eq!(log_files(dir.path()), [format!("{:020}.log", 40)]);
        assert_eq!(append(&log, &batch_of(5, 1, 10)).await, 40);
        assert_contiguous(&read_all(&log).await, 40, 41);
    });
}

/// A power failure: every segment file loses what was not fdatasynced (all
/// of it if never synced), and the last one gets a torn page of garbage.
fn lose_unsynced_writes(dir: &Path) {
    let files = log_files(dir);
    for (at, name) in files.iter().enumerate() {
        let path = dir.join(name);
        let synced = fault::SYNCED.with(|s| s.borrow().get(&path.canonicalize().unwrap()).copied()).unwrap_or(0);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let length = file.metadata().unwrap().len();
        file.set_len(synced.min(length)).unwrap();
        if at + 1 == files.len() {
            file.write_all_at(&[0xa5; 700], synced.min(length)).unwrap();
        }
    }
}

/// Appends `count` one-record batches, each acknowledged before the next.
async fn append_acknowledged(log: &PartitionLog, count: usize) -> i64 {
    let mut end = 0;
    for _ in 0..count {
        end = append(log, &batch_of(1, 1, 100)).await + 1;
    }
    end
}

#[test]
fn durable_mode_keeps_every_acknowledged_record_through_lost_unsynced_writes() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { flush_messages: 1, ..small_segments(1000) };
        let (log, _) = open(dir.path(), config, true);
        let acknowledged = append_acknowledged(&log, 30).await;
        assert!(log_files(dir.path()).len() >= 3, "rolled");
        drop(log);
        lose_unsynced_writes(dir.path());

        let (log, _) = open(dir.path(), config, false);
        assert_contiguous(&read_all(&log).await, 0, acknowledged);
        assert_eq!(log.log_end_offset(), acknowledged);
    });
}

#[test]
fn retention_bytes_keeps_the_newest_data() {
    use super::RetentionPolicy;
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(1000), true);
        for i in 0..20 {
            append(&log, &batch_of(i, 2, 100)).await;
        }
        let total: u64 = log.inner.borrow().segments.iter().map(|s| s.size).sum();
        let policy = RetentionPolicy { retention_ms: -1, retention_bytes: 1500 };
        let deleted = log.delete_old_segments(policy, 0).unwrap().expect("segments go");
        let left: u64 = log.inner.borrow().segments.iter().map(|s| s.size).sum();
        assert_eq!(total - deleted.bytes, left);
        assert!(left >= 1500, "kept {left}");
        let oldest = log.inner.borrow().segments[0].size;
        assert!(left - oldest < 1500, "one more deletion would go below retention.bytes");
    });
}

#[test]
fn delete_records_moves_the_start_inside_a_segment_and_survives_reopen() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments(1000);
        let (log, _) = open(dir.path(), config, true);
        for i in 0..20 {
            append(&log, &batch_of(i, 2, 100)).await;
        }
        let second_base = log.inner.borrow().segments[1].base_offset;
        let inside = second_base + 1;
        assert_eq!(log.delete_records(inside).await.unwrap().0, inside);
        assert!(matches!(log.delete_records(41).await, Err(StorageError::OffsetOutOfRange { .. })));
        assert_eq!(log.delete_records(3).await.unwrap().0, inside, "the start never moves back");
        settle(&log).await;
        assert_eq!(log_files(dir.path())[0], format!("{second_base:020}.log"), "the first segment went");
        assert!(matches!(log.read(second_base, 100).await, Err(StorageError::OffsetOutOfRange { .. })));
        let slice = log.read(inside, 1 << 20).await.unwrap().unwrap();
        assert!(headers(&slice_bytes(&slice))[0].last_offset() >= inside);
        log.close().await.unwrap();
        drop(log);

        let (log, _) = open(dir.path(), config, true);
        assert_eq!(log.log_start_offset(), inside, "the checkpoint keeps a start inside a segment");
        assert_eq!(log.delete_records(-1).await.unwrap().0, 40, "-1 is the high watermark");
        drop(log);
        let (log, _) = open(dir.path(), config, false);
        assert_eq!(log.log_start_offset(), 40);
        assert!(log.read(40, 100).await.unwrap().is_none());
    });
}

#[test]
fn set_config_changes_rolling_at_run_time() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), LogConfig::default(), true);
        append(&log, &batch_of(1, 2, 100)).await;
        log.set_config(small_segments(100));
        append(&log, &batch_of(1, 2, 100)).await;
        assert_eq!(log_files(dir.path()).len(), 2, "the smaller segment.bytes rolled the log");
        assert_eq!(log.config().segment_bytes, 100);
    });
}

#[test]
fn default_mode_loses_unsynced_records_but_recovers_clean() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments(1000);
        let (log, _) = open(dir.path(), config, true);
        let acknowledged = append_acknowledged(&log, 30).await;
        // Seals run beside the writes; the power fails once they are done
        // (before, a rolled segment's tail may be lost too: a gap recovery reports).
        wait_for_seals(&log).await;
        drop(log);
        lose_unsynced_writes(dir.path());

        let (log, _) = open(dir.path(), config, false);
        let kept = read_all(&log).await;
        let end = log.log_end_offset();
        assert!(end < acknowledged, "the active segment was never synced: its records are gone");
        assert!(end > 0, "sealed segments were synced when rolled");
        assert_contiguous(&kept, 0, end);
        assert_eq!(append(&log, &batch_of(2, 1, 10)).await, end, "appends continue at the recovered end");
    });
}

fn open_direct(dir: &Path, config: LogConfig, hot_bytes: usize, clean: bool) -> Rc<PartitionLog> {
    let config = LogConfig { direct_io: true, ..config };
    PartitionLog::open(dir, config, clean, Rc::new(Notify::new()), HotTail::new(hot_bytes)).expect("open").0
}

#[test]
fn without_o_direct_the_log_falls_back_to_the_page_cache() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        segment::REFUSE_O_DIRECT.with(|refuse| refuse.set(true));
        let log = open_direct(dir.path(), small_segments(5000), 0, true);
        for i in 0..20 {
            append(&log, &batch_of(i, 2, 300)).await;
        }
        let slice = log.read(0, 1 << 20).await.unwrap().unwrap();
        assert!(matches!(slice, ReadSlice::File { .. }), "spliced from the page cache");
        let written = read_all(&log).await;
        assert_contiguous(&written, 0, 40);
        drop(log);
        let log = open_direct(dir.path(), small_segments(5000), 0, false);
        assert_eq!(read_all(&log).await, written);
    });
}

#[test]
fn an_o_direct_log_reads_back_from_memory_and_from_the_disk() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        // A hot tail much smaller than the log: older reads go to the disk.
        let log = open_direct(dir.path(), small_segments(600_000), 64 << 10, true);
        let mut next = 0;
        for i in 0..60 {
            let records = 1 + i % 5;
            append(&log, &batch_of(i as i64, records, 100 + 997 * (i % 7))).await;
            next += records as i64;
        }
        // Larger than one direct read window: read again from its own start.
        append(&log, &batch_of(99, 1, 400_000)).await;
        append(&log, &batch_of(100, 2, 10)).await;
        next += 3;
        let written = read_all(&log).await;
        assert_contiguous(&written, 0, next);
        for offset in 0..next {
            let slice = log.read(offset, 1).await.unwrap().unwrap();
            assert!(matches!(slice, ReadSlice::Memory { .. }), "O_DIRECT logs answer from memory");
            let found = headers(&slice_bytes(&slice));
            assert_eq!(found.len(), 1, "one batch under a 1-byte max");
            assert!(found[0].base_offset <= offset && offset <= found[0].last_offset());
        }
        assert!(log.hot.borrow().read(next - 1, 1).is_some(), "the newest write is hot");
        assert!(log.hot.borrow().read(0, 1).is_none(), "the oldest was evicted");
        // After a restart nothing is hot: every read is an O_DIRECT one.
        log.close().await.unwrap();
        drop(log);
        let log = open_direct(dir.path(), small_segments(600_000), 64 << 10, true);
        assert_eq!(read_all(&log).await, written);
        assert_eq!(append(&log, &batch_of(1, 1, 10)).await, next, "appends go on after the padded tail");
        assert_contiguous(&read_all(&log).await, 0, next + 1);
    });
}

#[test]
fn a_consumer_reading_from_the_disk_is_read_ahead_and_served_the_same_bytes() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        // No hot tail: every read goes to the disk.
        let log = open_direct(dir.path(), small_segments(16 << 20), 0, true);
        for i in 0..40 {
            append(&log, &batch_of(i, 10, 10_000)).await;
        }
        let max = 300 << 10;
        let first = headers(&slice_bytes(&log.read(0, max).await.unwrap().unwrap()));
        let next = first.last().unwrap().last_offset() + 1;
        assert_eq!(log.read_ahead.waiting_for(), Some(next), "the bytes after the answer are read ahead");
        assert!(ReadAhead::shard_bytes() >= max as usize, "and counted against the shard's budget");
        let ahead = slice_bytes(&log.read(next, max).await.unwrap().unwrap());
        assert_eq!(headers(&ahead)[0].base_offset, next);
        // Another offset drops it; then the same read comes from the disk.
        log.read(0, 1).await.unwrap();
        assert_eq!(log.read_ahead.waiting_for(), Some(10));
        assert_eq!(slice_bytes(&log.read(next, max).await.unwrap().unwrap()), ahead);
        assert_contiguous(&read_all(&log).await, 0, 400);
        // Nothing follows the last answer: nothing is read ahead.
        assert_eq!(log.read_ahead.waiting_for(), None);
        // Bytes read ahead for nobody are dropped after a second.
        log.read(0, max).await.unwrap();
        assert!(log.read_ahead.waiting_for().is_some());
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        assert_eq!((log.read_ahead.waiting_for(), ReadAhead::shard_bytes()), (None, 0));
    });
}

/// A batch of an idempotent producer: `records` records from `sequence`.
/// The producer fields sit at bytes 43..57 of a v2 header, under the CRC.
fn idempotent_batch(producer_id: i64, epoch: i16, sequence: i32, records: usize, value_bytes: usize) -> Vec<u8> {
    let mut bytes = batch_of(1, records, value_bytes);
    bytes[43..51].copy_from_slice(&producer_id.to_be_bytes());
    bytes[51..53].copy_from_slice(&epoch.to_be_bytes());
    bytes[53..57].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn the_log_names_its_recent_idempotent_batches_across_segments_and_restarts() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments(4096);
        let (log, _) = open(dir.path(), config, true);
        append(&log, &batch_of(1, 2, 400)).await; // no producer id: not named
        let mut sizes = Vec::new();
        for i in 0..10 {
            let bytes = idempotent_batch(7, 0, i * 3, 3, 400);
            sizes.push(bytes.len() as u64);
            assert_eq!(append(&log, &bytes).await, 2 + 3 * i as i64);
        }
        assert!(log_files(dir.path()).len() >= 4, "batches of ~1.3 KB roll 4 KiB segments");
        let expect_all: Vec<(i32, i64)> = (0..10).map(|i| (i * 3, 2 + 3 * i as i64)).collect();
        let named = |batches: Vec<BatchHeader>| -> Vec<(i32, i64)> {
            assert!(batches.iter().all(|h| h.producer_id == 7 && h.producer_epoch == 0 && h.last_offset_delta == 2));
            batches.iter().map(|h| (h.base_sequence, h.base_offset)).collect()
        };
        assert_eq!(named(log.recent_idempotent_batches(1 << 20).await.unwrap()), expect_all);
        // A window of three batches' bytes names at least those three, the latest last.
        let window = named(log.recent_idempotent_batches(sizes[7..].iter().sum()).await.unwrap());
        assert!(window.len() >= 3 && window.ends_with(&expect_all[7..]), "{window:?}");

        drop(log); // a crash
        let (log, _) = open(dir.path(), config, false);
        assert_eq!(named(log.recent_idempotent_batches(1 << 20).await.unwrap()), expect_all);
        log.close().await.unwrap();
        drop(log);
        let (log, _) = open(dir.path(), config, true);
        assert_eq!(named(log.recent_idempotent_batches(1 << 20).await.unwrap()), expect_all);
    });
}

#[test]
fn recent_idempotent_batches_are_read_in_large_pieces_whatever_the_batch_sizes() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), LogConfig::default(), true);
        // Batches that straddle the 1 MiB reads, and one larger than a read.
        let mut expect = Vec::new();
        let mut sequence = 0;
        for (i, value_bytes) in [300_000, 700_000, 1_500_000, 90_000, 400_000, 650_000].into_iter().enumerate() {
            let bytes = idempotent_batch(9, 2, sequence, 2, value_bytes);
            expect.push((sequence, append(&log, &bytes).await));
            sequence += 2;
            if i == 3 {
                append(&log, &batch_of(1, 1, 10)).await; // not idempotent
            }
        }
        let named: Vec<(i32, i64)> = log
            .recent_idempotent_batches(64 << 20)
            .await
            .unwrap()
            .iter()
            .map(|h| (h.base_sequence, h.base_offset))
            .collect();
        assert_eq!(named, expect);
    });
}

mod descriptors;
mod queued_writes;
