//! `SegmentSet`'s offsets through its operations, on segment files that
//! stay empty (only the in-memory accounting is under test here).

use super::super::io::UringIo;
use super::super::segment::{BatchMeta, Segment};
use super::super::segment_set::SegmentSet;

/// Accounts for `records` records of 100 bytes at the end of the active
/// segment, as an append does.
fn append(set: &mut SegmentSet, records: i64) {
    let active = set.active();
    let meta = BatchMeta {
        position: active.size,
        base_offset: active.next_offset,
        last_offset: active.next_offset + records - 1,
        max_timestamp: 0,
        bytes: 100,
    };
    active.track(&meta, 4096);
    set.appended();
}

fn offsets(set: &SegmentSet) -> (i64, i64, i64) {
    (set.log_start_offset(), set.written_end_offset(), set.log_end_offset())
}

#[test]
fn offsets_follow_appends_writes_rollbacks_retention_and_delete_records() {
    super::run(async {
        let dir = tempfile::tempdir().unwrap();
        let first = Segment::create(dir.path(), 0, false, &UringIo).unwrap();
        let mut set = SegmentSet::recovered(vec![first], 0);
        append(&mut set, 5);
        assert_eq!(offsets(&set), (0, 0, 5), "appended, not written");
        set.written(0, 100, 4);
        assert_eq!(offsets(&set), (0, 5, 5));
        set.roll(Segment::create(dir.path(), 5, false, &UringIo).unwrap());
        append(&mut set, 3);
        set.roll(Segment::create(dir.path(), 8, false, &UringIo).unwrap());
        append(&mut set, 2);
        assert_eq!(offsets(&set), (0, 5, 10));
        let dropped = set.roll_back(4096);
        assert_eq!(dropped.iter().map(|s| s.base_offset).collect::<Vec<_>>(), [8], "rolled after the written end");
        assert_eq!(offsets(&set), (0, 5, 5), "the log end rolls back to the written end");
        assert_eq!((set.active().base_offset, set.active().size), (5, 0), "cut back to what was written");
        append(&mut set, 3);
        set.written(5, 100, 7);
        set.move_log_start(2);
        assert_eq!(offsets(&set), (2, 8, 8), "DeleteRecords moves the start inside a segment");
        set.move_log_start(1);
        assert_eq!(set.log_start_offset(), 2, "never down");
        let gone = set.remove_oldest(1);
        assert_eq!(gone[0].base_offset, 0);
        assert_eq!(offsets(&set), (5, 8, 8), "retention moves the start to the first segment left");
    });
}

#[test]
#[should_panic(expected = "a new segment starts at the log end")]
fn a_roll_starts_at_the_log_end() {
    super::run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut set = SegmentSet::recovered(vec![Segment::create(dir.path(), 0, false, &UringIo).unwrap()], 0);
        append(&mut set, 5);
        set.roll(Segment::create(dir.path(), 3, false, &UringIo).unwrap());
    });
}

#[test]
#[should_panic(expected = "the active segment stays")]
fn retention_never_takes_the_active_segment() {
    super::run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut set = SegmentSet::recovered(vec![Segment::create(dir.path(), 0, false, &UringIo).unwrap()], 0);
        set.remove_oldest(1);
    });
}
