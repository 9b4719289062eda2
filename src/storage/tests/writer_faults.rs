//! The writer under faults (through `FaultyIo`): failed writes roll back, failed fdatasyncs take the log offline; group commit and flush policies.

use super::*;

#[test]
fn a_failed_fdatasync_takes_the_log_offline() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { flush_messages: 1, ..LogConfig::default() };
        let (log, _) = open(dir.path(), config, true);
        let kept = batch_of(1, 2, 50);
        append(&log, &kept).await;
        io().fail_syncs(1);
        let info = log.append(&batch_of(2, 3, 50), 0, 0).unwrap();
        assert!(log.wait_appended(&info).await.is_err(), "no ack for a write whose fdatasync failed");
        assert!(matches!(log.append(&batch_of(3, 1, 50), 0, 0), Err(StorageError::Offline { .. })));
        assert_eq!(io().failing_syncs(), 0);
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
        io().fail_syncs(1);
        append(&log, &batch_of(1, 1, 10)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(matches!(log.append(&batch_of(2, 1, 10), 0, 0), Err(StorageError::Offline { .. })));
        assert_contiguous(&read_all(&log).await, 0, 1);
    });
}

#[test]
fn appends_during_a_write_go_down_together() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { flush_messages: 1, ..LogConfig::default() };
        let on_written = Rc::new(Notify::new());
        let (log, _) =
            PartitionLog::open_with_io(dir.path(), config, true, on_written.clone(), HotTail::new(1 << 20), io())
                .expect("open");
        let notified = on_written.notified();
        for _ in 0..10 {
            log.append(&batch_of(1, 1, 10), 0, 0).unwrap();
        }
        log.wait_written(9).await.unwrap();
        assert_eq!(io().writes(), 1, "one write for ten appends");
        assert_eq!(io().syncs(), 1, "durable: the write was fsynced");
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
        assert_eq!(io().syncs(), 0, "acknowledged before the fsync");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(io().syncs(), 1);
    });
}

#[test]
fn a_failed_write_fails_its_waiters_and_rolls_back() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(1 << 20), true);
        let kept = batch_of(1, 2, 50);
        append(&log, &kept).await;
        io().fail_writes(1);
        let info = log.append(&batch_of(2, 3, 50), 0, 0).unwrap();
        assert!(matches!(log.wait_written(info.last_offset).await, Err(StorageError::Io { .. })));
        let path = segment::log_path(dir.path(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), kept.len() as u64, "no half batch stays");
        assert_eq!((log.log_end_offset(), log.written_end_offset()), (2, 2));

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
        io().fail_writes(1);
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
        io().fail_writes(1);
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

/// Chaos finding 3 (docs/chaos.md): a pipelined produce's batch was written,
/// then a later write failed (a full disk) before the produce's answer
/// waited for it. The rollback kept its bytes, yet `wait_appended` reported
/// it not appended, so the producer retried and the batch was stored twice.
#[test]
fn a_write_that_landed_before_a_later_one_failed_is_still_acknowledged() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(1 << 20), true);
        let landed = log.append(&batch_of(1, 2, 50), 0, 0).unwrap();
        log.wait_written(landed.last_offset).await.unwrap();
        io().fail_writes(1);
        let failed = log.append(&batch_of(2, 3, 50), 0, 0).unwrap();
        assert!(log.wait_appended(&failed).await.is_err());
        log.wait_appended(&landed).await.expect("its bytes are in the log: acknowledged");
        assert_eq!(append(&log, &batch_of(3, 1, 50)).await, 2, "the failed append's offsets are reused");
        assert!(matches!(log.wait_appended(&failed).await, Err(StorageError::NotAppended { .. })));
        log.wait_appended(&landed).await.expect("still in the log");
        assert_contiguous(&read_all(&log).await, 0, 3);
    });
}
