//! Batches the model's tests share: real ones, encoded by the kafka-protocol
//! crate (not by the code under test), hand-made ones that crate cannot
//! express, and hostile ones.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{self as kr, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use super::batch::{self, HEADER_BYTES, LOG_OVERHEAD};
use super::compression::Codec;

pub const BASE_OFFSET: i64 = 1000;
pub const PRODUCER_ID: i64 = 4242;
pub const PRODUCER_EPOCH: i16 = 7;
pub const BASE_SEQUENCE: i32 = 100;
pub const LEADER_EPOCH: i32 = 9;
/// Written over max_timestamp, as a LogAppendTime batch would carry it.
pub const LOG_APPEND_TIME: i64 = 1_700_000_123_456;
/// Offset of the 16-bit attributes field (its low byte holds the codec).
pub const ATTRIBUTES_AT: usize = batch::field::ATTRIBUTES;

pub fn crate_codec(codec: Codec) -> kr::Compression {
    match codec {
        Codec::None => kr::Compression::None,
        Codec::Gzip => kr::Compression::Gzip,
        Codec::Snappy => kr::Compression::Snappy,
        Codec::Lz4 => kr::Compression::Lz4,
        Codec::Zstd => kr::Compression::Zstd,
    }
}

/// Records with keys (one null), values (one null, one large), headers
/// (one with a null value, one record with none) and distinct, unordered
/// timestamps, from an idempotent transactional producer.
pub fn sample_records(timestamp_type: TimestampType) -> Vec<Record> {
    let timestamps = [5000i64, 4990, 5020, 5010, 5030];
    (0..timestamps.len())
        .map(|i| {
            let mut headers = IndexMap::new();
            if i != 2 {
                headers.insert(StrBytes::from_static_str("trace"), Some(Bytes::from(format!("t-{i}"))));
                headers.insert(StrBytes::from_static_str("empty"), None);
            }
            Record {
                transactional: true,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: LEADER_EPOCH,
                producer_id: PRODUCER_ID,
                producer_epoch: PRODUCER_EPOCH,
                timestamp_type,
                offset: BASE_OFFSET + i as i64,
                sequence: BASE_SEQUENCE + i as i32,
                timestamp: timestamps[i],
                key: (i != 1).then(|| Bytes::from(format!("key-{i}"))),
                value: match i {
                    3 => None,
                    4 => Some(Bytes::from("payload ".repeat(2000))),
                    _ => Some(Bytes::from(format!("value-{i}"))),
                },
                headers,
            }
        })
        .collect()
}

/// Rewrites bytes of a batch, then recomputes batch_length and the CRC.
pub fn patched(mut batch: Vec<u8>, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    edit(&mut batch);
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch::put(&mut batch, batch::field::BATCH_LENGTH, &length.to_be_bytes());
    batch::refresh_crc(&mut batch);
    batch
}

/// The sample records as one batch compressed by the crate's encoder (not
/// by the code under test), marked LogAppendTime with a max timestamp
/// that no record carries, as a broker-stamped batch would be.
pub fn source_batch(codec: Codec) -> Vec<u8> {
    let records = sample_records(TimestampType::Creation);
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: crate_codec(codec) };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    patched(buf.to_vec(), |b| {
        b[ATTRIBUTES_AT + 1] |= 0x08; // timestamp type: LogAppendTime
        b[35..43].copy_from_slice(&LOG_APPEND_TIME.to_be_bytes());
    })
}

/// The batch with its records section replaced by `payload` (header fields kept).
pub fn with_payload(batch: &[u8], payload: &[u8]) -> Vec<u8> {
    patched(batch.to_vec(), |b| {
        b.truncate(HEADER_BYTES);
        b.extend_from_slice(payload);
    })
}

/// The batch marked as compressed with `codec` (its payload untouched).
pub fn with_codec(batch: Vec<u8>, codec: Codec) -> Vec<u8> {
    patched(batch, |b| b[ATTRIBUTES_AT + 1] = (b[ATTRIBUTES_AT + 1] & !0x7) | codec.id())
}

pub fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push(z as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A batch built by hand: duplicate header keys (which the crate's
/// IndexMap-based Record cannot express) and a non-zero record attributes
/// byte must survive too, since the records section is carried verbatim.
pub fn handmade_batch() -> Vec<u8> {
    let mut section = Vec::new();
    for i in 0..3i64 {
        let mut body = vec![if i == 1 { 0x40 } else { 0 }];
        varint(&mut body, -i * 7); // timestamp delta
        varint(&mut body, i); // offset delta
        varint(&mut body, 1);
        body.push(b'k');
        varint(&mut body, 3);
        body.extend_from_slice(b"v-");
        body.push(b'0' + i as u8);
        varint(&mut body, 2); // two headers, same key
        for value in [&b"a"[..], &b"b"[..]] {
            varint(&mut body, 3);
            body.extend_from_slice(b"dup");
            varint(&mut body, value.len() as i64);
            body.extend_from_slice(value);
        }
        varint(&mut section, body.len() as i64);
        section.extend_from_slice(&body);
    }
    with_payload(&batch::build(77, &[b"a", b"b", b"c"]), &section)
}

/// A zstd frame of `blocks` RLE blocks of 128 KiB each, 4 bytes apiece: the
/// decompression bomb of issue 13 (16,000 blocks, 64 KB, make 2 GiB).
pub fn zstd_rle_bomb(blocks: usize) -> Vec<u8> {
    const BLOCK_BYTES: u32 = 128 << 10;
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd]; // magic
    frame.push(0x00); // no content size, no checksum, not single-segment
    frame.push(7 << 3); // window: 2^(10 + 7) = 128 KiB
    for i in 0..blocks {
        let last = (i + 1 == blocks) as u32;
        let block_header = last | (1 << 1) | (BLOCK_BYTES << 3); // RLE block
        frame.extend_from_slice(&block_header.to_le_bytes()[..3]);
        frame.push(b'x');
    }
    frame
}

/// A batch of `records_count` records whose records section is `payload`
/// bytes of noise, with a valid CRC: what issue 13 sent to stop consumers.
pub fn noise_batch(records_count: i32, payload_bytes: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let noise: Vec<u8> = (0..payload_bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let values: Vec<&[u8]> = vec![b"x"; records_count as usize];
    with_payload(&batch::build(1_700_000_000_000, &values), &noise)
}
