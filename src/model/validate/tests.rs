use super::*;
use crate::model::batch::HEADER_BYTES;
use crate::model::compression::{self, Codec, RECORDS_SECTION_BYTES_MAX};
use crate::model::fixtures::*;
use crate::model::records;

const MAX_BYTES: usize = 1 << 20;

fn validated(batch: &[u8]) -> Result<ProducedBatch, ValidateError> {
    produced_batch(batch, MAX_BYTES, &mut Decompressor::new())
}

/// A batch of `records_count` records whose section is `section`.
fn batch_with(section: &[u8], records_count: i32) -> Vec<u8> {
    patched(with_payload(&batch::build(1_700_000_000_000, &[b"x"]), section), |b| {
        b[23..27].copy_from_slice(&(records_count - 1).to_be_bytes()); // last_offset_delta
        b[57..61].copy_from_slice(&records_count.to_be_bytes());
    })
}

/// `records` as one batch with the record framing written here.
fn batch_of(records: &[Vec<u8>]) -> Vec<u8> {
    batch_with(&records.concat(), records.len() as i32)
}

/// One record: attributes 0, timestamp delta 0, then `offset_delta` and `rest`
/// (key, value, headers), length-prefixed.
fn record(offset_delta: i64, rest: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0];
    varint(&mut body, offset_delta);
    body.extend_from_slice(rest);
    let mut out = Vec::new();
    varint(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    out
}

/// Key "k", value "v", no headers.
const KEYED: &[u8] = &[2, b'k', 2, b'v', 0];

#[test]
fn valid_batches_of_every_codec_are_accepted() {
    for codec in Codec::ALL {
        let batch = source_batch(codec);
        let ok = validated(&batch).unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_eq!(ok.header.records_count, 5, "{codec}");
        assert!(ok.keyless, "{codec}: record 1 has a null key");
    }
    let keyed = records::build_keyed(5, &[(Some(b"a"), Some(b"1")), (Some(b"b"), None)]);
    for codec in Codec::ALL {
        let batch = crate::model::recompress::recompress(&keyed, codec, &mut Decompressor::new()).unwrap();
        let ok = validated(&batch).unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_eq!((ok.header.records_count, ok.keyless), (2, false), "{codec}");
    }
    let handmade = handmade_batch();
    assert_eq!(validated(&handmade).unwrap().header.records_count, 3);
}

#[test]
fn random_bytes_with_a_valid_crc_are_refused() {
    for seed in 1..200u64 {
        let noise = noise_batch(5, 40 + seed as usize * 3, seed);
        batch::validate(&noise).unwrap(); // the CRC is fine: the records are not
        let err = validated(&noise).unwrap_err();
        assert!(matches!(err, ValidateError::Record(_)), "seed {seed}: {err}");
        // The same noise as the payload of every codec does not decompress.
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let err = validated(&with_codec(noise.clone(), codec)).unwrap_err();
            assert!(matches!(err, ValidateError::Compression(_) | ValidateError::Record(_)), "{codec}: {err}");
        }
    }
}

#[test]
fn a_zstd_bomb_is_refused_as_too_large() {
    let bomb = with_codec(with_payload(&batch::build(1, &[b"x"]), &zstd_rle_bomb(16_000)), Codec::Zstd);
    let err = validated(&bomb).unwrap_err();
    assert!(matches!(err, ValidateError::Compression(CompressionError::TooLarge { .. })), "{err}");
    // Records that really are that many are refused the same way, whatever they hold.
    let mut value = vec![1, 0xd0, 0x0f]; // null key, value of 1000 bytes
    value.extend_from_slice(&[b'v'; 1000]);
    value.push(0); // no headers
    let count = RECORDS_SECTION_BYTES_MAX / 1000 + 1;
    let section: Vec<u8> = (0..count).flat_map(|i| record(i as i64, &value)).collect();
    assert!(section.len() > RECORDS_SECTION_BYTES_MAX);
    let mut payload = Vec::new();
    compression::compress(Codec::Lz4, &section, &mut payload).unwrap();
    let big = with_codec(batch_with(&payload, count as i32), Codec::Lz4);
    assert!(matches!(validated(&big), Err(ValidateError::Compression(CompressionError::TooLarge { .. }))));
}

#[test]
fn offset_deltas_must_count_from_zero() {
    let good = batch_of(&[record(0, KEYED), record(1, KEYED), record(2, KEYED)]);
    assert!(!validated(&good).unwrap().keyless);
    for deltas in [[0, 0, 1], [1, 2, 3], [0, 2, 1], [2, 1, 0], [0, 1, 7]] {
        let records: Vec<_> = deltas.iter().map(|&d| record(d, KEYED)).collect();
        let err = validated(&batch_of(&records)).unwrap_err();
        assert!(matches!(err, ValidateError::Record(_)), "{deltas:?}: {err}");
    }
}

#[test]
fn malformed_records_are_refused() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("key length past its record", record(0, &[20, b'k', 2, b'v', 0])),
        ("key length below -1", record(0, &[3, 2, b'v', 0])),
        ("negative header count", record(0, &[2, b'k', 2, b'v', 1])),
        ("header count past its record", record(0, &[2, b'k', 2, b'v', 8])),
        ("negative header key length", record(0, &[2, b'k', 2, b'v', 2, 1, 0])),
        ("bytes after the headers", record(0, &[2, b'k', 2, b'v', 0, 0])),
        ("varint of 6 bytes", record(0, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 2, b'v', 0])),
        ("truncated varint", [&record(0, KEYED)[..], &[0x80]].concat()),
        ("negative record length", [&[1u8][..], &record(0, KEYED)[1..]].concat()),
        ("record length past the section", [&[100u8][..], &record(0, KEYED)[1..]].concat()),
    ];
    for (what, bad) in cases {
        let err = validated(&batch_of(&[bad])).unwrap_err();
        assert!(matches!(err, ValidateError::Record(_)), "{what}: {err}");
    }
    // Fewer records than records_count, and bytes after the last one.
    let short = batch_with(&record(0, KEYED), 2);
    assert!(matches!(validated(&short), Err(ValidateError::Record(_))));
    let trailing = batch_with(&[&record(0, KEYED)[..], &[0]].concat(), 1);
    assert!(matches!(validated(&trailing), Err(ValidateError::Record(_))));
}

#[test]
fn empty_control_and_oversized_batches_are_refused() {
    let empty = batch::build(5, &[]);
    batch::validate(&empty).unwrap();
    assert!(matches!(validated(&empty), Err(ValidateError::NoRecords)));
    let control = patched(batch::build(5, &[b"x"]), |b| b[ATTRIBUTES_AT + 1] |= 0x20);
    assert!(matches!(validated(&control), Err(ValidateError::ControlBatch)));
    let big = batch::build(5, &[&[7u8; 2000]]);
    let err = produced_batch(&big, 1000, &mut Decompressor::new()).unwrap_err();
    assert!(matches!(err, ValidateError::TooLarge { max_bytes: 1000, .. }), "{err}");
    let mut bad_crc = batch::build(5, &[b"x"]);
    bad_crc[HEADER_BYTES] ^= 1;
    assert!(matches!(validated(&bad_crc), Err(ValidateError::Batch(_))));
}

#[test]
fn mutated_batches_never_panic() {
    // Every single-byte change of a valid batch, CRC recomputed: refused or
    // accepted, never a panic, and never an acceptance of a different record count.
    let good = handmade_batch();
    for at in HEADER_BYTES..good.len() {
        for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let bad = patched(good.clone(), |b| b[at] = value);
            if let Ok(ok) = validated(&bad) {
                assert_eq!(ok.header.records_count, 3);
            }
        }
    }
}
