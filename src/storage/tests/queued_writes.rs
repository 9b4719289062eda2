//! Jobs queued behind a pending write (issue 13, defect 1): whatever the
//! writer has not started yet, the next append must continue after the
//! pending bytes, never over them.

use super::*;
use crate::storage::RetentionPolicy;

/// Retention (or DeleteRecords) queues a deletion while a write is still
/// queued; the next append must not start from the segment tail of before
/// that write. Every acknowledged batch must read back, and survive a
/// restart's CRC checks.
fn a_deletion_queued_behind_a_write_keeps_the_write(direct_io: bool) {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { direct_io, ..small_segments(3000) };
        let (log, _) = open(dir.path(), config, true);
        // Sealed segments of ten batches each for retention to delete, one
        // per round, and room in the active segment for every round's appends.
        for i in 0..42 {
            append(&log, &batch_of(1_000 + i, 2, 100)).await;
        }
        let segments = || log.segments().all().len();
        assert_eq!(segments(), 5);
        let mut pending = Vec::new();
        for round in 0..4 {
            // Queued, not yet taken by the writer (nothing has awaited).
            pending.push(log.append(&batch_of(2_000 + round, 1, 50), 0, 1000).unwrap());
            let policy = RetentionPolicy { retention_ms: 10, retention_bytes: -1 };
            let deleted = log.delete_old_segments(policy, 1_020 + 10 * round).unwrap().expect("a segment goes");
            assert_eq!(deleted.segments, 1);
            pending.push(log.append(&batch_of(3_000 + round, 3, 70), 0, 1000).unwrap());
            assert_eq!(segments(), 4 - round as usize, "the appends share the active segment");
            for info in &pending {
                log.wait_appended(info).await.expect("written");
            }
        }
        let end = log.log_end_offset();
        let start = log.log_start_offset();
        assert_eq!((start, end), (80, 84 + 16));
        assert_contiguous(&read_all(&log).await, start, end);
        log.close().await.unwrap();
        drop(log);

        // Unclean, so recovery checks every CRC of the active segment.
        let (log, report) = open(dir.path(), config, false);
        assert_eq!(report.truncated_bytes, 0, "nothing acknowledged is cut");
        assert_eq!(log.log_end_offset(), end);
        assert_contiguous(&read_all(&log).await, start, end);
    });
}

#[test]
fn a_deletion_queued_behind_a_write_keeps_the_write_in_the_page_cache() {
    a_deletion_queued_behind_a_write_keeps_the_write(false);
}

#[test]
fn a_deletion_queued_behind_a_write_keeps_the_write_with_o_direct() {
    a_deletion_queued_behind_a_write_keeps_the_write(true);
}
