//! `SegmentSet`: a log's segments, oldest first, and the three offsets that
//! say what of them a reader may see. Every change to them goes through a
//! method here, which checks the invariants (in debug builds, since appends
//! and writes call them):
//!
//! ```text
//! segments non-empty, base offsets strictly increasing; the last is active
//! log start <= written end <= log end = the active segment's next offset
//! first segment's base <= log start (DeleteRecords may move it inside)
//! ```
//!
//! - log start: the first offset a reader may ask for (retention moves it
//!   to a segment base, DeleteRecords inside a segment);
//! - written end: every offset below it is in the segment files, readable;
//! - log end: the next offset an append assigns (appended bytes between
//!   the written end and it wait in the writer's queue).

use super::segment::Segment;

pub(super) struct SegmentSet {
    /// Oldest first; the last is the active segment. Never empty.
    segments: Vec<Segment>,
    log_start_offset: i64,
    written_end_offset: i64,
    log_end_offset: i64,
}

impl SegmentSet {
    /// What recovery found: everything in the files is written.
    pub fn recovered(segments: Vec<Segment>, log_start_offset: i64) -> SegmentSet {
        assert!(!segments.is_empty(), "a log has at least one segment");
        let log_end_offset = segments.last().expect("checked").next_offset;
        let set = SegmentSet { segments, log_start_offset, written_end_offset: log_end_offset, log_end_offset };
        set.check();
        set
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn written_end_offset(&self) -> i64 {
        self.written_end_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// Oldest first; the last is the active segment.
    pub fn all(&self) -> &[Segment] {
        &self.segments
    }

    pub fn active(&mut self) -> &mut Segment {
        self.segments.last_mut().expect("a log has at least one segment")
    }

    pub fn segment_mut(&mut self, base_offset: i64) -> Option<&mut Segment> {
        let at = self.segments.binary_search_by_key(&base_offset, |s| s.base_offset).ok()?;
        Some(&mut self.segments[at])
    }

    /// Index of the segment that holds `offset` (the last with base <= offset).
    pub fn segment_for(&self, offset: i64) -> usize {
        self.segments.partition_point(|s| s.base_offset <= offset).saturating_sub(1)
    }

    /// Index of the first segment based after `base_offset`.
    pub fn after(&self, base_offset: i64) -> usize {
        self.segments.partition_point(|s| s.base_offset <= base_offset)
    }

    /// An append copied batches into the active segment (which tracked
    /// them): the log end follows it.
    pub fn appended(&mut self) {
        let next_offset = self.active().next_offset;
        debug_assert!(next_offset > self.log_end_offset, "an append assigns offsets");
        self.log_end_offset = next_offset;
    }

    /// A roll: `segment`, new and empty at the log end, becomes the active one.
    pub fn roll(&mut self, segment: Segment) {
        assert_eq!(segment.base_offset, self.log_end_offset, "a new segment starts at the log end");
        assert!(segment.size == 0, "a new segment is empty");
        self.segments.push(segment);
        self.check();
    }

    /// The writer put the batches up to `last_offset` into the file of the
    /// segment at `segment_base`, whose bytes up to `end` are now readable.
    pub fn written(&mut self, segment_base: i64, end: u64, last_offset: i64) {
        debug_assert!(
            last_offset >= self.written_end_offset && last_offset < self.log_end_offset,
            "writes complete in order, within what was appended"
        );
        self.written_end_offset = last_offset + 1;
        if let Some(segment) = self.segment_mut(segment_base) {
            debug_assert!(end <= segment.size && end >= segment.readable_bytes);
            segment.readable_bytes = end;
        }
        self.check();
    }

    /// A write failed: forget everything past the written end. Returns the
    /// segments rolled after it (they hold nothing written) for their files
    /// to be removed; the active segment is cut back in memory, its file is
    /// the caller's to cut.
    pub fn roll_back(&mut self, index_interval_bytes: u32) -> Vec<Segment> {
        let written_end = self.written_end_offset;
        let mut dropped = Vec::new();
        while self.segments.len() > 1 && self.active().base_offset > written_end {
            dropped.push(self.segments.pop().expect("more than one segment"));
        }
        let active = self.active();
        let keep = active.readable_bytes;
        active.truncate_to(keep, written_end, index_interval_bytes);
        self.log_end_offset = written_end;
        self.check();
        dropped
    }

    /// A follower's truncation, once everything appended is written: the
    /// segments after the one at `at` leave the log (returned, for their
    /// files to go), and that one keeps its first `bytes`, ends at
    /// `next_offset` and becomes the active segment (its file is the
    /// caller's to cut). Offsets never go below the log start.
    pub fn truncate(&mut self, at: usize, bytes: u64, next_offset: i64, index_interval_bytes: u32) -> Vec<Segment> {
        assert_eq!(self.written_end_offset, self.log_end_offset, "a truncation waits for every pending write");
        assert!(
            self.log_start_offset <= next_offset && next_offset <= self.log_end_offset,
            "a truncation to {next_offset} stays within log start {} and log end {}",
            self.log_start_offset,
            self.log_end_offset
        );
        let gone = self.segments.split_off(at + 1);
        self.active().truncate_to(bytes, next_offset, index_interval_bytes);
        self.written_end_offset = next_offset;
        self.log_end_offset = next_offset;
        self.check();
        gone
    }

    /// Kafka's `truncateFullyAndStartAt`: `segment`, new and empty, is the
    /// whole log, which starts and ends at its base. Returns the old ones.
    pub fn restart(&mut self, segment: Segment) -> Vec<Segment> {
        assert!(segment.size == 0, "a new segment is empty");
        let offset = segment.base_offset;
        let gone = std::mem::replace(&mut self.segments, vec![segment]);
        self.log_start_offset = offset;
        self.written_end_offset = offset;
        self.log_end_offset = offset;
        self.check();
        gone
    }

    /// Retention: the oldest `count` segments leave the log (not the active
    /// one) and the log start moves to the first that stays, if below it.
    pub fn remove_oldest(&mut self, count: usize) -> Vec<Segment> {
        assert!(count < self.segments.len(), "the active segment stays");
        let gone: Vec<Segment> = self.segments.drain(..count).collect();
        self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset);
        self.check();
        gone
    }

    /// DeleteRecords: the log start moves up to `offset` (never down).
    pub fn move_log_start(&mut self, offset: i64) {
        self.log_start_offset = self.log_start_offset.max(offset);
        self.check();
    }

    /// The cleaner's rewrite of the sealed segment at `at`, same base offset.
    pub fn replace(&mut self, at: usize, segment: Segment) {
        assert!(at + 1 < self.segments.len(), "the active segment is never cleaned");
        assert_eq!(segment.base_offset, self.segments[at].base_offset, "a cleaned segment keeps its base");
        self.segments[at] = segment;
        self.check();
    }

    /// The cleaner emptied the sealed segment at `at` (not the first: its
    /// base says where the log starts).
    pub fn remove(&mut self, at: usize) -> Segment {
        assert!(at > 0 && at + 1 < self.segments.len(), "neither the first nor the active segment");
        let removed = self.segments.remove(at);
        self.check();
        removed
    }

    fn check(&self) {
        debug_assert!(!self.segments.is_empty(), "a log has at least one segment");
        debug_assert!(
            self.segments.windows(2).all(|pair| pair[0].base_offset < pair[1].base_offset),
            "segment bases strictly increase"
        );
        debug_assert!(
            self.segments[0].base_offset <= self.log_start_offset
                && self.log_start_offset <= self.written_end_offset
                && self.written_end_offset <= self.log_end_offset,
            "first base {} <= log start {} <= written end {} <= log end {}",
            self.segments[0].base_offset,
            self.log_start_offset,
            self.written_end_offset,
            self.log_end_offset
        );
        debug_assert_eq!(
            self.segments.last().map(|s| s.next_offset),
            Some(self.log_end_offset),
            "the log end is the active segment's next offset"
        );
    }
}
