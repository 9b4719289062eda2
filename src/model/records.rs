//! Records inside a RecordBatch v2's records section: checking that a
//! section is well formed (every produced batch, see `validate.rs`), walking
//! its records (the cleaner, ListOffsets by timestamp, the offsets topic's
//! replay), and building a batch of keyed records (the broker's own internal
//! topics). The section is uncompressed here: see `compression.rs` for the
//! bounded way to get there from a compressed batch.
//!
//! ```text
//! record: length varint, attributes i8, timestamp_delta varlong, offset_delta varint,
//!         key_length varint (-1 = null), key, value_length varint (-1 = null), value,
//!         headers_count varint, headers (key_length varint, key, value_length varint, value)…
//! ```

use super::batch::{self, BatchHeader, HEADER_BYTES};

/// A key and value as stored; `None` is null (a value of None is a tombstone).
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Appends a zigzag varint, Kafka's encoding of record fields.
pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes `put_varint` writes for `value`.
fn varint_len(value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut len = 1;
    while v >= 0x80 {
        v >>= 7;
        len += 1;
    }
    len
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => put_varint(out, -1),
    }
}

/// Builds one uncompressed batch of `records`, all stamped `timestamp_ms`.
pub fn build_keyed(timestamp_ms: i64, records: &[KeyValue<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut record = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        record.clear();
        record.push(0); // attributes
        put_varint(&mut record, 0); // timestamp delta
        put_varint(&mut record, i as i64); // offset delta
        put_nullable(&mut record, *key);
        put_nullable(&mut record, *value);
        put_varint(&mut record, 0); // no headers
        put_varint(&mut body, record.len() as i64);
        body.extend_from_slice(&record);
    }
    batch::assemble(timestamp_ms, records.len() as i32, &body)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("record {index} of the batch is malformed: {why}")]
pub struct RecordError {
    pub index: usize,
    pub why: &'static str,
}

/// One record of a batch, borrowing from the batch bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// A record with what a compacting cleaner needs to write it again, maybe
/// with another timestamp delta: its attributes byte, its timestamp delta and
/// its bytes after that field (offset delta, key, value, headers).
#[derive(Debug)]
pub struct RawRecord<'a> {
    pub record: Record<'a>,
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub tail: &'a [u8],
}

impl RawRecord<'_> {
    /// Appends the record, length prefix included, with `timestamp_delta`.
    pub fn write_with_delta(&self, timestamp_delta: i64, out: &mut Vec<u8>) {
        put_varint(out, (1 + varint_len(timestamp_delta) + self.tail.len()) as i64);
        out.push(self.attributes);
        put_varint(out, timestamp_delta);
        out.extend_from_slice(self.tail);
    }
}

/// Reads a records section as Kafka's `DefaultRecord.readFrom` does: varints
/// of at most 5 bytes that fit 32 bits, varlongs of at most 10, every length
/// inside the bytes it is read from. Allocates nothing.
struct Cursor<'a> {
    bytes: &'a [u8],
    index: usize,
}

impl<'a> Cursor<'a> {
    fn error(&self, why: &'static str) -> RecordError {
        RecordError { index: self.index, why }
    }

    /// An unsigned LEB128 value of at most `max_bytes` bytes.
    #[inline]
    fn unsigned(&mut self, max_bytes: usize) -> Result<u64, RecordError> {
        // Most varints in a record (attributes-sized deltas, short lengths) are one byte.
        if let Some((&byte, rest)) = self.bytes.split_first() {
            if byte & 0x80 == 0 {
                self.bytes = rest;
                return Ok(byte as u64);
            }
        }
        let mut value = 0u64;
        for i in 0..max_bytes {
            let (&byte, rest) = self.bytes.split_first().ok_or_else(|| self.error("truncated varint"))?;
            self.bytes = rest;
            value |= ((byte & 0x7f) as u64) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("varint too long"))
    }

    /// A zigzag varint (Kafka's 32-bit varint).
    #[inline]
    fn varint(&mut self) -> Result<i32, RecordError> {
        let raw = u32::try_from(self.unsigned(5)?).map_err(|_| self.error("varint overflows 32 bits"))?;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// A zigzag varlong (Kafka's 64-bit varint).
    fn varlong(&mut self) -> Result<i64, RecordError> {
        let raw = self.unsigned(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    #[inline]
    fn take(&mut self, len: usize) -> Result<&'a [u8], RecordError> {
        if len > self.bytes.len() {
            return Err(self.error("length runs past its record"));
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    /// A varint length, then that many bytes; -1 is null.
    #[inline]
    fn nullable(&mut self) -> Result<Option<&'a [u8]>, RecordError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(self.error("negative length")),
            n => self.take(n as usize).map(Some),
        }
    }

    fn record(&mut self, header: &BatchHeader) -> Result<RawRecord<'a>, RecordError> {
        let length = self.varint()?;
        let body = self.take(usize::try_from(length).map_err(|_| self.error("negative record length"))?)?;
        let mut inner = Cursor { bytes: body, index: self.index };
        let attributes = inner.take(1)?[0];
        let timestamp_delta = inner.varlong()?;
        let tail = inner.bytes;
        let offset_delta = inner.varint()?;
        // LogAppendTime batches carry the broker's time in max_timestamp only.
        let timestamp = match header.attributes & batch::LOG_APPEND_TIME_FLAG {
            0 => header.base_timestamp.wrapping_add(timestamp_delta),
            _ => header.max_timestamp,
        };
        let key = inner.nullable()?;
        let value = inner.nullable()?;
        let headers = inner.varint()?;
        if headers < 0 {
            return Err(inner.error("negative header count"));
        }
        // Each header takes at least two bytes, so a false count ends at the record's end.
        for _ in 0..headers {
            let key_length = inner.varint()?;
            inner.take(usize::try_from(key_length).map_err(|_| inner.error("negative header key length"))?)?;
            inner.nullable()?; // header value
        }
        if !inner.bytes.is_empty() {
            return Err(inner.error("bytes left over after the record's headers"));
        }
        let offset = header.base_offset.wrapping_add(offset_delta as i64);
        let record = Record { offset, timestamp, key, value };
        Ok(RawRecord { record, attributes, timestamp_delta, offset_delta, tail })
    }
}

/// Walks the `header.records_count` records of an uncompressed records
/// section (the bytes after the header, decompressed if need be).
pub fn walk(header: BatchHeader, section: &[u8]) -> impl Iterator<Item = Result<RawRecord<'_>, RecordError>> {
    let mut cursor = Cursor { bytes: section, index: 0 };
    (0..header.records_count.max(0) as usize).map(move |index| {
        cursor.index = index;
        cursor.record(&header)
    })
}

/// What [`check`] learned of a batch's records beyond their being well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsSummary {
    /// Some record has a null key (a compacted topic refuses the batch).
    pub keyless: bool,
}

/// Checks a records section (uncompressed) against its batch header: exactly
/// `records_count` well-formed records, offset deltas increasing and within
/// `last_offset_delta`, nothing after the last. With a produced batch's
/// `records_count == last_offset_delta + 1` the deltas are then exactly
/// 0, 1, 2, …; a compacted batch may skip some. Allocates nothing.
///
/// Every produced record goes through here, so the common case takes
/// [`scan`], which only says yes or no; a section it refuses is walked again
/// by [`check_precisely`] for the error that names the record and the reason.
pub fn check(header: &BatchHeader, section: &[u8]) -> Result<RecordsSummary, RecordError> {
    match scan(header, section) {
        Some(summary) => Ok(summary),
        None => check_precisely(header, section),
    }
}

/// The rules of [`check_precisely`] in one tight pass, without errors:
/// None where that finds one. The two are compared on random sections in the
/// tests below.
fn scan(header: &BatchHeader, section: &[u8]) -> Option<RecordsSummary> {
    let mut at = 0usize;
    let mut keyless = false;
    let mut previous_delta = -1i64;
    for _ in 0..header.records_count.max(0) {
        let length = usize::try_from(scan_varint(section, &mut at, section.len(), 5)?).ok()?;
        let end = at.checked_add(length).filter(|&end| end <= section.len())?;
        at += 1; // attributes
        if at > end {
            return None;
        }
        scan_varint(section, &mut at, end, 10)?; // timestamp delta
        let delta = scan_varint(section, &mut at, end, 5)?;
        if delta <= previous_delta || delta > i64::from(header.last_offset_delta) {
            return None;
        }
        previous_delta = delta;
        keyless |= !scan_nullable(section, &mut at, end)?; // key
        scan_nullable(section, &mut at, end)?; // value
        let headers = scan_varint(section, &mut at, end, 5)?;
        if headers < 0 {
            return None;
        }
        for _ in 0..headers {
            // a header key may not be null
            if !scan_nullable(section, &mut at, end)? {
                return None;
            }
            scan_nullable(section, &mut at, end)?;
        }
        if at != end {
            return None;
        }
    }
    (at == section.len()).then_some(RecordsSummary { keyless })
}

/// A zigzag varint of at most `max_bytes` bytes (5: one that must fit 32
/// bits) at `bytes[*at..end]`.
#[inline(always)]
fn scan_varint(bytes: &[u8], at: &mut usize, end: usize, max_bytes: usize) -> Option<i64> {
    let mut raw = 0u64;
    for i in 0..max_bytes {
        if *at >= end {
            return None;
        }
        let byte = bytes[*at];
        *at += 1;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if max_bytes == 5 && raw > u64::from(u32::MAX) {
                return None;
            }
            let value = match max_bytes {
                5 => i64::from(((raw as u32 >> 1) as i32) ^ -((raw as u32 & 1) as i32)),
                _ => ((raw >> 1) as i64) ^ -((raw & 1) as i64),
            };
            return Some(value);
        }
    }
    None
}

/// A nullable length and its bytes at `bytes[*at..end]`: Some(false) for
/// null, Some(true) for present.
#[inline(always)]
fn scan_nullable(bytes: &[u8], at: &mut usize, end: usize) -> Option<bool> {
    match scan_varint(bytes, at, end, 5)? {
        -1 => Some(false),
        n if n < 0 => None,
        n => {
            *at = at.checked_add(n as usize).filter(|&after| after <= end)?;
            Some(true)
        }
    }
}

/// [`check`], naming the first record that breaks a rule and why.
fn check_precisely(header: &BatchHeader, section: &[u8]) -> Result<RecordsSummary, RecordError> {
    let mut cursor = Cursor { bytes: section, index: 0 };
    let mut summary = RecordsSummary { keyless: false };
    let mut previous_delta = -1i64;
    for index in 0..header.records_count.max(0) as usize {
        cursor.index = index;
        if cursor.bytes.is_empty() {
            return Err(cursor.error("the section ends before records_count records"));
        }
        let raw = cursor.record(header)?;
        let delta = raw.offset_delta as i64;
        if delta <= previous_delta || delta > header.last_offset_delta as i64 {
            return Err(cursor.error("offset delta out of order or past last_offset_delta"));
        }
        previous_delta = delta;
        summary.keyless |= raw.record.key.is_none();
    }
    if !cursor.bytes.is_empty() {
        return Err(RecordError { index: header.records_count.max(0) as usize, why: "bytes after the last record" });
    }
    Ok(summary)
}

/// The records of one uncompressed batch (`bytes` starts with its header).
pub fn records(bytes: &[u8]) -> Result<Vec<Record<'_>>, RecordError> {
    let header = BatchHeader::parse(bytes).map_err(|_| RecordError { index: 0, why: "bad batch header" })?;
    if header.compression() != batch::Compression::None {
        return Err(RecordError { index: 0, why: "compressed batch" });
    }
    let end = header.total_bytes().min(bytes.len());
    walk(header, &bytes[HEADER_BYTES..end]).map(|raw| raw.map(|r| r.record)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_records_round_trip_with_tombstones() {
        let mut batch = build_keyed(5, &[(Some(b"k1"), Some(b"v1")), (Some(b"k2"), None), (None, Some(b""))]);
        batch::validate(&batch).unwrap();
        batch::set_base_offset(&mut batch, 40);
        let got = records(&batch).unwrap();
        assert_eq!(
            got,
            vec![
                Record { offset: 40, timestamp: 5, key: Some(b"k1"), value: Some(b"v1") },
                Record { offset: 41, timestamp: 5, key: Some(b"k2"), value: None },
                Record { offset: 42, timestamp: 5, key: None, value: Some(b"") },
            ]
        );
    }

    /// `scan` (the fast path of `check`) agrees with `check_precisely` on
    /// well-formed sections and on every kind of damage: flipped bytes, cut
    /// and grown sections, wrong counts.
    #[test]
    fn scan_agrees_with_check_precisely_on_damaged_sections() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let batch = build_keyed(7, &[(Some(b"k1"), Some(b"v1")), (None, Some(&[0x80; 200])), (Some(b""), None)]);
        let good = BatchHeader::parse(&batch).unwrap();
        let section = &batch[HEADER_BYTES..];
        assert_eq!(scan(&good, section), Some(RecordsSummary { keyless: true }));
        for _ in 0..20_000 {
            let mut damaged = section.to_vec();
            let mut header = good;
            match next() % 4 {
                0 => {
                    for _ in 0..=next() % 3 {
                        let at = next() as usize % damaged.len();
                        damaged[at] = next() as u8;
                    }
                }
                1 => damaged.truncate(next() as usize % damaged.len()),
                2 => damaged.extend((0..=next() % 3).map(|_| next() as u8)),
                _ => {
                    header.records_count = (next() % 6) as i32 - 1;
                    header.last_offset_delta = (next() % 6) as i32 - 1;
                }
            }
            let precise = check_precisely(&header, &damaged);
            assert_eq!(scan(&header, &damaged), precise.as_ref().ok().copied(), "{damaged:?} {precise:?}");
        }
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let batch = build_keyed(5, &[(Some(b"key"), Some(b"value"))]);
        for cut in HEADER_BYTES..batch.len() {
            assert!(records(&batch[..cut]).is_err(), "cut at {cut}");
        }
    }
}
