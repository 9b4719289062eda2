//! Pre-built record batches: built once per producer and partition, then only
//! stamped per send.
//!
//! A batch is RecordBatch v2 (see `corelog::model::batch` for the layout).
//! Sending one again costs three 8-byte writes and one CRC32C over the batch:
//! the base and max timestamps (milliseconds, in the header, outside any
//! compressed payload), the intended send time in microseconds in the first
//! eight bytes of the first record's value (uncompressed batches only: it
//! lets the consumer measure end-to-end latency finer than a millisecond),
//! and the CRC, which covers both. No allocation, no per-record work.
//!
//! Values (and keys) are random upper-case letters, as Kafka's own
//! producer-perf-test writes them, so compression ratios are realistic rather
//! than flattering.

use corelog::model::batch::{HEADER_BYTES, LOG_OVERHEAD};
use corelog::model::compression::{Codec, Decompressor};
use corelog::model::recompress;
use corelog::model::records::put_varint;

/// Where the CRC sits and where the bytes it covers begin.
const CRC_AT: usize = 17;
const CRC_START: usize = 21;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
/// Size of the send-time stamp carried at the start of the first value.
pub const STAMP_BYTES: usize = 8;

/// What every batch of one run looks like.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub record_bytes: usize,
    pub key_bytes: usize,
    pub codec: Codec,
}

/// One batch ready to be stamped and sent.
#[derive(Debug, Clone)]
pub struct Batch {
    pub bytes: Vec<u8>,
    /// Offset of the first value's stamp inside `bytes`, if the batch carries one.
    pub stamp_at: Option<usize>,
}

/// A small xorshift generator: deterministic payloads without a dependency.
struct Letters(u64);

impl Letters {
    fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        for _ in 0..n {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            out.push(b'A' + (self.0 % 26) as u8);
        }
    }
}

fn zigzag_len(value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Reads one zigzag varint; `None` if the bytes end first or it is too long.
fn get_varint(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

/// Body length of record number `index` (everything after its length varint).
fn record_body_len(shape: &Shape, index: usize) -> usize {
    let key = if shape.key_bytes == 0 { zigzag_len(-1) } else { zigzag_len(shape.key_bytes as i64) + shape.key_bytes };
    1 + zigzag_len(0) + zigzag_len(index as i64) + key + zigzag_len(shape.record_bytes as i64) + shape.record_bytes + 1
}

fn record_len(shape: &Shape, index: usize) -> usize {
    let body = record_body_len(shape, index);
    zigzag_len(body as i64) + body
}

/// How many records fit a batch of at most `batch_bytes` (at least one), as
/// counted before compression: the producer's batch.size works the same way.
pub fn records_per_batch(shape: &Shape, batch_bytes: usize) -> usize {
    let mut total = HEADER_BYTES;
    let mut n = 0;
    loop {
        let next = record_len(shape, n);
        if n > 0 && total + next > batch_bytes {
            return n;
        }
        total += next;
        n += 1;
        if n >= i32::MAX as usize / 2 {
            return n;
        }
    }
}

/// Builds a batch of `records` records; `seed` varies the payload (one per partition).
pub fn build(shape: &Shape, records: usize, seed: u64) -> Result<Batch, recompress::RecompressError> {
    assert!(records > 0, "a batch holds at least one record");
    let mut letters = Letters(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut out = Vec::with_capacity(HEADER_BYTES + records * record_len(shape, records));
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset: the broker assigns it
    out.extend_from_slice(&0i32.to_be_bytes()); // batch length, filled below
    out.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    out.push(2); // magic
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, filled by stamp()
    out.extend_from_slice(&0i16.to_be_bytes()); // attributes: create time, no codec yet
    out.extend_from_slice(&(records as i32 - 1).to_be_bytes()); // last offset delta
    out.extend_from_slice(&0i64.to_be_bytes()); // base timestamp, stamped per send
    out.extend_from_slice(&0i64.to_be_bytes()); // max timestamp, stamped per send
    out.extend_from_slice(&(-1i64).to_be_bytes()); // producer id: not idempotent
    out.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&(records as i32).to_be_bytes());
    debug_assert_eq!(out.len(), HEADER_BYTES);

    let mut stamp_at = None;
    for index in 0..records {
        put_varint(&mut out, record_body_len(shape, index) as i64);
        out.push(0); // record attributes
        put_varint(&mut out, 0); // timestamp delta
        put_varint(&mut out, index as i64); // offset delta
        if shape.key_bytes == 0 {
            put_varint(&mut out, -1);
        } else {
            put_varint(&mut out, shape.key_bytes as i64);
            letters.fill(&mut out, shape.key_bytes);
        }
        put_varint(&mut out, shape.record_bytes as i64);
        if index == 0 && shape.record_bytes >= STAMP_BYTES {
            stamp_at = Some(out.len());
        }
        letters.fill(&mut out, shape.record_bytes);
        put_varint(&mut out, 0); // no headers
    }
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    stamp(&mut out, stamp_at, 0);

    if shape.codec != Codec::None {
        // Compressed once here; per send only the header (outside the
        // compressed payload) is stamped, so the value stamp is not used.
        out = recompress::recompress(&out, shape.codec, &mut Decompressor::new())?;
        stamp_at = None;
    }
    Ok(Batch { bytes: out, stamp_at })
}

/// Stamps a batch for one send: header timestamps (ms), the first value's
/// microsecond stamp if it has one, then the CRC32C that covers them.
#[inline]
pub fn stamp(batch: &mut [u8], stamp_at: Option<usize>, wall_us: u64) {
    let ms = (wall_us / 1000) as i64;
    batch[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&ms.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&ms.to_be_bytes());
    if let Some(at) = stamp_at {
        batch[at..at + STAMP_BYTES].copy_from_slice(&wall_us.to_be_bytes());
    }
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The microsecond stamp in the first record's value of an uncompressed batch
/// (`batch` starts at the batch header and holds the whole batch).
pub fn first_value_stamp(batch: &[u8]) -> Option<u64> {
    let mut at = HEADER_BYTES;
    let _len = get_varint(batch, &mut at)?;
    at += 1; // attributes
    get_varint(batch, &mut at)?; // timestamp delta
    get_varint(batch, &mut at)?; // offset delta
    let key_len = get_varint(batch, &mut at)?;
    if key_len > 0 {
        at += key_len as usize;
    }
    let value_len = get_varint(batch, &mut at)?;
    if value_len < STAMP_BYTES as i64 {
        return None;
    }
    let bytes = batch.get(at..at + STAMP_BYTES)?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use corelog::model::batch::validate;

    fn shape(record_bytes: usize, key_bytes: usize, codec: Codec) -> Shape {
        Shape { record_bytes, key_bytes, codec }
    }

    #[test]
    fn built_batches_validate_and_fit() {
        for (r, k) in [(100, 0), (1, 0), (1024, 16), (16384, 0), (0, 0)] {
            let s = shape(r, k, Codec::None);
            let n = records_per_batch(&s, 65536);
            let mut b = build(&s, n, 7).unwrap();
            assert!(b.bytes.len() <= 65536 || n == 1, "{r}: {} bytes", b.bytes.len());
            stamp(&mut b.bytes, b.stamp_at, 1_700_000_000_123_456);
            let h = validate(&b.bytes).unwrap();
            assert_eq!(h.records_count as usize, n);
            assert_eq!(h.max_timestamp, 1_700_000_000_123);
            if r >= 8 {
                assert_eq!(first_value_stamp(&b.bytes), Some(1_700_000_000_123_456));
            }
        }
    }

    #[test]
    fn records_per_batch_is_tight() {
        let s = shape(100, 0, Codec::None);
        let n = records_per_batch(&s, 65536);
        let b = build(&s, n + 1, 1).unwrap();
        assert!(b.bytes.len() > 65536);
    }

    #[test]
    fn compressed_batches_validate_after_stamping() {
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let s = shape(100, 8, codec);
            let mut b = build(&s, 500, 3).unwrap();
            assert!(b.stamp_at.is_none());
            // Random letters carry ~4.7 bits a byte: entropy coders (gzip,
            // zstd) shrink them, pure LZ matchers (snappy, lz4) barely do.
            if matches!(codec, Codec::Gzip | Codec::Zstd) {
                assert!(b.bytes.len() < 500 * 100, "{codec:?} did not compress");
            }
            stamp(&mut b.bytes, b.stamp_at, 42_000);
            assert_eq!(validate(&b.bytes).unwrap().records_count, 500);
        }
    }
}
