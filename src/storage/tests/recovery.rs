//! Recovery at start-up: torn tails, block padding, lost index files and segments, and power failures that lose what was not fdatasynced.

use super::*;

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
        assert_eq!((log.log_end_offset(), log.written_end_offset()), (4, 4));
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
        let before: Vec<_> = log.segments().all().iter().map(|s| s.encoded_indexes()).collect();
        assert!(!before[0].0.is_empty(), "the first segment has index entries");
        drop(log);
        std::fs::remove_file(segment::index_path(dir.path(), 0)).unwrap();
        std::fs::remove_file(segment::time_index_path(dir.path(), 0)).unwrap();

        let (log, report) = open(dir.path(), config, true);
        assert_eq!(report.rebuilt_indexes, 1);
        assert_eq!(report.truncated_bytes, 0);
        let after: Vec<_> = log.segments().all().iter().map(|s| s.encoded_indexes()).collect();
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

/// A power failure: every segment file loses what was not fdatasynced (all
/// of it if never synced), and the last one gets a torn page of garbage.
fn lose_unsynced_writes(dir: &Path) {
    let files = log_files(dir);
    for (at, name) in files.iter().enumerate() {
        let path = dir.join(name);
        let synced = io().synced_length(&path);
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
