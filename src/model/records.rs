//! Records inside an uncompressed RecordBatch v2: building a batch of keyed
//! records (the broker's own internal topics) and walking one back. The hot
//! path never looks inside batches; this is for the broker's own data.
//!
//! ```text
//! record: length varint, attributes i8, timestamp_delta varint, offset_delta varint,
//!         key_length varint (-1 = null), key, value_length varint (-1 = null), value,
//!         headers_count varint, headers…
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

struct Cursor<'a> {
    bytes: &'a [u8],
    index: usize,
}

impl<'a> Cursor<'a> {
    fn error(&self, why: &'static str) -> RecordError {
        RecordError { index: self.index, why }
    }

    fn varint(&mut self) -> Result<i64, RecordError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.bytes.split_first().ok_or_else(|| self.error("truncated varint"))?;
            self.bytes = rest;
            value |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(self.error("varint too long"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], RecordError> {
        if len > self.bytes.len() {
            return Err(self.error("length runs past the batch"));
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn nullable(&mut self) -> Result<Option<&'a [u8]>, RecordError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(self.error("negative length")),
            n => self.take(n as usize).map(Some),
        }
    }

    fn record(&mut self, header: &BatchHeader) -> Result<RawRecord<'a>, RecordError> {
        let length = self.varint()?;
        let mut inner = Cursor {
            bytes: self.take(usize::try_from(length).map_err(|_| self.error("negative length"))?)?,
            index: self.index,
        };
        let attributes = inner.take(1)?[0];
        let timestamp_delta = inner.varint()?;
        let tail = inner.bytes;
        let offset = header.base_offset + inner.varint()?;
        // LogAppendTime batches carry the broker's time in max_timestamp only.
        let timestamp = match header.attributes & 0x8 {
            0 => header.base_timestamp.wrapping_add(timestamp_delta),
            _ => header.max_timestamp,
        };
        let key = inner.nullable()?;
        let value = inner.nullable()?;
        for _ in 0..inner.varint()? {
            inner.nullable()?; // header key (never null, same encoding)
            inner.nullable()?; // header value
        }
        let record = Record { offset, timestamp, key, value };
        Ok(RawRecord { record, attributes, timestamp_delta, tail })
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

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let batch = build_keyed(5, &[(Some(b"key"), Some(b"value"))]);
        for cut in HEADER_BYTES..batch.len() {
            assert!(records(&batch[..cut]).is_err(), "cut at {cut}");
        }
    }
}
