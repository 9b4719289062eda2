//! Reads bounded by an end offset (a leader's high watermark): whole batches
//! below it only, on each read path (page cache, hot tail, O_DIRECT).

use super::*;

/// A log of 25 batches of 1 to 3 records and 30 to 900 bytes of values,
/// over several segments, appended five at a time (so that one write, and
/// one hot range, holds several); returns the log end.
async fn fill(log: &PartitionLog) -> i64 {
    for i in 0..25 {
        let records = 1 + i % 3;
        let info = log.append(&batch_of(i as i64, records, 30 + 37 * i), 0, 1000).unwrap();
        if i % 5 == 4 {
            log.wait_appended(&info).await.unwrap();
        }
    }
    log.log_end_offset()
}

/// For every offset and every end offset, with a large and a tiny
/// max_bytes: the bounded read is the unbounded one's batches that end
/// below the bound, and None when there are none.
async fn check_every_bound(log: &PartitionLog, end: i64) {
    for max_bytes in [1 << 20, 1] {
        for offset in 0..end {
            let unbounded = headers(&slice_bytes(&log.read(offset, max_bytes).await.unwrap().unwrap()));
            for end_offset in offset..=end + 1 {
                let expected: Vec<BatchHeader> =
                    unbounded.iter().take_while(|h| h.last_offset() < end_offset).copied().collect();
                let bounded = log.read_below(offset, max_bytes, end_offset).await.unwrap();
                let found = bounded.map(|slice| headers(&slice_bytes(&slice))).unwrap_or_default();
                assert_eq!(found, expected, "offset {offset}, end offset {end_offset}, max_bytes {max_bytes}");
            }
        }
    }
    assert!(log.read_below(end, 1 << 20, end + 5).await.unwrap().is_none(), "at the written end");
    assert!(log.read_below(end + 1, 1 << 20, end + 5).await.is_err(), "past the written end");
}

#[test]
fn a_bounded_read_through_the_page_cache_stops_below_the_end_offset() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), small_segments(4000), true);
        let end = fill(&log).await;
        assert!(log_files(dir.path()).len() > 2);
        check_every_bound(&log, end).await;
    });
}

#[test]
fn a_bounded_read_from_the_hot_tail_stops_below_the_end_offset() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let log = open_direct(dir.path(), small_segments(1 << 20), 16 << 20, true);
        let end = fill(&log).await;
        let slice = log.read_below(0, 1 << 20, end).await.unwrap().unwrap();
        assert!(matches!(slice, ReadSlice::Memory { .. }));
        check_every_bound(&log, end).await;
    });
}

#[test]
fn a_bounded_o_direct_read_stops_below_the_end_offset() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        // No hot tail: every read is an O_DIRECT one, through the read-ahead too.
        let log = open_direct(dir.path(), small_segments(4000), 0, true);
        let end = fill(&log).await;
        check_every_bound(&log, end).await;
        // A consumer catching up below a bound, read-ahead and all.
        let mut offset = 0;
        let bound = end - 2;
        while let Some(slice) = log.read_below(offset, 700, bound).await.unwrap() {
            let found = headers(&slice_bytes(&slice));
            assert!(found.iter().all(|h| h.last_offset() < bound));
            offset = found.last().unwrap().last_offset() + 1;
        }
        assert!(offset <= bound && bound - offset < 3, "stopped at the batch reaching the bound");
    });
}
