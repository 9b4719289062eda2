//! A follower's truncations: `truncate_to` (whole batches from an offset on,
//! later segments with them) and `truncate_fully_and_start_at`; durable,
//! and a crash at any step recovers a prefix of the old log.

use super::*;
use crate::storage::RetentionPolicy;

/// 20 batches of 1 to 3 records over several segments; returns the log end.
async fn fill(log: &PartitionLog, timestamp: i64) -> i64 {
    for i in 0..20 {
        append(log, &batch_of(timestamp + i as i64, 1 + i % 3, 200)).await;
    }
    log.log_end_offset()
}

/// Every batch header, and the bytes below the written end.
async fn contents(log: &PartitionLog) -> (Vec<BatchHeader>, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read(offset, 1 << 20).await.expect("read") {
        let read = slice_bytes(&slice);
        offset = headers(&read).last().unwrap().last_offset() + 1;
        bytes.extend(read);
    }
    (headers(&bytes), bytes)
}

/// The batches of `all` that lie wholly below `offset`.
fn below(all: &[BatchHeader], offset: i64) -> Vec<BatchHeader> {
    all.iter().take_while(|h| h.last_offset() < offset).copied().collect()
}

#[test]
fn truncation_removes_whole_batches_from_the_offset_on_and_appends_go_on_there() {
    for direct_io in [false, true] {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { direct_io, ..small_segments(1500) };
            let (log, _) = open(dir.path(), config, true);
            let end = fill(&log, 0).await;
            let (before, _) = contents(&log).await;
            assert!(log_files(dir.path()).len() > 4);
            // At a batch boundary in a middle segment, then inside a batch
            // (the batch goes whole), then a no-op at the log end.
            let boundary = before[12].base_offset;
            log.truncate_to(boundary).await.unwrap();
            assert_eq!((log.log_end_offset(), log.written_end_offset()), (boundary, boundary));
            assert_eq!(contents(&log).await.0, below(&before, boundary));
            let inside = before[7].base_offset + 1;
            assert!(before[7].last_offset() >= inside, "a batch of more than one record");
            log.truncate_to(inside).await.unwrap();
            assert_eq!(log.log_end_offset(), before[7].base_offset, "the batch holding the offset went whole");
            assert_eq!(contents(&log).await.0, below(&before, inside));
            log.truncate_to(end + 10).await.unwrap();
            assert_eq!(log.log_end_offset(), before[7].base_offset);
            let last_base = *log.segments().all().iter().map(|s| s.base_offset).collect::<Vec<_>>().last().unwrap();
            assert_eq!(log_files(dir.path()).last().unwrap(), &format!("{last_base:020}.log"), "later files gone");
            // Appends take the offsets again; reads see the new batches (not
            // a stale hot range or read-ahead of the removed ones).
            let refill = batch_of(5000, 2, 333);
            let offset = append(&log, &refill).await;
            assert_eq!(offset, before[7].base_offset);
            let read = headers(&slice_bytes(&log.read(offset, 1 << 20).await.unwrap().unwrap()));
            assert_eq!((read.len(), read[0].base_timestamp), (1, 5000));
            let (after, bytes) = contents(&log).await;
            log.close().await.unwrap();
            drop(log);
            for clean in [true, false] {
                let (log, _) = open(dir.path(), config, clean);
                assert_eq!(contents(&log).await.1, bytes, "reopened (clean: {clean})");
                assert_eq!(contents(&log).await.0, after);
            }
        });
    }
}

#[test]
fn truncation_waits_for_pending_writes_and_refuses_appends_meanwhile() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(1500), true);
        fill(&log, 0).await;
        let pending = log.append(&batch_of(99, 2, 100), 0, 1000).unwrap();
        let mut truncation = std::pin::pin!(log.truncate_to(3));
        // Polled once: the truncation is queued behind the pending write.
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(truncation.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        assert!(matches!(log.append(&batch_of(100, 1, 10), 0, 1000), Err(StorageError::Truncating)));
        truncation.await.unwrap();
        assert!(log.wait_appended(&pending).await.is_err(), "an append from before no longer holds its offsets");
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(append(&log, &batch_of(1, 1, 10)).await, 3);
    });
}

#[test]
fn truncation_is_refused_below_the_log_start_offset() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(1500), true);
        fill(&log, 0).await;
        log.delete_records(10).await.unwrap();
        assert!(matches!(log.truncate_to(9).await, Err(StorageError::TruncateBelowStart { offset: 9, log_start: 10 })));
        log.truncate_to(10).await.unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
        assert_eq!(append(&log, &batch_of(1, 1, 10)).await, 10, "the log takes appends after it");
    });
}

#[test]
fn a_full_truncation_starts_the_log_afresh_at_the_offset() {
    for start in [7, 500] {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), small_segments(1500), true);
            fill(&log, 0).await;
            log.truncate_fully_and_start_at(start).await.unwrap();
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, start));
            assert_eq!(log_files(dir.path()), [format!("{start:020}.log")]);
            assert!(log.read(start, 1 << 20).await.unwrap().is_none());
            assert_eq!(append(&log, &batch_of(1, 2, 10)).await, start);
            drop(log);
            let (log, _) = open(dir.path(), small_segments(1500), false);
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, start + 2));
        });
    }
}

#[test]
fn a_truncation_is_durable_when_it_returns() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(1500), true);
        fill(&log, 0).await;
        let (before, _) = contents(&log).await;
        let cut = before[5].base_offset;
        let base = log.segments().all()[log.segments().segment_for(cut)].base_offset;
        log.truncate_to(cut).await.unwrap();
        let kept: u64 = log.segments().all().last().unwrap().size;
        let path = segment::log_path(dir.path(), base);
        assert_eq!(io().synced_length(&path), kept, "the cut file was fdatasynced at its new length");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), kept);
    });
}

/// Copies the partition directory (what a crash at this moment leaves).
fn snapshot(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// One step of a truncation, done by hand on a copy of the directory.
type Step = Box<dyn Fn(&Path)>;

#[test]
fn a_crash_at_any_step_of_a_truncation_recovers_a_prefix_of_the_old_log() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments(1500);
        let (log, _) = open(dir.path(), config, true);
        fill(&log, 0).await;
        wait_for_seals(&log).await;
        let (before, old_bytes) = contents(&log).await;
        let cut = before[6].base_offset + 1;
        // The steps the truncation takes, each one's result copied as a
        // crash would leave it: later segments newest first (index files,
        // then the .log), the cut segment's index files, its .log cut.
        let bases: Vec<i64> = log.segments().all().iter().map(|s| s.base_offset).collect();
        let holding = bases[log.segments().segment_for(cut)];
        let cut_bytes = {
            let segments = log.segments();
            let segment = &segments.all()[segments.segment_for(cut)];
            let mut position = 0;
            for header in headers(&old_bytes).iter().filter(|h| h.base_offset >= holding && h.last_offset() < cut) {
                position += header.total_bytes() as u64;
            }
            assert!(position < segment.size);
            position
        };
        drop(log);
        let states = tempfile::tempdir().unwrap();
        let mut steps: Vec<Step> = Vec::new();
        for &base in bases.iter().rev().filter(|&&b| b > holding) {
            steps.push(Box::new(move |d: &Path| {
                let _ = std::fs::remove_file(segment::time_index_path(d, base));
                let _ = std::fs::remove_file(segment::index_path(d, base));
            }));
            steps.push(Box::new(move |d: &Path| std::fs::remove_file(segment::log_path(d, base)).unwrap()));
        }
        steps.push(Box::new(move |d: &Path| {
            let _ = std::fs::remove_file(segment::time_index_path(d, holding));
            let _ = std::fs::remove_file(segment::index_path(d, holding));
        }));
        steps.push(Box::new(move |d: &Path| {
            let file = std::fs::OpenOptions::new().write(true).open(segment::log_path(d, holding)).unwrap();
            file.set_len(cut_bytes).unwrap();
        }));
        let work = states.path().join("work");
        snapshot(dir.path(), &work);
        for (at, step) in steps.iter().enumerate() {
            step(&work);
            let crashed = states.path().join(format!("after-step-{at}"));
            snapshot(&work, &crashed);
            let (log, _) = open(&crashed, config, false);
            let (recovered, bytes) = contents(&log).await;
            assert_eq!(&old_bytes[..bytes.len()], &bytes[..], "step {at}: a prefix of the old log's bytes");
            assert!(recovered.len() >= below(&before, cut).len(), "step {at}: nothing below the cut is lost");
            assert_eq!(log.log_end_offset(), recovered.last().unwrap().last_offset() + 1);
        }
        // The truncation itself ends in the last state.
        let (log, _) = open(dir.path(), config, true);
        log.truncate_to(cut).await.unwrap();
        assert_eq!(
            contents(&log).await.1,
            contents(&open(&states.path().join(format!("after-step-{}", steps.len() - 1)), config, false).0).await.1
        );
    });
}

#[test]
fn a_failed_fdatasync_of_the_cut_takes_the_log_offline_and_recovery_finds_a_prefix() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments(1500);
        let (log, _) = open(dir.path(), config, true);
        fill(&log, 0).await;
        let (before, old_bytes) = contents(&log).await;
        io().fail_syncs(1);
        assert!(log.truncate_to(before[4].base_offset).await.is_err());
        assert!(matches!(log.append(&batch_of(1, 1, 10), 0, 1000), Err(StorageError::Offline { .. })));
        drop(log);
        let (log, _) = open(dir.path(), config, false);
        let (recovered, bytes) = contents(&log).await;
        assert_eq!(&old_bytes[..bytes.len()], &bytes[..]);
        assert_eq!(recovered, below(&before, before[4].base_offset));
    });
}

#[test]
fn reads_after_a_truncation_answer_the_new_batches_not_the_removed_ones() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        // O_DIRECT with a hot tail: every write is a hot range of the active segment.
        let log = open_direct(dir.path(), LogConfig::default(), 1 << 20, true);
        for i in 0..6 {
            append(&log, &batch_of(100 + i, 2, 50)).await;
        }
        log.truncate_to(2).await.unwrap();
        for i in 0..5 {
            append(&log, &batch_of(200 + i, 2, 50)).await;
        }
        for offset in 2..12 {
            let read = headers(&slice_bytes(&log.read(offset, 1).await.unwrap().unwrap()));
            assert_eq!(read[0].base_timestamp, 200 + (offset - 2) / 2, "offset {offset}");
        }
    });
}

#[test]
fn retention_waits_while_a_truncation_is_queued() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(1500), true);
        let end = fill(&log, 0).await;
        let everything = RetentionPolicy { retention_ms: 0, retention_bytes: -1 };
        let mut truncation = std::pin::pin!(log.truncate_to(end - 3));
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(truncation.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        // It would roll the active segment (every segment expired) and queue
        // a seal of a segment the truncation makes active again.
        assert_eq!(log.delete_old_segments(everything, 1_000_000).unwrap(), None);
        truncation.await.unwrap();
        let refill = batch_of(9, 1, 10);
        let offset = append(&log, &refill).await;
        assert_eq!(contents(&log).await.0.last().unwrap().base_offset, offset);
        assert!(log.delete_old_segments(everything, 1_000_000).unwrap().is_some(), "and goes on after it");
    });
}
