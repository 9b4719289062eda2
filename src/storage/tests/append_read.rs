//! Appends and reads: offsets, batch boundaries, the index, rolling, reopening, timestamps, the idempotent-batch window.

use super::*;

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
        assert_eq!(log.written_end_offset(), 6);
        let fourth = batch_of(40, 4, 5);
        let info = log.append(&fourth, STAMPED_EPOCH, 1000).unwrap();
        log.wait_written(info.last_offset).await.unwrap();
        assert_eq!((info.base_offset, log.written_end_offset()), (6, 10));

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
        for offset in 0..end {
            let slice = log.read(offset, 0).await.unwrap().unwrap();
            let found = headers(&slice_bytes(&slice));
            assert_eq!(found.len(), 1);
            assert!(found[0].base_offset <= offset && offset <= found[0].last_offset());
        }
        assert_contiguous(&read_all(&log).await, 0, end);
        // The index files a clean close writes: one entry per 256 bytes or so.
        log.close().await.unwrap();
        let entries = std::fs::metadata(segment::index_path(dir.path(), 0)).unwrap().len() / 8;
        assert!(entries > 50, "sparse index has {entries} entries");
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
        let indexes_before: Vec<_> = log.segments().all().iter().map(|s| s.encoded_indexes()).collect();
        drop(log);

        let (log, report) = open(dir.path(), config, true);
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(report.rebuilt_indexes, 0);
        assert_eq!(report.segments as usize, log_files(dir.path()).len());
        assert!(report.segments > 1);
        assert_eq!((log.log_end_offset(), log.written_end_offset()), (60, 60));
        assert_eq!(read_all(&log).await, before);
        let indexes_after: Vec<_> = log.segments().all().iter().map(|s| s.encoded_indexes()).collect();
        assert_eq!(indexes_after, indexes_before);
        assert_eq!(log.offset_for_timestamp(120).await.unwrap(), Some((40, 120)));
        assert_eq!(append(&log, &batch_of(500, 1, 5)).await, 60);
        assert_contiguous(&read_all(&log).await, 0, 61);
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
        assert!(log.read(2, 100).await.unwrap().is_none(), "at the written end: nothing yet");
        for offset in [-1, 3, 100] {
            match log.read(offset, 100).await {
                Err(StorageError::OffsetOutOfRange { offset: o, log_start: 0, written_end_offset: 2 }) => {
                    assert_eq!(o, offset)
                }
                other => panic!("offset {offset}: {other:?}"),
            }
        }
        assert!(matches!(log.wait_written(7).await, Err(StorageError::NotAppended { offset: 7, .. })));
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

/// A batch of an idempotent producer: `records` records from `sequence`.
/// The producer fields are under the CRC.
fn idempotent_batch(producer_id: i64, epoch: i16, sequence: i32, records: usize, value_bytes: usize) -> Vec<u8> {
    use crate::model::batch::field;
    let mut bytes = batch_of(1, records, value_bytes);
    batch::put(&mut bytes, field::PRODUCER_ID, &producer_id.to_be_bytes());
    batch::put(&mut bytes, field::PRODUCER_EPOCH, &epoch.to_be_bytes());
    batch::put(&mut bytes, field::BASE_SEQUENCE, &sequence.to_be_bytes());
    batch::refresh_crc(&mut bytes);
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
