//! Logs written with O_DIRECT: the page-cache fallback, reads from the hot tail and from the disk, the read-ahead.

use super::*;

#[test]
fn without_o_direct_the_log_falls_back_to_the_page_cache() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        io().refuse_o_direct();
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
        assert!(log.is_hot(next - 1), "the newest write is hot");
        assert!(!log.is_hot(0), "the oldest was evicted");
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
fn a_consumer_reading_from_the_disk_is_served_the_same_bytes_through_the_read_ahead() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        // No hot tail: every read goes to the disk (the read-ahead's own
        // state is tested in direct_read.rs).
        let log = open_direct(dir.path(), small_segments(16 << 20), 0, true);
        for i in 0..40 {
            append(&log, &batch_of(i, 10, 10_000)).await;
        }
        let max = 300 << 10;
        let first = headers(&slice_bytes(&log.read(0, max).await.unwrap().unwrap()));
        let next = first.last().unwrap().last_offset() + 1;
        let ahead = slice_bytes(&log.read(next, max).await.unwrap().unwrap());
        assert_eq!(headers(&ahead)[0].base_offset, next);
        // Another offset drops it; then the same read comes from the disk.
        log.read(0, 1).await.unwrap();
        assert_eq!(slice_bytes(&log.read(next, max).await.unwrap().unwrap()), ahead);
        assert_contiguous(&read_all(&log).await, 0, 400);
    });
}
