//! Retention by time and size, and DeleteRecords.

use super::*;

#[test]
fn retention_deletes_old_segments_and_moves_the_log_start() {
    use crate::storage::RetentionPolicy;
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
        eventually(|| log_files(dir.path()).len() == files.len() - deleted.segments).await;
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
        eventually(|| log_files(dir.path()).len() == 1).await;
        assert_eq!(log_files(dir.path()), [format!("{:020}.log", 40)]);
        assert_eq!(append(&log, &batch_of(5, 1, 10)).await, 40);
        assert_contiguous(&read_all(&log).await, 40, 41);
    });
}

#[test]
fn retention_bytes_keeps_the_newest_data() {
    use crate::storage::RetentionPolicy;
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(1000), true);
        for i in 0..20 {
            append(&log, &batch_of(i, 2, 100)).await;
        }
        let total: u64 = log.segments().all().iter().map(|s| s.size).sum();
        let policy = RetentionPolicy { retention_ms: -1, retention_bytes: 1500 };
        let deleted = log.delete_old_segments(policy, 0).unwrap().expect("segments go");
        let left: u64 = log.segments().all().iter().map(|s| s.size).sum();
        assert_eq!(total - deleted.bytes, left);
        assert!(left >= 1500, "kept {left}");
        let oldest = log.segments().all()[0].size;
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
        let second_base = log.segments().all()[1].base_offset;
        let inside = second_base + 1;
        assert_eq!(log.delete_records(inside).await.unwrap().0, inside);
        assert!(matches!(log.delete_records(41).await, Err(StorageError::OffsetOutOfRange { .. })));
        assert_eq!(log.delete_records(3).await.unwrap().0, inside, "the start never moves back");
        eventually(|| log_files(dir.path())[0] != format!("{:020}.log", 0)).await;
        assert_eq!(log_files(dir.path())[0], format!("{second_base:020}.log"), "the first segment went");
        assert!(matches!(log.read(second_base, 100).await, Err(StorageError::OffsetOutOfRange { .. })));
        let slice = log.read(inside, 1 << 20).await.unwrap().unwrap();
        assert!(headers(&slice_bytes(&slice))[0].last_offset() >= inside);
        log.close().await.unwrap();
        drop(log);

        let (log, _) = open(dir.path(), config, true);
        assert_eq!(log.log_start_offset(), inside, "the checkpoint keeps a start inside a segment");
        assert_eq!(log.delete_records(-1).await.unwrap().0, 40, "-1 is the written end");
        drop(log);
        let (log, _) = open(dir.path(), config, false);
        assert_eq!(log.log_start_offset(), 40);
        assert!(log.read(40, 100).await.unwrap().is_none());
    });
}
